"""Rebuilding the decision service's online store from silver and the topic (``fraudlake serve
--warm``), as a new stream scorer warms its state (:mod:`lakehouse.features.warm`):

1. every partition's lease is taken, so no decision is taken meanwhile, and a pending decision's
   record is appended again (the stream keeps the first copy);
2. the histories and partition clocks silver implies (:func:`lakehouse.features.warm.warm_state`,
   pinned Delta versions);
3. then the records of ``transaction_stream`` silver has not processed yet, in offset order, each
   through the contract rules and the history step the service and the stream take;
4. the store's histories and clocks are replaced by the result (decisions kept for retries).
"""

from __future__ import annotations

import logging
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np

from lakehouse.errors import PlatformError
from lakehouse.features.history import ACCEPTED, History, history_settings, prune
from lakehouse.ingest.record_rules import check_transaction
from lakehouse.scoring.event import event_columns, history_step

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from lakehouse.decisions.service import DecisionService
    from lakehouse.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoreWarmed:
    users: int
    clocks: dict[int, int]
    from_silver: int  # history entries silver gave
    from_topic: int  # records read from the topic after silver
    silver_version: int


def warm_store(spark: SparkSession, settings: Settings, service: DecisionService) -> StoreWarmed:
    from lakehouse.features.warm import EARLIEST, plan_warm_start, warm_state

    limits = history_settings(settings)
    store = service.store
    with ExitStack() as leases:
        for partition in range(service.partitions):
            taken = leases.enter_context(store.lease(partition, timeout_s=service.timeout_s))
            service.finish_pending(partition, taken.token, taken.seen.pending)
        warm = plan_warm_start(spark, settings)
        rows = warm_state(spark, settings, warm).toPandas()
        clocks = {
            int(r.kafka_partition): int(r.partition_max_us)
            for r in rows[rows["user_id"].isna() & rows["partition_max_us"].notna()].itertuples()
        }
        entries = rows[rows["user_id"].notna()].sort_values(["user_id", "seq"], kind="stable")
        histories = {
            user: History(
                group["time_us"].to_numpy(np.int64),
                group["amount"].to_numpy(np.float64),
                group["merchant_id"].to_numpy(object),
                np.array([None if v is None or v != v else v for v in group["device_ip"]], object),
                group["transaction_id"].to_numpy(object),
                group["seq"].to_numpy(np.int64),
            )
            for user, group in entries.groupby("user_id", sort=False)
        }
        read = 0
        for partition, offset, timestamp_ms, value in _records_after(settings, warm.offsets, EARLIEST):
            read += 1
            created = datetime.fromtimestamp(timestamp_ms / 1000, UTC)
            checked = check_transaction(value, kafka_timestamp=created, contract=settings.data)
            if checked.reason is not None:
                continue
            user = checked.values["user_id"]
            frame = event_columns(checked.values, partition=partition, offset=offset, timestamp_ms=timestamp_ms)
            step = history_step(frame, histories.get(user, History.empty()), clocks.get(partition), **_limits(limits))
            clocks[partition] = step.clock_us
            if step.status == ACCEPTED:
                histories[user] = step.history
        states = {user: list(prune(h, **_limits(limits)).to_state()) for user, h in histories.items()}
        store.replace(clocks=clocks, histories=states)
    log.info(
        "online store warmed: %s users from silver version %s and %s topic records",
        len(states),
        warm.silver_version,
        read,
    )
    return StoreWarmed(len(states), clocks, len(entries), read, warm.silver_version)


def _limits(limits: dict) -> dict:
    return {"lateness_us": limits["lateness_us"], "max_events": limits["max_events"]}


def _records_after(settings: Settings, offsets: dict[int, int], earliest: int):
    """(partition, offset, timestamp ms, value) of ``transaction_stream`` from ``offsets`` (``earliest``:
    the first held) to the end as of now, partition by partition in offset order."""
    from kafka import TopicPartition

    from lakehouse.platform.kafka.clients import broker_errors, consumer

    topic = settings.kafka.topics.transactions.name
    reader = consumer(settings.kafka, group_id=None, enable_auto_commit=False)
    try:
        with broker_errors(settings.kafka):
            for partition, start in sorted(offsets.items()):
                tp = TopicPartition(topic, partition)
                reader.assign([tp])
                end = reader.end_offsets([tp])[tp]
                if start == earliest:
                    reader.seek_to_beginning(tp)
                else:
                    reader.seek(tp, start)
                idle = 0
                while reader.position(tp) < end:
                    records = reader.poll(timeout_ms=1000, max_records=5000).get(tp, [])
                    idle = 0 if records else idle + 1
                    if idle >= 30:
                        raise PlatformError(f"{topic}/{partition} gave no record for 30 s before offset {end}")
                    for record in records:
                        if record.offset >= end:
                            break
                        yield partition, record.offset, record.timestamp, record.value
    finally:
        reader.close()
