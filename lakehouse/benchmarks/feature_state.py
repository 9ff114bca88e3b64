"""Bounded online state: stream many distinct users through the online feature operator and record
state size and micro-batch duration as the number of users seen grows.

The stream is synthetic and shaped to stress the state, not the model: in each round a cohort of
new users appears, each user pays in two consecutive rounds, then never again (the worst case for
state: nobody comes back to be pruned by the window). Only the TTL can evict them, so the bench
runs with a short ``state_ttl_hours`` (production keeps 32 days; the mechanism is the same, the
clock is compressed) and reports, per micro-batch, the users seen so far, the state rows and
bytes (Spark's state operator metrics) and the batch duration. Bounded state means the last two
level off while the users seen keep growing.
"""

from __future__ import annotations

import json
import statistics
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lakehouse.benchmarks.report import Report, machine_description
from lakehouse.platform.spark import TRACK_STATE_ROWS
from lakehouse.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

ROUND_SECONDS = 600  # event time between rounds
T0_MS = 1_790_000_000_000


@dataclass(frozen=True)
class BatchPoint:
    batch: int
    rows: int
    users_seen: int
    state_rows: int
    state_bytes: int
    sst_bytes: int
    duration_ms: int


def synthetic_rounds(users: int, per_round: int, seed: int = 7):
    """Yield (round, [(key, value)]) with ``per_round`` new users per round, each paying in its
    first round and the next."""
    rng = np.random.default_rng(seed)
    rounds = -(-users // per_round)
    for r in range(rounds + 1):
        cohorts = [c for c in (r - 1, r) if 0 <= c < rounds]
        records = []
        for cohort in cohorts:
            first, last = cohort * per_round, min(users, (cohort + 1) * per_round)
            ids = np.arange(first, last)
            ts = T0_MS + r * ROUND_SECONDS * 1000 + rng.integers(0, ROUND_SECONDS * 1000, len(ids))
            amounts = np.round(rng.gamma(2.0, 25.0, len(ids)) + 0.5, 2)
            merchants = rng.integers(0, 5000, len(ids))
            stamps = np.char.add(np.datetime_as_string(ts.astype("datetime64[ms]"), unit="ms"), "Z")
            for user, stamp, amount, merchant in zip(
                ids.tolist(), stamps.tolist(), amounts.tolist(), merchants.tolist(), strict=True
            ):
                key = f"U{user:08d}"
                value = (
                    f'{{"transaction_id":"T{r:05d}{user:08d}","user_id":"{key}","merchant_id":"M{merchant:05d}",'
                    f'"timestamp":"{stamp}","amount":{amount:.2f},"currency":"EUR",'
                    f'"device_ip":"10.{user % 250}.{merchant % 250}.1",'
                    f'"is_fraud":false,"fraud_scenario":null}}'
                )
                records.append((key.encode(), value.encode()))
        yield r, records, min(users, (r + 1) * per_round)


def bench_state(
    spark: SparkSession,
    settings: Settings,
    *,
    users: int,
    per_round: int,
    ttl_seconds: float,
    on_progress: Callable[[str], None] = print,
) -> list[BatchPoint]:
    """Produce the synthetic rounds to a fresh topic, then drain it through the online state
    operator one round per micro-batch (noop sink); returns one point per micro-batch."""
    from lakehouse.features.online import online_state_features
    from lakehouse.platform.isolation import isolated
    from lakehouse.platform.kafka.clients import spark_options
    from lakehouse.platform.kafka.senders import make_sender
    from lakehouse.platform.kafka.topics import delete_topics, ensure_topics

    run = isolated(
        settings,
        suffix=f"statebench{uuid.uuid4().hex[:6]}",
        schemas=False,
        topics=True,
        features={"state_ttl_hours": ttl_seconds / 3600},
    )
    ensure_topics(run.kafka)
    topic = run.kafka.topics.transactions.name
    sender = make_sender(run.kafka, run.producer)
    seen_after: list[int] = []
    sizes: list[int] = []
    try:
        for r, records, seen in synthetic_rounds(users, per_round):
            for key, value in records:
                sender.send(topic, key, value)
                if sender.stats.sent % 10_000 == 0:
                    sender.poll()
            seen_after.append(seen)
            sizes.append(len(records))
            if r % 20 == 0:
                on_progress(f"produced round {r}: {sender.stats.sent:,} records, {seen:,} users")
        sender.flush(300)
        if sender.stats.failed or sender.stats.delivered != sender.stats.sent:
            raise RuntimeError(f"benchmark lost records while producing: {sender.stats}")
    finally:
        sender.close()

    points: list[BatchPoint] = []
    spark.conf.set("spark.sql.streaming.numRecentProgressUpdates", str(len(sizes) + 10))
    spark.conf.set(TRACK_STATE_ROWS, "true")  # the state rows are this benchmark's figure
    kafka = (
        spark.readStream.format("kafka")
        .options(**spark_options(run.kafka))
        .option("subscribe", topic)
        .option("startingOffsets", "earliest")
        .option("maxOffsetsPerTrigger", max(sizes))
        .load()
    )
    checkpoint = f"{run.checkpoint_dir}/state_bench/{uuid.uuid4().hex}"
    query = (
        online_state_features(kafka, run)
        .writeStream.format("noop")
        .queryName("state_bench")
        .option("checkpointLocation", checkpoint)
        .trigger(availableNow=True)
        .start()
    )
    try:
        query.awaitTermination()
        if query.exception() is not None:
            raise RuntimeError(f"state benchmark query failed: {query.exception()}")
        consumed = 0
        for progress in query.recentProgress:
            rows = int(progress["numInputRows"])
            if rows == 0:
                continue
            consumed += rows
            operator = progress["stateOperators"][0]
            round_index = int(np.searchsorted(np.cumsum(sizes), consumed))
            points.append(
                BatchPoint(
                    batch=int(progress["batchId"]),
                    rows=rows,
                    users_seen=seen_after[min(round_index, len(seen_after) - 1)],
                    state_rows=int(operator["numRowsTotal"]),
                    state_bytes=int(operator["memoryUsedBytes"]),
                    sst_bytes=int((operator.get("customMetrics") or {}).get("rocksdbSstFileSize", 0)),
                    duration_ms=int(progress["durationMs"]["triggerExecution"]),
                )
            )
            if len(points) % 10 == 0:
                last = points[-1]
                on_progress(f"batch {last.batch}: {last.users_seen:,} users seen, state rows {last.state_rows:,}")
    finally:
        delete_topics(run.kafka, [t.name for t in run.kafka.topics.all()])
    return points


def state_report(
    points: list[BatchPoint], *, users: int, per_round: int, ttl_seconds: float, machine: str | None = None
) -> Report:
    """The page of ``fraudlake bench state``: a sample of the points, the growth of users seen next
    to the growth of the state and of the batch duration; every point as JSON lines next to it."""
    quarter = max(1, len(points) // 4)
    early, late = points[quarter : 2 * quarter], points[-quarter:]

    def median(values) -> float:
        return statistics.median(values) if values else float("nan")

    step = max(1, len(points) // 16)
    sample = points[::step] + ([points[-1]] if points and points[-1] is not points[::step][-1] else [])
    report = Report(
        "feature-state",
        "Online feature state: bounded as users grow",
        f"fraudlake bench state --users {users} --per-round {per_round} --ttl-seconds {ttl_seconds:g}",
        settings={
            "users": f"{users:,} distinct, {per_round:,} new per round; each pays in two consecutive rounds and never"
            " again",
            "stream": f"{sum(p.rows for p in points):,} transactions, one round per micro-batch, {len(points)} batches",
            "operator": "transformWithStateInPandas keyed by Kafka partition, RocksDB; noop sink, local Spark",
            "user TTL": f"compressed to {ttl_seconds:g} s (production: `features.state_ttl_hours`, 768 h)",
        },
        machine=machine or machine_description(),
    )
    report.table(
        ["batch", "users seen", "state rows", "state memory MiB", "RocksDB SST MiB", "batch ms"],
        [
            (
                p.batch,
                f"{p.users_seen:,}",
                f"{p.state_rows:,}",
                f"{p.state_bytes / 2**20:,.1f}",
                f"{p.sst_bytes / 2**20:,.1f}",
                f"{p.duration_ms:,}",
            )
            for p in sample
        ],
        align="rrrrrr",
    )
    if early and late:
        ratio_users = late[-1].users_seen / max(1, early[0].users_seen)
        rows_early, rows_late = median([p.state_rows for p in early]), median([p.state_rows for p in late])
        ms_early, ms_late = median([p.duration_ms for p in early]), median([p.duration_ms for p in late])
        report.text(
            f"From the second quarter of the run to the last, users seen grow {ratio_users:.1f}x while the median"
            " state",
            f"rows change {rows_late / max(1, rows_early):.2f}x ({rows_early:,.0f} → {rows_late:,.0f}) and the",
            f"median batch duration {ms_late / max(1, ms_early):.2f}x ({ms_early:,.0f} ms → {ms_late:,.0f} ms):",
            "the state levels off at the users active within the TTL, whatever the number of users seen.",
        )
    report.text("Raw points (JSON lines) are in the `.jsonl` file next to this page.")
    return report.attach(".jsonl", "".join(json.dumps(p.__dict__) + "\n" for p in points))


def write_state_report(
    path: Path, points: list[BatchPoint], *, users: int, per_round: int, ttl_seconds: float, machine: str
) -> str:
    return state_report(points, users=users, per_round=per_round, ttl_seconds=ttl_seconds, machine=machine).write(path)
