"""The simulator's face: a population plus its traffic, as Kafka-ready JSON records or as columns.

Two seeds: the *population* seed (``simulator.seed``) makes users and merchants persistent across
the offline batch and every live stream; the *traffic* seed makes one run's transactions (the
offline batch uses the population seed; ``fraudlake produce`` a fresh one unless told).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np

from lakehouse.contract.schemas import MerchantRecord, UserRecord
from lakehouse.settings import SimulatorSettings
from lakehouse.simulator.entities import CATEGORY_NAMES, DAY_MS, Population, build_population
from lakehouse.simulator.traffic import DayGenerator, TxBatch


def iso_ms(ts_ms: np.ndarray) -> np.ndarray:
    """Epoch milliseconds → ISO 8601 UTC text with milliseconds (vectorised)."""
    return np.char.add(np.datetime_as_string(np.asarray(ts_ms, dtype="datetime64[ms]"), unit="ms"), "Z")


def default_start(sim: SimulatorSettings, today: date) -> date:
    """The offline batch's first day: ``simulator.start``, or ``days + live_days`` before today, so
    that live traffic (which runs faster than the clock) has ``live_days`` of past to run through."""
    return sim.start or (today - timedelta(days=sim.days + sim.live_days))


def start_before(sim: SimulatorSettings, today: date, live_transactions: int) -> date:
    """A first day early enough that ``live_transactions`` sent after the offline batch (at the
    batch's daily volume, two days to spare) are all dated in the past: for benchmarks and loads."""
    live_days = -(-live_transactions * sim.days // sim.transactions) + 2
    return today - timedelta(days=sim.days + live_days)


def midnight_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


@dataclass
class EntityEvent:
    """A user or merchant record that takes effect at ``ts_ms`` (published before later payments)."""

    ts_ms: int
    stream: str  # users | merchants
    key: str
    record: dict = field(repr=False)


class Simulation:
    def __init__(self, sim: SimulatorSettings, start: date, traffic_seed: int | None = None) -> None:
        self.sim = sim
        self.start = start
        self.start_ms = midnight_ms(start)
        self.traffic_seed = sim.seed if traffic_seed is None else traffic_seed
        self.population: Population = build_population(sim, self.start_ms)
        self.days = DayGenerator(self.population, sim, self.traffic_seed)

    # ------------------------------------------------------------------ transactions

    def day(self, day: int) -> TxBatch:
        return self.days.day(day)

    def offline_batch(self) -> Iterator[tuple[int, TxBatch]]:
        for day in range(self.sim.days):
            yield day, self.day(day)

    def transaction_json(self, batch: TxBatch) -> list[bytes]:
        """One JSON document per transaction, as the producer sends them (fields of the contract)."""
        pop = self.population
        users = pop.user_id[batch.user].tolist()
        merchants = pop.merchant_id[batch.merchant].tolist()
        currencies = pop.currency_of_merchants(batch.merchant).tolist()
        stamps = iso_ms(batch.ts_ms).tolist()
        rows = zip(
            batch.transaction_id.tolist(),
            users,
            merchants,
            stamps,
            batch.amount.tolist(),
            currencies,
            batch.device_ip.tolist(),
            batch.scenario.tolist(),
            strict=True,
        )
        # String formatting instead of json.dumps per record: ids, codes and IPs never need escaping.
        return [
            (
                f'{{"transaction_id":"{t}","user_id":"{u}","merchant_id":"{m}","timestamp":"{ts}",'
                f'"amount":{a:.2f},"currency":"{c}","device_ip":{_quoted(ip)},'
                f'"is_fraud":{"false" if s is None else "true"},"fraud_scenario":{_quoted(s)}}}'
            ).encode()
            for t, u, m, ts, a, c, ip, s in rows
        ]

    def transaction_columns(self, batch: TxBatch) -> dict[str, np.ndarray]:
        """The batch as contract columns (for Parquet files and reports)."""
        pop = self.population
        return {
            "transaction_id": batch.transaction_id,
            "user_id": pop.user_id[batch.user],
            "merchant_id": pop.merchant_id[batch.merchant],
            "timestamp": batch.ts_ms.astype("datetime64[ms]"),
            "amount": batch.amount,
            "currency": pop.currency_of_merchants(batch.merchant),
            "device_ip": batch.device_ip,
            "is_fraud": batch.is_fraud.astype(bool),
            "fraud_scenario": batch.scenario,
        }

    # ------------------------------------------------------------------ users and merchants

    def merchant_records(self) -> list[EntityEvent]:
        pop = self.population
        created = iso_ms(pop.merchant_created_ms).tolist()
        events = []
        for i, merchant_id in enumerate(pop.merchant_id.tolist()):
            online = bool(np.isnan(pop.merchant_lat[i]))
            record: MerchantRecord = {
                "merchant_id": merchant_id,
                "name": str(pop.merchant_name[i]),
                "category": CATEGORY_NAMES[pop.category[i]],
                "location": "online" if online else str(pop.cities.name[pop.merchant_city[i]]),
                "latitude": None if online else round(float(pop.merchant_lat[i]), 5),
                "longitude": None if online else round(float(pop.merchant_lon[i]), 5),
                "created_at": created[i],
                "updated_at": created[i],
            }
            events.append(EntityEvent(int(pop.merchant_created_ms[i]), "merchants", merchant_id, record))
        return events

    def user_record(self, user: int, city: int, at_ms: int, *, moved: bool) -> EntityEvent:
        pop = self.population
        if moved:  # a new home: new coordinates around the new city
            jitter = np.random.default_rng([self.sim.seed, 11, user]).normal(0, 0.04, 2)
            lat, lon = pop.cities.latitude[city] + jitter[0], pop.cities.longitude[city] + jitter[1]
        else:
            lat, lon = pop.home_lat[user], pop.home_lon[user]
        user_id = str(pop.user_id[user])
        record: UserRecord = {
            "user_id": user_id,
            "age": int(pop.age[user]),
            "gender": str(pop.gender[user]),
            "location": str(pop.cities.name[city]),
            "latitude": round(float(lat), 5),
            "longitude": round(float(lon), 5),
            "signup_date": str(np.datetime64(int(pop.signup_ms[user]), "ms").astype("datetime64[D]")),
            "updated_at": str(iso_ms(np.array([at_ms]))[0]),
        }
        return EntityEvent(at_ms, "users", user_id, record)

    def users_at(self, day: int) -> list[EntityEvent]:
        """Every user who exists when ``day`` begins, as their profile is then."""
        pop = self.population
        day_start = self.start_ms + day * DAY_MS
        home = self.days.home_city(day)
        events = []
        for user in np.flatnonzero(pop.signup_ms < day_start).tolist():
            moved = bool(pop.move_day[user] >= 0 and day >= pop.move_day[user])
            at = self._move_ms(user) if moved else int(pop.signup_ms[user])
            events.append(self.user_record(user, int(home[user]), at, moved=moved))
        return events

    def user_events(self, day: int) -> list[EntityEvent]:
        """Profiles that appear (sign-ups) or change (moves) during ``day``, in time order."""
        pop = self.population
        day_start = self.start_ms + day * DAY_MS
        signups = np.flatnonzero((pop.signup_ms >= day_start) & (pop.signup_ms < day_start + DAY_MS))
        events = [
            self.user_record(u, int(pop.home_city[u]), int(pop.signup_ms[u]), moved=False) for u in signups.tolist()
        ]
        for user in np.flatnonzero(pop.move_day == day).tolist():
            events.append(self.user_record(user, int(pop.move_city[user]), self._move_ms(user), moved=True))
        return sorted(events, key=lambda e: e.ts_ms)

    def _move_ms(self, user: int) -> int:
        # Moves take effect at 06:00 on their day, before the user's payments of that day.
        return int(self.start_ms + self.population.move_day[user] * DAY_MS + 6 * 3_600_000)


def _quoted(value: str | None) -> str:
    return "null" if value is None else f'"{value}"'


def entity_json(event: EntityEvent) -> bytes:
    return json.dumps(event.record, ensure_ascii=False, separators=(",", ":")).encode()
