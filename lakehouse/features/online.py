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

The scorer's subclass (:class:`lakehouse.scoring.processor.ScoringProcessor`) then adds, in the
same step, the table-based features from an in-memory snapshot of the user and merchant versions
and the merchant daily statistics (:func:`lakehouse.features.dimensions.table_features`, the twin
of the offline :func:`lakehouse.features.offline.enrich`), and the model.

Duplicates (a transaction_id already in the user's history) are marked and skipped like silver's;
a duplicate whose original is older than the history kept (30 days) would pass online only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np
from pyspark.sql.streaming import StatefulProcessor

from lakehouse.contract.features import PREVIOUS_COLUMNS, STATE_FEATURES
from lakehouse.features.history import (
    ACCEPTED,
    DUPLICATE,
    HISTORY_COLUMNS,
    LATE,
    History,
    advance_users,
    history_settings,
    late_events,
    prune,
)
from lakehouse.features.offline import (
    STATE_INPUT_COLUMNS,
    event_arrays,
    state_columns_frame,
    state_output_ddl,
    with_event_micros,
)
from lakehouse.features.state_calls import get_values, update_values
from lakehouse.settings import Settings

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame

log = logging.getLogger(__name__)

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
        self.warmed: set[str] = set()  # users this task has written from the initial state

    def handleInitialState(self, key, initialState: pd.DataFrame, timerValues) -> None:
        """A warm start (:mod:`lakehouse.features.warm`): one chunk of a partition's initial state
        rows. A user's entries may span chunks; each chunk's are merged into what the earlier ones
        wrote, in arrival order, then pruned as after a micro-batch."""
        clocks = initialState["partition_max_us"].dropna()
        if len(clocks):
            stored = self.partition_max.get()
            latest = int(clocks.max()) if stored is None else max(int(clocks.max()), stored[0])
            self.partition_max.update((latest,))
        entries = initialState[initialState["user_id"].notna()].sort_values(["user_id", "seq"], kind="stable")
        for user_id, rows in entries.groupby("user_id", sort=False):
            arrays = event_arrays(rows)
            added = History(
                rows["time_us"].to_numpy(np.int64),
                rows["amount"].to_numpy(np.float64),
                arrays["merchant_id"].astype(object),
                arrays["device_ip"],
                arrays["transaction_id"].astype(object),
                rows["seq"].to_numpy(np.int64),
            )
            if user_id in self.warmed:
                before = History.from_state(self.users.getValue((user_id,)))
                merged = [np.concatenate(pair) for pair in zip(before.columns(), added.columns(), strict=True)]
                order = np.argsort(merged[-1], kind="stable")
                added = History(*(column[order] for column in merged))
            self.users.updateValue((user_id,), self._pruned(added).to_state())
            self.warmed.add(user_id)

    def _pruned(self, history: History) -> History:
        return prune(history, lateness_us=self.lateness_us, max_events=self.max_events)

    def handleInputRows(self, key, rows: Iterator[pd.DataFrame], timerValues) -> Iterator[pd.DataFrame]:
        out = self.advance_rows(rows)
        if out is not None:
            yield out

    def advance_rows(self, rows: Iterator[pd.DataFrame]) -> pd.DataFrame | None:
        """One partition's rows of the micro-batch → its state rows (:data:`OUTPUT_COLUMNS`), in
        offset order, with the state updated; None when there are none."""
        batch = batch_frame(rows)
        if batch.empty:
            return None
        out, commit = self.advance(batch)
        commit()
        return out

    def advance(self, batch: pd.DataFrame) -> tuple[pd.DataFrame, Callable[[], None]]:
        """``batch`` (one partition's rows, in offset order) → (its state rows, the state writes).
        Nothing is written until the second is called: a caller may compute, check and drop."""
        stored = self.partition_max.get()
        late, latest = late_events(
            batch["time_us"].to_numpy(np.int64), None if stored is None else stored[0], lateness_us=self.lateness_us
        )
        status = np.where(late, LATE, ACCEPTED).astype(object)
        accepted = np.flatnonzero(~late)
        arrays = {c: v[accepted] for c, v in event_arrays(batch).items()}
        user_ids, users = np.unique(batch["user_id"].to_numpy()[accepted].astype(str), return_inverse=True)
        keys = [(user_id,) for user_id in user_ids.tolist()]
        histories = [History.from_state(value) for value in get_values(self.users, keys)]
        found, duplicate, after = advance_users(histories, users, arrays, max_events=self.max_events)
        status[accepted[duplicate]] = DUPLICATE
        features: dict[str, list] = {name: [None] * len(batch) for name in STATE_COLUMNS}
        for name, values in found.items():
            column = features[name]
            for position, value in zip(accepted.tolist(), values, strict=True):
                column[position] = value
        out = state_columns_frame(batch, features)
        out["status"] = status

        def commit() -> None:
            update_values(self.users, [(key, self._pruned(h).to_state()) for key, h in zip(keys, after, strict=True)])
            if latest is not None:
                self.partition_max.update((latest,))

        return out[OUTPUT_COLUMNS], commit

    def close(self) -> None:
        pass


def batch_frame(rows: Iterator[pd.DataFrame]) -> pd.DataFrame:
    """One partition's chunks of a micro-batch as one frame, in Kafka offset order."""
    import pandas as pd

    return pd.concat(list(rows), ignore_index=True).sort_values("kafka_offset", kind="stable").reset_index(drop=True)


def online_state_features(
    kafka: DataFrame,
    settings: Settings,
    *,
    processor: UserHistoryProcessor | None = None,
    output_ddl: str | None = None,
    initial_state: DataFrame | None = None,
) -> DataFrame:
    """Kafka source rows of ``transaction_stream`` → one row per schema-valid transaction with
    its state features and ``status`` (accepted | late_event | duplicate; features only when
    accepted). Schema-invalid records are left to silver's quarantine.

    A subclass of the processor (the scorer's) may emit other rows (``output_ddl``) from the same
    state step. ``initial_state`` (rows of :data:`lakehouse.features.warm.WARM_STATE_DDL`) warms a
    new checkpoint's state in its first micro-batch (see :mod:`lakehouse.features.warm`)."""
    from pyspark.sql import functions as F

    from lakehouse.contract.schemas import TRANSACTION_FIELDS
    from lakehouse.ingest.transforms import bronze_records, parse_records

    parsed = parse_records(bronze_records(kafka), TRANSACTION_FIELDS, settings.data).where("quarantine_reason IS NULL")
    inputs = with_event_micros(
        parsed.withColumnRenamed("partition", "kafka_partition").withColumnRenamed("offset", "kafka_offset")
    ).select(*[F.col(c) for c, _ in (*STATE_INPUT_COLUMNS, *ONLINE_CARRIED)])
    return inputs.groupBy("kafka_partition").transformWithStateInPandas(
        statefulProcessor=processor or UserHistoryProcessor(**history_settings(settings)),
        outputStructType=output_ddl or online_output_ddl(),
        outputMode="Append",
        timeMode="ProcessingTime",
        initialState=None if initial_state is None else initial_state.groupBy("kafka_partition"),
    )
