"""Transactions, one simulated day at a time: legitimate behaviour plus labelled fraud scenarios.

A day is generated from ``(traffic_seed, day)`` alone, so any day can be produced independently
(the offline batch, a live stream that goes on for days, a benchmark preload) and the same seed
always gives the same data. Counts are exact: the offline span's transactions and the fraud rate
are split over days and scenarios by largest remainders, and days past the span repeat its
weekly pattern.

Each fraud scenario is visible only in history (velocity, departure from the user's own habits,
a merchant's recent past), never in one giveaway field: legitimate traffic also has tiny online
amounts, big purchases, travel, new device IPs and night payments.

One module on purpose, although it passes 400 lines: :class:`DayGenerator` is one thing. The
scenarios are written against the legitimate traffic they hide in (the same city merchant index,
amount model, usual hours and home cities), and a day is only exact when both are planned together.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from lakehouse.settings import SimulatorSettings
from lakehouse.simulator.entities import (
    CATEGORIES,
    CATEGORY_NAMES,
    DAY_MS,
    HOUR_MS,
    Population,
    haversine_km,
    random_public_ipv4,
)

SCENARIOS = (
    "card_testing",
    "account_takeover",
    "compromised_merchant",
    "stolen_card_spree",
    "amount_anomaly",
    "impossible_travel",
)
#: Monday..Sunday relative activity.
WEEKDAY_WEIGHT = np.array([0.95, 0.95, 0.97, 1.0, 1.1, 1.12, 0.91])
BIG_TICKET = {CATEGORY_NAMES.index(c) for c in ("electronics", "jewelry", "travel", "fashion", "home_garden")}


@dataclass
class TxBatch:
    """Transactions as columns, sorted by event time."""

    transaction_id: np.ndarray
    ts_ms: np.ndarray
    user: np.ndarray
    merchant: np.ndarray
    amount: np.ndarray
    device_ip: np.ndarray  # object: str
    scenario: np.ndarray  # object: scenario name, None when legitimate

    def __len__(self) -> int:
        return len(self.ts_ms)

    @property
    def is_fraud(self) -> np.ndarray:
        return self.scenario != None  # noqa: E711 - elementwise on an object array

    def take(self, index: np.ndarray) -> TxBatch:
        return TxBatch(*(getattr(self, f)[index] for f in self.__dataclass_fields__))

    @staticmethod
    def concat(batches: list[TxBatch]) -> TxBatch:
        return TxBatch(*(np.concatenate([getattr(b, f) for b in batches]) for f in TxBatch.__dataclass_fields__))


def largest_remainder(total: int, weights: np.ndarray) -> np.ndarray:
    """Split ``total`` into integers proportional to ``weights`` that add up exactly."""
    weights = np.asarray(weights, dtype=float)
    if total <= 0 or weights.sum() <= 0:
        return np.zeros(len(weights), dtype=np.int64)
    raw = total * weights / weights.sum()
    counts = np.floor(raw).astype(np.int64)
    short = total - counts.sum()
    counts[np.argsort(-(raw - counts), kind="stable")[:short]] += 1
    return counts


#: Scenarios whose fraud comes in bursts, and the settings field holding the burst size range.
BURSTS = {"card_testing": "burst", "account_takeover": "transactions", "stolen_card_spree": "transactions"}


@dataclass(frozen=True)
class DayPlan:
    legit: int
    fraud: dict[str, int]  # single-transaction scenarios: how many
    bursts: dict[str, list[int]]  # burst scenarios: the size of each episode starting that day


class TrafficPlan:
    """How many legitimate transactions, and which fraud, every day of the span gets.

    Burst scenarios are planned as whole episodes over the span (sizes drawn from their range,
    only the span's last episode trimmed to hit the exact count), then spread over random days:
    splitting a count evenly per day would cut every burst short.
    """

    def __init__(self, sim: SimulatorSettings, start_ms: int, traffic_seed: int) -> None:
        self.sim = sim
        rng = np.random.default_rng([traffic_seed, 3])
        days = np.arange(sim.days)
        weekday = ((start_ms // DAY_MS + days + 3) % 7).astype(int)  # 1970-01-01 was a Thursday
        n_fraud = round(sim.transactions * sim.fraud_rate)
        shares = sim.scenarios.shares()
        per_scenario = dict(
            zip(shares, largest_remainder(n_fraud, np.array(list(shares.values()))).tolist(), strict=True)
        )
        self.legit = largest_remainder(sim.transactions - n_fraud, WEEKDAY_WEIGHT[weekday])
        self.fraud = {
            name: largest_remainder(count, np.ones(sim.days))
            for name, count in per_scenario.items()
            if name not in BURSTS
        }
        self.bursts: dict[str, list[list[int]]] = {}
        for name, field_name in BURSTS.items():
            low, high = getattr(getattr(sim.scenarios, name), field_name)
            sizes: list[int] = []
            while sum(sizes) < per_scenario[name]:
                sizes.append(min(int(rng.integers(low, high + 1)), per_scenario[name] - sum(sizes)))
            by_day: list[list[int]] = [[] for _ in range(sim.days)]
            for size, day in zip(sizes, rng.integers(0, sim.days, len(sizes)).tolist(), strict=True):
                by_day[day].append(size)
            self.bursts[name] = by_day

    def day(self, day: int) -> DayPlan:
        d = day % self.sim.days
        return DayPlan(
            int(self.legit[d]),
            {name: int(counts[d]) for name, counts in self.fraud.items()},
            {name: by_day[d] for name, by_day in self.bursts.items()},
        )


class DayGenerator:
    """Generates one day's transactions for a population (see module docstring)."""

    def __init__(self, pop: Population, sim: SimulatorSettings, traffic_seed: int) -> None:
        self.pop = pop
        self.sim = sim
        self.traffic_seed = traffic_seed
        self.plan = TrafficPlan(sim, pop.start_ms, traffic_seed)
        flat = [np.asarray(m, dtype=np.int64) for m in pop.city_merchants]
        self._city_offsets = np.concatenate([[0], np.cumsum([len(m) for m in flat])[:-1]]).astype(np.int64)
        self._city_counts = np.array([len(m) for m in flat], dtype=np.int64)
        self._city_flat = np.concatenate(flat)
        self._category_median = np.array([CATEGORIES[c][0] for c in CATEGORY_NAMES])
        self._category_sigma = np.array([CATEGORIES[c][1] for c in CATEGORY_NAMES])
        self._scenario_fns: dict[str, Callable[..., list[_Episode]]] = {
            "card_testing": self._card_testing,
            "account_takeover": self._account_takeover,
            "compromised_merchant": self._compromised_merchant,
            "stolen_card_spree": self._stolen_card_spree,
            "amount_anomaly": self._amount_anomaly,
            "impossible_travel": self._impossible_travel,
        }

    # ------------------------------------------------------------------ state on a day

    def home_city(self, day: int) -> np.ndarray:
        pop = self.pop
        moved = (pop.move_day >= 0) & (day >= pop.move_day)
        return np.where(moved, pop.move_city, pop.home_city)

    def active_users(self, day: int) -> np.ndarray:
        """Users who signed up before this day began."""
        return self.pop.signup_ms < self.pop.start_ms + day * DAY_MS

    def _city_merchant(self, rng: np.random.Generator, cities: np.ndarray) -> np.ndarray:
        picks = (rng.random(len(cities)) * self._city_counts[cities]).astype(np.int64)
        return self._city_flat[self._city_offsets[cities] + picks]

    def _amounts(self, rng: np.random.Generator, users: np.ndarray, merchants: np.ndarray, scale=1.0) -> np.ndarray:
        category = self.pop.category[merchants]
        mu = np.log(self._category_median[category] * self.pop.spending[users] * scale)
        return np.maximum(np.round(np.exp(rng.normal(mu, self._category_sigma[category])), 2), 0.5)

    # ------------------------------------------------------------------ a whole day

    def day(self, day: int) -> TxBatch:
        plan = self.plan.day(day)
        rng = np.random.default_rng([self.traffic_seed, day, 2])
        day_start = self.pop.start_ms + day * DAY_MS
        episodes: list[_Episode] = []
        for name in SCENARIOS:
            planned = plan.bursts[name] if name in BURSTS else plan.fraud[name]
            if planned:
                episodes.extend(self._scenario_fns[name](rng, day, day_start, planned))
        anchors = sum(len(e.ts) for e in episodes if e.scenario is None)
        legit = self._legit(rng, day, day_start, max(plan.legit - anchors, 0))
        batch = TxBatch.concat([legit, *(e.batch() for e in episodes)])
        batch = batch.take(np.argsort(batch.ts_ms, kind="stable"))
        # Ids are given in time order, after fraud and legitimate traffic are merged: an id says
        # nothing about the label.
        prefix = f"T{self.traffic_seed & 0xFFFFFFFF:08x}{day:05d}"
        batch.transaction_id = np.array([f"{prefix}{i:07d}" for i in range(len(batch))])
        return batch

    def _legit(self, rng: np.random.Generator, day: int, day_start: int, n: int) -> TxBatch:
        pop, sim = self.pop, self.sim
        weights = pop.activity * self.active_users(day)
        users = rng.choice(pop.n_users, n, p=weights / weights.sum())
        hour = (
            np.where(
                rng.random(n) < 0.9,
                pop.usual_hour[users] + rng.normal(0, 1, n) * pop.hour_spread[users],
                rng.random(n) * 24,
            )
            % 24
        )
        ts = day_start + (hour * HOUR_MS).astype(np.int64) + rng.integers(0, 60_000, n)
        ts = np.minimum(ts, day_start + DAY_MS - 1)

        span_day = day % sim.days
        travelling = (
            (pop.trip_city[users] >= 0)
            & (span_day >= pop.trip_start_day[users])
            & (span_day < pop.trip_start_day[users] + pop.trip_days[users])
        )
        home = self.home_city(day)[users]
        moved = home != pop.home_city[users]
        city = np.where(travelling, pop.trip_city[users], home)
        merchant = self._city_merchant(rng, city)
        favourite = ~travelling & ~moved & (rng.random(n) < sim.favourite_share)
        merchant = np.where(favourite, pop.favourites[users, rng.integers(0, 4, n)], merchant)
        online = rng.random(n) < sim.online_share
        merchant = np.where(online, rng.choice(pop.online_merchants, n), merchant)

        ip = pop.ips[users, rng.choice(3, n, p=[0.75, 0.18, 0.07])]
        roaming = travelling & (rng.random(n) < 0.4)
        if roaming.any():
            ip = ip.astype(object)
            ip[roaming] = random_public_ipv4(rng, int(roaming.sum()))
        return TxBatch(
            np.empty(n, dtype=object),
            ts,
            users,
            merchant,
            self._amounts(rng, users, merchant),
            ip.astype(object),
            np.full(n, None, dtype=object),
        )

    # ------------------------------------------------------------------ fraud scenarios

    def _victims(self, rng: np.random.Generator, day: int, n: int) -> np.ndarray:
        return rng.choice(np.flatnonzero(self.active_users(day)), n)

    def _usual_times(self, rng: np.random.Generator, users: np.ndarray, day_start: int) -> np.ndarray:
        """Times around each user's usual hours: fraud is not given away by the clock alone."""
        pop = self.pop
        hour = (pop.usual_hour[users] + rng.normal(0, 1, len(users)) * pop.hour_spread[users]) % 24
        return day_start + (hour * HOUR_MS).astype(np.int64) + rng.integers(0, 60_000, len(users))

    def _far_city(self, rng: np.random.Generator, user: int, day: int, min_km: float) -> int:
        cities = self.pop.cities
        home = self.home_city(day)[user]
        distance = haversine_km(cities.latitude[home], cities.longitude[home], cities.latitude, cities.longitude)
        far = np.flatnonzero(distance >= min_km)
        return int(rng.choice(far)) if len(far) else int(np.argmax(distance))

    def _city_shops(self, city: int) -> np.ndarray:
        start = self._city_offsets[city]
        return self._city_flat[start : start + self._city_counts[city]]

    def _burst(self, scenario, rng, user, merchants, start, window_ms, amounts, ip) -> _Episode:
        """One victim's payments spread over ``window_ms`` from ``start``, all from one device."""
        size = len(merchants)
        ts = start + np.sort(rng.uniform(0, window_ms, size)).astype(np.int64)
        return _Episode(scenario, ts, np.full(size, user), merchants, amounts, np.full(size, ip, dtype=object))

    def _card_testing(self, rng, day, day_start, sizes: list[int]) -> list[_Episode]:
        p = self.sim.scenarios.card_testing
        pop = self.pop
        episodes = []
        for size in sizes:
            user = self._victims(rng, day, 1)
            shops = pop.online_merchants
            merchants = rng.choice(shops, size, replace=len(shops) < size)
            # Attempts follow each other by a few seconds: the burst lasts gaps summed, not a window.
            ts = self._usual_times(rng, user, day_start)[0] + (
                np.cumsum(rng.uniform(*p.gap_seconds, size)) * 1000
            ).astype(np.int64)
            amounts = np.round(rng.uniform(*p.amount, size), 2)
            ip = random_public_ipv4(rng, 1)[0] if rng.random() < p.fraudster_ip_probability else pop.ips[user[0], 0]
            episodes.append(
                _Episode(
                    "card_testing", ts, np.full(size, user[0]), merchants, amounts, np.full(size, ip, dtype=object)
                )
            )
        return episodes

    def _account_takeover(self, rng, day, day_start, sizes: list[int]) -> list[_Episode]:
        """A new device far from home buys big-ticket items within hours."""
        p = self.sim.scenarios.account_takeover
        pop = self.pop
        episodes = []
        for size in sizes:
            user = self._victims(rng, day, 1)
            shops = self._city_shops(self._far_city(rng, int(user[0]), day, p.min_distance_km))
            big = shops[np.isin(pop.category[shops], list(BIG_TICKET))]
            merchants = rng.choice(big if len(big) else shops, size)
            amounts = np.round(
                pop.typical_amount(np.full(size, user[0]), merchants) * rng.uniform(*p.amount_multiplier, size), 2
            )
            window = rng.uniform(*p.window_hours) * HOUR_MS
            start = self._usual_times(rng, user, day_start)[0]
            episodes.append(
                self._burst(
                    "account_takeover",
                    rng,
                    int(user[0]),
                    merchants,
                    start,
                    window,
                    amounts,
                    random_public_ipv4(rng, 1)[0],
                )
            )
        return episodes

    def _stolen_card_spree(self, rng, day, day_start, sizes: list[int]) -> list[_Episode]:
        """A thief in the victim's own city spends fast right after the theft."""
        p = self.sim.scenarios.stolen_card_spree
        pop = self.pop
        episodes = []
        for size in sizes:
            user = self._victims(rng, day, 1)
            merchants = self._city_merchant(rng, np.full(size, self.home_city(day)[user[0]]))
            amounts = np.round(
                pop.typical_amount(np.full(size, user[0]), merchants) * rng.uniform(*p.amount_multiplier, size), 2
            )
            window = rng.uniform(*p.window_minutes) * 60_000
            start = self._usual_times(rng, user, day_start)[0]
            episodes.append(
                self._burst(
                    "stolen_card_spree",
                    rng,
                    int(user[0]),
                    merchants,
                    start,
                    window,
                    amounts,
                    random_public_ipv4(rng, 1)[0],
                )
            )
        return episodes

    def _compromised_merchant(self, rng, day, day_start, n: int) -> list[_Episode]:
        """Online shops taken over: for days, part of their traffic is charges to random cards."""
        p = self.sim.scenarios.compromised_merchant
        pop = self.pop
        slots = max(1, math.ceil(n / p.fraud_per_merchant_day))
        episodes = []
        for slot, count in enumerate(largest_remainder(n, np.ones(slots)).tolist()):
            # Slot j's merchant stays compromised for duration_days (windows staggered by slot), so the
            # same shop turns fraudulent day after day, and the next window picks another one.
            window = (day + 3 * slot) // p.duration_days
            window_rng = np.random.default_rng([self.traffic_seed, 7, slot, window])
            merchant = int(window_rng.choice(pop.online_merchants))
            server_ip = random_public_ipv4(window_rng, 1)[0]
            users = self._victims(rng, day, count)
            merchants = np.full(count, merchant)
            amounts = self._amounts(rng, users, merchants, scale=rng.uniform(*p.amount_multiplier))
            ts = self._usual_times(rng, users, day_start)
            episodes.append(
                _Episode("compromised_merchant", ts, users, merchants, amounts, np.full(count, server_ip, dtype=object))
            )
        return episodes

    def _amount_anomaly(self, rng, day, day_start, n: int) -> list[_Episode]:
        """The victim's own device, near home, usual hours: only the amount, against the user's own
        history, is odd (the victim was talked into paying)."""
        p = self.sim.scenarios.amount_anomaly
        pop = self.pop
        users = self._victims(rng, day, n)
        merchants = self._city_merchant(rng, self.home_city(day)[users])
        amounts = np.round(pop.typical_amount(users, merchants) * rng.uniform(*p.amount_multiplier, n), 2)
        ips = pop.ips[users, 0].astype(object)
        return [_Episode("amount_anomaly", self._usual_times(rng, users, day_start), users, merchants, amounts, ips)]

    def _impossible_travel(self, rng, day, day_start, n: int) -> list[_Episode]:
        """A genuine payment at home, then minutes later one far away: only the far one is fraud."""
        p = self.sim.scenarios.impossible_travel
        pop = self.pop
        users = self._victims(rng, day, n)
        anchor_merchants = self._city_merchant(rng, self.home_city(day)[users])
        anchor_ts = self._usual_times(rng, users, day_start)
        far = np.array([self._far_city(rng, int(u), day, p.min_distance_km) for u in users], dtype=np.int64)
        far_merchants = self._city_merchant(rng, far)
        gap = (rng.uniform(*p.gap_minutes, n) * 60_000).astype(np.int64)
        amounts = np.round(pop.typical_amount(users, far_merchants) * rng.uniform(*p.amount_multiplier, n), 2)
        anchor_amounts = self._amounts(rng, users, anchor_merchants)
        return [
            _Episode(None, anchor_ts, users, anchor_merchants, anchor_amounts, pop.ips[users, 0].astype(object)),
            _Episode(
                "impossible_travel",
                anchor_ts + gap,
                users,
                far_merchants,
                amounts,
                random_public_ipv4(rng, n).astype(object),
            ),
        ]


@dataclass
class _Episode:
    scenario: str | None  # None: genuine transactions that set a scenario up (counted as legitimate)
    ts: np.ndarray
    users: np.ndarray
    merchants: np.ndarray
    amounts: np.ndarray
    ips: np.ndarray

    def batch(self) -> TxBatch:
        n = len(self.ts)
        return TxBatch(
            np.empty(n, dtype=object),
            self.ts.astype(np.int64),
            self.users.astype(np.int64),
            self.merchants.astype(np.int64),
            self.amounts.astype(float),
            self.ips.astype(object),
            np.full(n, self.scenario, dtype=object),
        )
