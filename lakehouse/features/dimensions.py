"""The table-based features in numpy and pandas, from dimension snapshots held in memory: the
vectorised twin of :func:`lakehouse.features.offline.enrich`, for a Python step that must not
plan a Spark join per micro-batch (issue 15's scorer).

A :class:`Snapshot` holds the user and merchant versions and the merchant daily statistics as
sorted arrays, read once at a known Delta version of each table and replaced when a table moves
on. :func:`table_features` then computes, for a batch of state rows, exactly what ``enrich``
computes in Spark:

- profiles and merchants *as of the event time*: the latest ``updated_at`` at or before it, ties
  broken by the later Kafka record (``_partition``, ``_offset``); a null key or ``updated_at``
  matches nothing;
- the merchant day windows from whole days before the event's day, and the fraud rates of the
  windows that end ``feedback_delay_days`` before it (prefix sums per merchant);
- distances, speed, calendar and ages in UTC, with Spark's null rules (``greatest`` skips a null).

Everything is keyed by event time in epoch microseconds (``time_us``) and days since the epoch,
so a date in year 1 or 9999 is an ordinary integer here.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from lakehouse.contract.features import (
    MERCHANT_DAY_WINDOWS,
    MERCHANT_RISK_WINDOWS,
    feature_table_columns,
    feature_table_types,
)
from lakehouse.features.columns import SMALL, Columns, array, ints, objects
from lakehouse.features.offline import EARTH_RADIUS_KM, NIGHT_END_HOUR

if TYPE_CHECKING:
    import pandas as pd

DAY_US = 86_400 * 1_000_000


class _AsOfIndex:
    """Rows by (key, time), for "the latest row of this key at or before this time" over many
    lookups at once: keys become integer codes and times dense ranks, so one sorted int64 array
    (code x ranks + rank) answers every lookup with a single ``searchsorted``, whether a call
    asks for one event (a per-event processor) or a whole micro-batch. Row times must be unique
    per key."""

    def __init__(self, keys: np.ndarray, times: np.ndarray) -> None:
        import pandas as pd

        codes, uniques = pd.factorize(np.asarray(keys, object))
        times = np.asarray(times, np.int64)
        self.keys = pd.Index(uniques)
        self.times = np.unique(times)
        self.order = np.lexsort((times, codes))
        self.codes = codes[self.order]
        self.composite = self.codes * len(self.times) + np.searchsorted(self.times, times[self.order])

    def _codes(self, keys: np.ndarray) -> np.ndarray:
        """Each key's code (-1: not a known key). A few keys (one event's) are looked up in a dict:
        pandas' hashing pays a fixed cost per call that one event cannot amortise."""
        if len(keys) > SMALL:
            return self.keys.get_indexer(keys)
        return np.array([self.code_of.get(key, -1) for key in keys.tolist()], np.int64)

    @cached_property
    def code_of(self) -> dict:
        return {key: code for code, key in enumerate(self.keys.tolist())}

    def find(self, keys: np.ndarray, times: np.ndarray) -> np.ndarray:
        """Per lookup, the row (position in the input arrays) in effect; -1 when none (or a null key)."""
        codes = self._codes(np.asarray(keys, object))
        if not len(self.order):  # no rows at all (a fresh lake): nothing is in effect
            return np.full(len(codes), -1, np.int64)
        ranks = np.searchsorted(self.times, np.asarray(times, np.int64), side="right") - 1
        at = np.searchsorted(self.composite, codes * len(self.times) + ranks, side="right") - 1
        found = (codes >= 0) & (at >= 0)
        found[found] = self.codes[at[found]] == codes[found]
        return np.where(found, self.order[np.maximum(at, 0)], -1)


@dataclass(frozen=True)
class Versions:
    """One versioned dimension: for each key, its versions by ``updated_at`` (ties resolved)."""

    frame: pd.DataFrame  # key, updated_us, then the value columns; sorted by updated_us

    @classmethod
    def build(cls, rows: pd.DataFrame, key: str, columns: list[str]) -> Versions:
        """``rows``: key, updated_at (µs since the epoch, nullable), _partition, _offset, columns."""
        frame = rows[rows[key].notna() & rows["updated_at"].notna()]
        frame = frame.assign(updated_us=frame["updated_at"].astype("int64"))
        frame = frame.sort_values([key, "updated_us", "_partition", "_offset"], kind="stable", na_position="first")
        frame = frame.drop_duplicates([key, "updated_us"], keep="last")  # same instant: the later record
        frame = frame[[key, "updated_us", *columns]].rename(columns={key: "key"})
        return cls(frame.sort_values("updated_us", kind="stable").reset_index(drop=True))

    @cached_property
    def _index(self) -> _AsOfIndex:
        return _AsOfIndex(self.frame["key"].to_numpy(object), self.frame["updated_us"].to_numpy(np.int64))

    @cached_property
    def _columns(self) -> dict[str, tuple[np.ndarray, object]]:
        """Each value column as an array with one extra slot at the end for "no version" (NaN or None)."""
        import pandas as pd

        out = {}
        for name in self.frame.columns[2:]:
            column = self.frame[name]
            if not pd.api.types.is_numeric_dtype(column.dtype):
                values, missing = column.astype(object).where(column.notna(), None).to_numpy(object), None
            else:
                values, missing = column.astype("Float64").to_numpy(np.float64, na_value=np.nan), np.nan
            out[name] = np.append(values, np.array([missing], values.dtype))
        return out

    def as_of(self, keys: np.ndarray, times_us: np.ndarray, prefix: str) -> dict[str, np.ndarray]:
        """For each (key, time): the version in effect's columns, named ``prefix`` + name (numbers
        as float64 with NaN, others as objects with None, where there is none or the key is null)."""
        rows = self._index.find(keys, times_us)
        rows = np.where(rows < 0, len(self.frame), rows)
        return {prefix + name: values[rows] for name, values in self._columns.items()}


@dataclass(frozen=True)
class DailyCounts:
    """Per merchant: cumulative transactions and frauds by day, for window sums in O(log n)."""

    frame: pd.DataFrame  # key, day, cum_tx, cum_fraud; sorted by day

    @classmethod
    def build(cls, daily: pd.DataFrame) -> DailyCounts:
        """``daily``: merchant_id, day (days since the epoch), tx_count, fraud_count."""
        frame = daily[daily["merchant_id"].notna()]
        frame = frame.assign(
            day=frame["day"].astype(np.int64),
            tx_count=frame["tx_count"].fillna(0).astype(np.int64),
            fraud_count=frame["fraud_count"].fillna(0).astype(np.int64),
        ).sort_values(["merchant_id", "day"], kind="stable")
        grouped = frame.groupby("merchant_id", sort=False)
        frame = frame.assign(
            cum_tx=grouped["tx_count"].cumsum().astype(np.int64),
            cum_fraud=grouped["fraud_count"].cumsum().astype(np.int64),
        )
        frame = frame[["merchant_id", "day", "cum_tx", "cum_fraud"]].rename(columns={"merchant_id": "key"})
        return cls(frame.sort_values("day", kind="stable").reset_index(drop=True))

    @cached_property
    def _index(self) -> tuple[_AsOfIndex, np.ndarray, np.ndarray]:
        cumulative = [np.append(self.frame[c].to_numpy(np.int64), 0) for c in ("cum_tx", "cum_fraud")]
        index = _AsOfIndex(self.frame["key"].to_numpy(object), self.frame["day"].to_numpy(np.int64))
        return index, *cumulative

    def through(self, keys: np.ndarray, days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cumulative (transactions, frauds) of each key up to and including each day (0 before)."""
        index, tx, fraud = self._index
        rows = index.find(keys, days)
        rows = np.where(rows < 0, len(self.frame), rows)
        return tx[rows], fraud[rows]


@dataclass(frozen=True)
class Snapshot:
    """The dimension tables as of known Delta versions (``versions``: table → version)."""

    users: Versions
    merchants: Versions
    daily: DailyCounts
    versions: dict[str, int]

    @classmethod
    def build(
        cls, users: pd.DataFrame, merchants: pd.DataFrame, daily: pd.DataFrame, versions: dict[str, int]
    ) -> Snapshot:
        return cls(
            Versions.build(users, "user_id", ["age", "signup_day", "latitude", "longitude"]),
            Versions.build(merchants, "merchant_id", ["category", "latitude", "longitude"]),
            DailyCounts.build(daily),
            dict(versions),
        )


def haversine_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """As :func:`lakehouse.features.offline.haversine_km` (differences first, then radians)."""
    lat1, lon1, lat2, lon2 = (np.asarray(a, np.float64) for a in (lat1, lon1, lat2, lon2))
    a = np.sin(np.radians(lat2 - lat1) / 2) ** 2 + np.cos(np.radians(lat1)) * np.cos(np.radians(lat2)) * (
        np.sin(np.radians(lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(a))


def table_features(state: Columns, snapshot: Snapshot, *, feedback_delay_days: int) -> dict[str, Any]:
    """State rows (:func:`lakehouse.features.offline.state_output_ddl`, with ``time_us``) → the
    feature table's columns, in its order and types (nullable pandas arrays; see
    :mod:`lakehouse.features.columns`)."""
    time_us = ints(state["time_us"])
    day = np.floor_divide(time_us, DAY_US)
    user = snapshot.users.as_of(objects(state["user_id"]), time_us, "u_")
    merchant = snapshot.merchants.as_of(objects(state["merchant_id"]), time_us, "m_")
    previous = snapshot.merchants.as_of(objects(state["prev_merchant_id"]), time_us, "p_")

    m_lat, m_lon = merchant["m_latitude"], merchant["m_longitude"]
    prev_distance = haversine_km(previous["p_latitude"], previous["p_longitude"], m_lat, m_lon)
    prev_us = array(state["prev_time_us"]).astype("Float64").to_numpy(np.float64, na_value=np.nan)
    hours = (time_us - prev_us) / 3.6e9
    hours = np.where(np.isnan(hours), 1 / 60, np.maximum(hours, 1 / 60))  # Spark's greatest skips a null
    signup_us = user["u_signup_day"] * DAY_US
    account_age_days = (time_us - signup_us) / 86_400e6
    hour = np.floor_divide(np.mod(time_us, DAY_US), 3_600_000_000)
    weekday = np.mod(day + 4, 7)  # 0 = Sunday (1970-01-01 was a Thursday)

    keys = objects(state["merchant_id"])
    before_tx, _ = snapshot.daily.through(keys, day - 1)
    counts = {}
    for name, days in MERCHANT_DAY_WINDOWS.items():
        start_tx, _ = snapshot.daily.through(keys, day - 1 - days)
        counts[f"merchant_tx_count_{name}"] = before_tx - start_tx
    end_tx, end_fraud = snapshot.daily.through(keys, day - 1 - feedback_delay_days)
    for name, days in MERCHANT_RISK_WINDOWS.items():
        start_tx, start_fraud = snapshot.daily.through(keys, day - 1 - feedback_delay_days - days)
        counted, frauds = end_tx - start_tx, end_fraud - start_fraud
        with np.errstate(divide="ignore", invalid="ignore"):
            rate = np.where(counted > 0, frauds / np.where(counted > 0, counted, 1), np.nan)
        counts[f"merchant_fraud_rate_{name}"] = rate

    values = {
        "home_distance_km": haversine_km(user["u_latitude"], user["u_longitude"], m_lat, m_lon),
        "prev_distance_km": prev_distance,
        "prev_speed_kmh": prev_distance / hours,
        "hour_of_day": hour,
        "is_night": (hour < NIGHT_END_HOUR).astype(np.int64),
        "is_weekend": np.isin(weekday, (0, 6)).astype(np.int64),
        "account_age_days": account_age_days,
        "user_age_years": user["u_age"] + account_age_days / 365.25,
        "merchant_category": merchant["m_category"],
        **counts,
    }
    types = feature_table_types()
    out = {}
    for column in feature_table_columns():
        raw = values[column] if column in values else state[column]
        out[column] = _typed(raw, types[column])
    return out


_NULLABLE = {"DOUBLE": "Float64", "BIGINT": "Int64", "INT": "Int32", "BOOLEAN": "boolean"}


def _typed(values, sql: str):
    """Values as the feature table's SQL type in a nullable pandas array (a NaN left by a missing
    input is a null, as Spark's arithmetic on a null gives a null). Works on arrays, not Series:
    a call may hold a single event, so the per-column cost is what counts."""
    import pandas as pd
    from pandas.arrays import FloatingArray, IntegerArray

    if isinstance(values, pd.Series):
        values = values.array
    if sql not in _NULLABLE:
        return values.to_numpy(object) if hasattr(values, "to_numpy") else np.asarray(values, object)
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiu" and sql != "BOOLEAN":
        if values.dtype.kind in "iu":
            return IntegerArray(values.astype(np.int64 if sql == "BIGINT" else np.int32), np.zeros(len(values), bool))
        numbers = values.astype(np.float64)
        missing = np.isnan(numbers)
        if sql == "DOUBLE":
            return FloatingArray(numbers, missing)
        return IntegerArray(np.where(missing, 0, numbers).astype(np.int64 if sql == "BIGINT" else np.int32), missing)
    if isinstance(values, pd.api.extensions.ExtensionArray) and sql != "BOOLEAN":
        return values if values.dtype == _NULLABLE[sql] else values.astype(_NULLABLE[sql])
    return pd.array(values, dtype=_NULLABLE[sql])


def snapshot_from_frames(users, merchants, daily, versions: dict[str, int]) -> Snapshot:
    """A :class:`Snapshot` from Spark DataFrames of ``silver.user_versions``,
    ``silver.merchant_versions`` and ``gold.merchant_daily`` (collected to the driver: these are
    the dimensions, not the facts)."""
    from pyspark.sql import functions as F

    def micros(column: str):
        return F.unix_micros(F.col(column)).alias(column)

    users_pd = users.select(
        "user_id",
        micros("updated_at"),
        "_partition",
        "_offset",
        "age",
        F.unix_date("signup_date").alias("signup_day"),
        "latitude",
        "longitude",
    ).toPandas()
    merchants_pd = merchants.select(
        "merchant_id", micros("updated_at"), "_partition", "_offset", "category", "latitude", "longitude"
    ).toPandas()
    daily_pd = daily.select("merchant_id", F.unix_date("event_date").alias("day"), "tx_count", "fraud_count").toPandas()
    return Snapshot.build(users_pd, merchants_pd, daily_pd, versions)
