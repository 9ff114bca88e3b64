"""Feature transforms on DataFrames, shared by the offline job and the streaming scorer.

- :func:`user_state_features` (offline only): replays each user's silver transactions through
  :func:`lakehouse.features.history.advance`, the same code the online state runs;
- :func:`merchant_daily_stats`: per merchant and day, transactions and frauds (labels are only
  read from here, and only for days the feedback delay has closed);
- :func:`enrich`: the table-based features (point-in-time joins with user and merchant versions,
  merchant day windows, calendar), applied to the offline replay and to every online micro-batch.

All are ``f(df, ...) -> DataFrame``: no reads, writes or starts (those live in
:mod:`lakehouse.features.materialize` and :mod:`lakehouse.features.online`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from lakehouse.contract.features import (
    ARRIVAL_COLUMNS,
    CARRIED_COLUMNS,
    LABEL_COLUMNS,
    LABEL_TYPES,
    MERCHANT_DAY_WINDOWS,
    MERCHANT_RISK_WINDOWS,
    PREVIOUS_COLUMNS,
    SQL_TYPES,
    STATE_FEATURES,
    feature_table_columns,
    feature_table_types,
)
from lakehouse.features.columns import Columns, array, frame
from lakehouse.features.history import EVENT_COLUMNS, History, advance_users

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import Column, DataFrame

EARTH_RADIUS_KM = 6371.0088
NIGHT_END_HOUR = 6
#: A user's transactions in the order silver received them, the order the state sees them in:
#: when silver landed the row (a stream micro-batch, or an import), then Kafka partition and
#: offset. The landing time comes first so that a file imported before the stream starts counts
#: as history before it even where the import's pseudo-topic reuses partition and offset numbers
#: (and a backfill imported later comes after what the stream had already delivered).
SILVER_ARRIVAL = ("_ingested_at", "_partition", "_offset")
#: What the state step reads of each transaction (and passes on).
STATE_INPUT_COLUMNS: tuple[tuple[str, str], ...] = (
    *CARRIED_COLUMNS,
    *ARRIVAL_COLUMNS,
    *((c, LABEL_TYPES[c]) for c in LABEL_COLUMNS),
    ("time_us", "BIGINT"),
)


def state_output_ddl() -> str:
    """Schema of the rows the state step emits: carried columns, arrival, labels, state features."""
    columns = list(STATE_INPUT_COLUMNS)
    columns += [(f.name, SQL_TYPES[f.kind]) for f in STATE_FEATURES]
    columns += [(name, SQL_TYPES[kind]) for name, kind in PREVIOUS_COLUMNS]
    return ", ".join(f"{name} {sql}" for name, sql in columns)


def with_event_micros(df: DataFrame) -> DataFrame:
    """Adds ``time_us`` (event time in epoch microseconds): the state's clock."""
    from pyspark.sql import functions as F

    return df.withColumn("time_us", F.unix_micros("event_time"))


def state_columns(rows: Columns, features: dict[str, list]) -> dict[str, Any]:
    """``rows`` plus the state features (typed for Arrow: nullable integers, NaN-free doubles),
    as columns (:mod:`lakehouse.features.columns`)."""
    kinds = {f.name: f.kind for f in STATE_FEATURES} | dict(PREVIOUS_COLUMNS)
    out = {name: array(column) for name, column in rows.items() if name not in kinds}
    for name, kind in kinds.items():
        out[name] = (
            nullable(features[name], kind) if kind in ("long", "int", "double") else np.array(features[name], object)
        )
    return out


def nullable(values: list, kind: str):
    """A list of numbers (None or NaN: null) as a nullable pandas array: ``Int64`` for ``long``
    and ``int``, ``Float64`` for ``double`` (what ``pd.array(values, dtype=...)`` gives, built
    from numpy at once)."""
    from pandas.arrays import FloatingArray, IntegerArray

    missing = np.fromiter((v is None or v != v for v in values), bool, len(values))
    numbers = [0 if gone else v for v, gone in zip(values, missing.tolist(), strict=True)]
    if kind == "double":
        return FloatingArray(np.array(numbers, np.float64), missing)
    return IntegerArray(np.array(numbers, np.int64), missing)


def state_columns_frame(rows: pd.DataFrame, features: dict[str, list]) -> pd.DataFrame:
    """:func:`state_columns` as a DataFrame on ``rows``' index."""
    return frame(state_columns(rows, features), index=rows.index)


def event_arrays(rows: Columns) -> dict[str, np.ndarray]:
    """The columns :func:`advance` reads, as numpy arrays (device_ip None when missing)."""
    arrays = {c: np.asarray(array(rows[c])) for c in EVENT_COLUMNS}
    arrays["device_ip"] = np.array([None if v is None or v != v else v for v in arrays["device_ip"]], object)
    return arrays


def user_state_features(silver: DataFrame, *, max_events: int, buckets: int | None = None) -> DataFrame:
    """Silver transactions → the state features of each, replaying every user's transactions in
    arrival order (:data:`SILVER_ARRIVAL`: when silver landed them, then Kafka partition and
    offset) from an empty history.

    Users are spread over ``buckets`` groups (by a hash of user_id; default: twice the shuffle
    partitions), and each group runs through :func:`advance_users` in one call, the kernel the
    scorer runs per micro-batch.

    Needs the carried, arrival and label columns; returns them plus the state features and the
    previous-transaction columns (:func:`state_output_ddl`)."""
    from pyspark.sql import functions as F

    ddl = state_output_ddl()
    output = [c.strip().split(" ")[0] for c in ddl.split(",")]

    def replay(rows: pd.DataFrame) -> pd.DataFrame:
        rows = rows.sort_values(["arrival_us", "kafka_partition", "kafka_offset"], kind="stable").reset_index(drop=True)
        user_ids, users = np.unique(rows["user_id"].to_numpy().astype(str), return_inverse=True)
        histories = [History.empty() for _ in range(len(user_ids))]
        features, _, _ = advance_users(histories, users, event_arrays(rows), max_events=max_events)
        return state_columns_frame(rows, features)[output]

    inputs = with_event_micros(
        silver.withColumnRenamed("_partition", "kafka_partition").withColumnRenamed("_offset", "kafka_offset")
    )
    arrival = F.unix_micros(F.col(SILVER_ARRIVAL[0])).alias("arrival_us")
    inputs = inputs.select(*[c for c, _ in STATE_INPUT_COLUMNS], arrival)
    if buckets is None:
        buckets = 2 * int(silver.sparkSession.conf.get("spark.sql.shuffle.partitions"))
    bucket = F.pmod(F.xxhash64("user_id"), F.lit(buckets))
    return inputs.groupBy(bucket.alias("_bucket")).applyInPandas(replay, ddl)


def merchant_daily_stats(transactions: DataFrame) -> DataFrame:
    """Per merchant and event day: ``tx_count`` and ``fraud_count`` (labels: read by nothing but
    the delayed fraud-rate window). Needs merchant_id, event_date, is_fraud."""
    from pyspark.sql import functions as F

    return transactions.groupBy("merchant_id", "event_date").agg(
        F.count("*").alias("tx_count"),
        F.sum(F.when(F.col("is_fraud"), 1).otherwise(0)).cast("bigint").alias("fraud_count"),
    )


def haversine_km(lat1: Column, lon1: Column, lat2: Column, lon2: Column) -> Column:
    from pyspark.sql import functions as F

    a = F.pow(F.sin(F.radians(lat2 - lat1) / 2), 2) + F.cos(F.radians(lat1)) * F.cos(F.radians(lat2)) * F.pow(
        F.sin(F.radians(lon2 - lon1) / 2), 2
    )
    return F.lit(2 * EARTH_RADIUS_KM) * F.asin(F.sqrt(a))


def as_of(
    events: DataFrame, versions: DataFrame, *, key: str, event_key: str, columns: list[str], prefix: str
) -> DataFrame:
    """Left-join each event with the version of ``key`` in effect at its event time (latest
    ``updated_at`` at or before it; ties: the later Kafka record), columns renamed ``prefix``+name.
    Needs events: transaction_id, event_time, ``event_key``; versions: key, updated_at, columns."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    order = [F.col("_v_updated_at").desc_nulls_last()]
    if "_partition" in versions.columns:
        order += [F.col("_v_partition").desc_nulls_last(), F.col("_v_offset").desc_nulls_last()]
        extra = [F.col("_partition").alias("_v_partition"), F.col("_offset").alias("_v_offset")]
    else:
        extra = []
    chosen = versions.select(
        F.col(key).alias("_v_key"),
        F.col("updated_at").alias("_v_updated_at"),
        *extra,
        *[F.col(c).alias(prefix + c) for c in columns],
    )
    joined = events.join(
        chosen,
        (F.col(event_key) == F.col("_v_key")) & (F.col("_v_updated_at") <= F.col("event_time")),
        "left",
    )
    rank = F.row_number().over(Window.partitionBy("transaction_id").orderBy(*order))
    return (
        joined.withColumn("_v_rank", rank)
        .where("_v_rank = 1")
        .drop("_v_rank", *[c for c in chosen.columns if c.startswith("_v_")])
    )


def merchant_day_windows(events: DataFrame, daily: DataFrame, *, feedback_delay_days: int) -> DataFrame:
    """Per (merchant_id, event_date) of ``events``: the merchant count windows and the delayed
    fraud rates, from ``daily`` (:func:`merchant_daily_stats`). Only days strictly before the
    event's day count; each fraud rate's window ends ``feedback_delay_days`` before it."""
    from pyspark.sql import functions as F

    keys = events.select("merchant_id", "event_date").distinct()
    span = max(max(MERCHANT_DAY_WINDOWS.values()), feedback_delay_days + max(MERCHANT_RISK_WINDOWS.values()))
    d = daily.select(
        F.col("merchant_id").alias("_d_merchant"), F.col("event_date").alias("_d_date"), "tx_count", "fraud_count"
    )
    age = F.datediff(F.col("event_date"), F.col("_d_date"))  # 1 = the day before
    joined = keys.join(d, (F.col("merchant_id") == F.col("_d_merchant")) & (age >= 1) & (age <= span), "left")
    sums = [
        F.coalesce(F.sum(F.when(age <= days, F.col("tx_count"))), F.lit(0))
        .cast("bigint")
        .alias(f"merchant_tx_count_{name}")
        for name, days in MERCHANT_DAY_WINDOWS.items()
    ]
    rates = []
    for name, days in MERCHANT_RISK_WINDOWS.items():
        labelled = (age > feedback_delay_days) & (age <= feedback_delay_days + days)
        frauds = F.sum(F.when(labelled, F.col("fraud_count")))
        counted = F.sum(F.when(labelled, F.col("tx_count")))
        rates.append(F.when(counted > 0, frauds / counted).alias(f"merchant_fraud_rate_{name}"))
    return joined.groupBy("merchant_id", "event_date").agg(*sums, *rates)


def enrich(
    state: DataFrame,
    *,
    user_versions: DataFrame,
    merchant_versions: DataFrame,
    merchant_daily: DataFrame,
    feedback_delay_days: int,
    carry: tuple[str, ...] = (),
) -> DataFrame:
    """State rows (:func:`state_output_ddl`) → the feature table's rows (:func:`feature_table_columns`),
    plus the ``carry`` columns of the state rows, unchanged.

    Profiles and merchants are taken as of the event time (``updated_at`` at or before it), so a
    later move or re-categorisation never reaches back; merchant windows come from whole days
    before the event's day."""
    from pyspark.sql import functions as F

    out = as_of(
        state,
        user_versions,
        key="user_id",
        event_key="user_id",
        columns=["age", "signup_date", "latitude", "longitude"],
        prefix="u_",
    )
    out = as_of(
        out,
        merchant_versions,
        key="merchant_id",
        event_key="merchant_id",
        columns=["category", "latitude", "longitude"],
        prefix="m_",
    )
    out = as_of(
        out,
        merchant_versions,
        key="merchant_id",
        event_key="prev_merchant_id",
        columns=["latitude", "longitude"],
        prefix="p_",
    )
    out = out.join(
        merchant_day_windows(out, merchant_daily, feedback_delay_days=feedback_delay_days),
        ["merchant_id", "event_date"],
        "left",
    )

    hours_since_prev = F.greatest((F.col("time_us") - F.col("prev_time_us")) / F.lit(3.6e9), F.lit(1 / 60))
    prev_distance = haversine_km(F.col("p_latitude"), F.col("p_longitude"), F.col("m_latitude"), F.col("m_longitude"))
    signup_us = F.unix_micros(F.col("u_signup_date").cast("timestamp"))
    hour = F.hour("event_time")
    out = (
        out.withColumn(
            "home_distance_km",
            haversine_km(F.col("u_latitude"), F.col("u_longitude"), F.col("m_latitude"), F.col("m_longitude")),
        )
        .withColumn("prev_distance_km", prev_distance)
        .withColumn("prev_speed_kmh", prev_distance / hours_since_prev)
        .withColumn("hour_of_day", hour)
        .withColumn("is_night", (hour < NIGHT_END_HOUR).cast("int"))
        .withColumn("is_weekend", F.dayofweek("event_time").isin(1, 7).cast("int"))
        .withColumn("account_age_days", (F.col("time_us") - signup_us) / F.lit(86_400e6))
        .withColumn("user_age_years", F.col("u_age") + F.col("account_age_days") / F.lit(365.25))
        .withColumn("merchant_category", F.col("m_category"))
    )
    for name in (f"merchant_tx_count_{w}" for w in MERCHANT_DAY_WINDOWS):
        out = out.withColumn(name, F.coalesce(F.col(name), F.lit(0).cast("bigint")))
    types = feature_table_types()
    return out.select(*[F.col(c).cast(types[c]) for c in feature_table_columns()], *carry)


def transaction_features(
    silver: DataFrame,
    *,
    user_versions: DataFrame,
    merchant_versions: DataFrame,
    merchant_daily: DataFrame,
    max_events: int,
    feedback_delay_days: int,
) -> DataFrame:
    """The offline path end to end: silver transactions → feature table rows."""
    return enrich(
        user_state_features(silver, max_events=max_events),
        user_versions=user_versions,
        merchant_versions=merchant_versions,
        merchant_daily=merchant_daily,
        feedback_delay_days=feedback_delay_days,
    )
