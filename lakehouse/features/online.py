"""Online features: the streaming scorer's path from ``transaction_stream`` to feature rows.

Kafka records are parsed and validated by the same transforms as silver
(:func:`lakehouse.ingest.transforms.parse_records`), then a ``transformWithStateInPandas`` operator keyed
by Kafka partition keeps, in the RocksDB state store:

- the partition's latest event time, to mark ``late_event`` exactly as silver does (late: older
  than the latest event time seen before it in its partition minus the watermark delay);
- each user's recent history (a map entry per user, with a processing-time TTL), fed through
  :func:`lakehouse.features.history.advance` (the code the offline job replays) and pruned after
  every micro-batch so it never outgrows the longest window.

Keying by partition, not by user, is what makes lateness identical to silver's: a user's
transactions share a partition (the producer keys by user_id) and the operator sees the
partition's records in offset order. Parallelism is therefore the topic's partition count, as
for any Kafka consumer group.

A ``foreachBatch`` step then adds the table-based features with :func:`enrich`, reading the user
and merchant versions and the merchant daily statistics as they are at that micro-batch.
Duplicates (a transaction_id already in the user's history) are marked and skipped like silver's;
a duplicate whose original is older than the history kept (30 days) would pass online only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np
from pyspark.sql.streaming import StatefulProcessor

from lakehouse.contract.features import HISTORY_S, PREVIOUS_COLUMNS, STATE_FEATURES
from lakehouse.features.history import HISTORY_COLUMNS, US, History, advance, prune
from lakehouse.features.offline import (
    STATE_INPUT_COLUMNS,
    enrich,
    event_arrays,
    state_columns_frame,
    state_output_ddl,
    with_event_micros,
)
from lakehouse.settings import Settings

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

ACCEPTED, LATE, DUPLICATE = "accepted", "late_event", "duplicate"
_STATE_TYPES = {"long": "BIGINT", "double": "DOUBLE", "string": "STRING"}
HISTORY_DDL = ", ".join(f"{name} ARRAY<{_STATE_TYPES[kind]}>" for name, kind in HISTORY_COLUMNS)


#: Online-only columns the operator passes through: when the record was written to Kafka (the
#: start of the alert latency clock).
ONLINE_CARRIED: tuple[tuple[str, str], ...] = (("kafka_timestamp", "TIMESTAMP"),)


def online_output_ddl() -> str:
    return state_output_ddl() + "".join(f", {name} {sql}" for name, sql in ONLINE_CARRIED) + ", status STRING"


#: Column order of the operator's output, and the per-row values the history step adds.
OUTPUT_COLUMNS: list[str] = [c.strip().split(" ")[0] for c in online_output_ddl().split(",")]
STATE_COLUMNS: list[str] = [f.name for f in STATE_FEATURES] + [name for name, _ in PREVIOUS_COLUMNS]


class UserHistoryProcessor(StatefulProcessor):
    """State per Kafka partition: its latest event time and a history per user (see module doc)."""

    def __init__(self, *, lateness_us: int, max_events: int, ttl_ms: int) -> None:
        self.lateness_us = lateness_us
        self.max_events = max_events
        self.ttl_ms = ttl_ms

    def init(self, handle) -> None:
        self.partition_max = handle.getValueState("partition_max_event", "time_us BIGINT")
        self.users = handle.getMapState("user_history", "user_id STRING", HISTORY_DDL, self.ttl_ms)

    def handleInputRows(self, key, rows: Iterator[pd.DataFrame], timerValues) -> Iterator[pd.DataFrame]:
        import pandas as pd

        batch = (
            pd.concat(list(rows), ignore_index=True).sort_values("kafka_offset", kind="stable").reset_index(drop=True)
        )
        if batch.empty:
            return
        times = batch["time_us"].to_numpy(np.int64)
        stored = self.partition_max.get()
        prior = stored[0] if stored is not None else None
        seen_before = np.maximum.accumulate(
            np.concatenate([[prior if prior is not None else np.iinfo(np.int64).min], times])
        )[:-1]
        has_seen = np.ones(len(times), bool)
        if prior is None:
            has_seen[0] = False
        late = has_seen & (times < seen_before - self.lateness_us)
        status = np.where(late, LATE, ACCEPTED).astype(object)
        features: dict[str, list] = {}
        accepted = np.flatnonzero(~late)
        arrays = event_arrays(batch)
        for user_id, positions in _by_user(batch["user_id"].to_numpy()[accepted], accepted):
            history = History.from_state(self.users.getValue((user_id,)))
            result = advance(history, {c: v[positions] for c, v in arrays.items()}, max_events=self.max_events)
            self.users.updateValue(
                (user_id,), prune(result.history, lateness_us=self.lateness_us, max_events=self.max_events).to_state()
            )
            status[positions[result.duplicate]] = DUPLICATE
            for name, values in result.features.items():
                column = features.setdefault(name, [None] * len(batch))
                for position, value in zip(positions, values, strict=True):
                    column[position] = value
        self.partition_max.update((int(max(times.max(), prior if prior is not None else times.max())),))
        if not features:
            features = {name: [None] * len(batch) for name in STATE_COLUMNS}
        out = state_columns_frame(batch, features)
        out["status"] = status
        yield out[OUTPUT_COLUMNS]

    def close(self) -> None:
        pass


def _by_user(user_ids: np.ndarray, positions: np.ndarray) -> Iterator[tuple[str, np.ndarray]]:
    """Positions of each user's rows, in their original (offset) order."""
    order = np.argsort(user_ids, kind="stable")
    sorted_ids = user_ids[order]
    bounds = np.flatnonzero(sorted_ids[1:] != sorted_ids[:-1]) + 1
    for chunk in np.split(order, bounds):
        if len(chunk):
            yield str(user_ids[chunk[0]]), positions[chunk]


def online_state_features(kafka: DataFrame, settings: Settings) -> DataFrame:
    """Kafka source rows of ``transaction_stream`` → one row per schema-valid transaction with
    its state features and ``status`` (accepted | late_event | duplicate; features only when
    accepted). Schema-invalid records are left to silver's quarantine."""
    from pyspark.sql import functions as F

    from lakehouse.contract.schemas import TRANSACTION_FIELDS
    from lakehouse.ingest.transforms import bronze_records, parse_records

    parsed = parse_records(bronze_records(kafka), TRANSACTION_FIELDS, settings.data).where("quarantine_reason IS NULL")
    inputs = with_event_micros(
        parsed.withColumnRenamed("partition", "kafka_partition").withColumnRenamed("offset", "kafka_offset")
    ).select(*[F.col(c) for c, _ in (*STATE_INPUT_COLUMNS, *ONLINE_CARRIED)])
    processor = UserHistoryProcessor(
        lateness_us=int(settings.lakehouse.watermark_delay_minutes * 60 * US),
        max_events=settings.features.max_history_events,
        ttl_ms=int(settings.features.state_ttl_hours * 3600 * 1000),
    )
    if settings.features.state_ttl_hours * 3600 < HISTORY_S + settings.lakehouse.watermark_delay_minutes * 60:
        log.warning("features.state_ttl_hours is below the 30-day window: returning users may lose history")
    return inputs.groupBy("kafka_partition").transformWithStateInPandas(
        statefulProcessor=processor,
        outputStructType=online_output_ddl(),
        outputMode="Append",
        timeMode="ProcessingTime",
    )


class DimensionTables:
    """The tables the online path joins with, read by location (resolved once, so a micro-batch
    makes no catalog round trip) as each one is at the time of the batch."""

    def __init__(self, spark: SparkSession, settings: Settings) -> None:
        from lakehouse.contract.tables import table_names
        from lakehouse.platform.delta import table_location

        names = table_names(settings)
        self.spark = spark
        self.locations = {
            key: table_location(spark, name)
            for key, name in (
                ("users", names.versions("users")),
                ("merchants", names.versions("merchants")),
                ("daily", names.merchant_daily),
            )
        }

    def read(self, key: str) -> DataFrame:
        return self.spark.read.format("delta").load(self.locations[key])


def enrich_batch(state_rows: DataFrame, settings: Settings, tables: DimensionTables | None = None) -> DataFrame:
    """One micro-batch of accepted state rows → feature rows (plus the online-only columns), joined
    with the dimension tables as they are now (the same :func:`enrich` the offline job runs)."""
    tables = tables or DimensionTables(state_rows.sparkSession, settings)
    return enrich(
        state_rows.where(f"status = '{ACCEPTED}'").drop("status"),
        user_versions=tables.read("users"),
        merchant_versions=tables.read("merchants"),
        merchant_daily=tables.read("daily"),
        feedback_delay_days=settings.features.feedback_delay_days,
        carry=tuple(name for name, _ in ONLINE_CARRIED),
    )
