"""Health of the long-running streaming queries: ``fraudlake stream status``.

Read from outside the jobs, so it answers whether they run or not: each query's checkpoint says
which micro-batch it committed last, when that batch was planned and up to which source offsets
it read; the source says how far it goes now. The difference is the query's lag:

- a Kafka source (``bronze_<stream>``, ``score``): the topic's end offsets minus the committed
  ones, per partition, in records;
- the bronze table of a ``silver_<stream>`` query: the rows (Delta file statistics) of the
  bronze commits the query has not processed yet.

A query is *healthy* when nothing waits for it or it committed within ``max_idle_s``; *stale*
when records wait (or its lag cannot be read) and its last commit is older; *not started* when
its checkpoint holds no committed batch; *broken* when no restart can carry on by itself: its
checkpoint cannot be read (a truncated or missing offsets file), or it points where the topic
has no records (past a partition's end: the topic was recreated or truncated, so the lag would
read 0 while the query waits for offsets that will only come after everything new; or before a
partition's first offset: retention deleted records the query never read). A job that is down
while nothing arrives stays healthy: keeping the process alive is the service manager's part
(``conf/systemd/``); this check says whether data flows through.

Checkpoints and the warehouse are read as files: local or mounted folders (``file:`` URIs too).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lakehouse.contract.queries import SCORE_LANDING_QUERY, SCORE_QUERY, ingest_query_name
from lakehouse.contract.tables import STREAMS, table_names
from lakehouse.platform.checkpoints import (
    DELTA_END_INDEX,
    CheckpointError,
    CommittedBatch,
    last_commit,
    local_path,
)
from lakehouse.platform.streaming import query_plan
from lakehouse.settings import Settings

HEALTHY, STALE, NOT_STARTED, BROKEN = "healthy", "stale", "not started", "broken"


@dataclass(frozen=True)
class QueryStatus:
    job: str
    query: str
    source: str
    checkpoint: str
    batch_id: int | None
    last_batch_at: datetime | None
    idle_s: float | None
    lag: int | None  # records waiting; None: never ran, or the source could not say
    state: str
    detail: str

    def as_json(self) -> dict[str, Any]:
        return {**self.__dict__, "last_batch_at": self.last_batch_at.isoformat() if self.last_batch_at else None}


@dataclass(frozen=True)
class StreamStatus:
    checked_at: datetime
    max_idle_s: float
    queries: list[QueryStatus]

    @property
    def healthy(self) -> bool:
        return all(q.state == HEALTHY for q in self.queries)

    def summary(self) -> str:
        """One plain line: all healthy, or which queries are stale or not started and why."""
        if self.healthy:
            return f"all {len(self.queries)} streaming queries healthy (max idle {self.max_idle_s:g} s)"
        problems = [
            f"{state}: " + "; ".join(f"{q.query} ({q.detail})" for q in self.queries if q.state == state)
            for state in (BROKEN, STALE, NOT_STARTED)
            if any(q.state == state for q in self.queries)
        ]
        return " | ".join(problems)

    def as_json(self) -> dict[str, Any]:
        return {
            "checked_at": self.checked_at.isoformat(),
            "max_idle_s": self.max_idle_s,
            "healthy": self.healthy,
            "queries": [q.as_json() for q in self.queries],
        }


def checkpoint_offsets(checkpoint: Path) -> dict[int, int] | None:
    """Kafka end offsets of the last committed micro-batch of a local checkpoint (None before the first)."""
    batch = last_commit(checkpoint)
    if batch is None:
        return None
    return {
        int(partition): int(offset) for topic in batch.source_offset.values() for partition, offset in topic.items()
    }


def end_offsets(settings: Settings, *topics: str) -> dict[str, dict[int, int]]:
    """The current end offset of every partition of each topic; a topic the broker does not have is left out."""
    from lakehouse.platform.kafka.topics import offset_ranges

    ranges = offset_ranges(settings.kafka, *topics)
    return {topic: {p: end for p, (_, end) in partitions.items()} for topic, partitions in ranges.items()}


def kafka_lag(committed: Mapping[int, int], end: Mapping[int, int]) -> int:
    """Records after the committed offsets (a partition the query has not read yet counts from 0)."""
    return sum(max(0, offset - committed.get(partition, 0)) for partition, offset in end.items())


def offsets_out_of_range(committed: Mapping[int, int], ranges: Mapping[int, tuple[int, int]]) -> list[str]:
    """What is wrong with committed offsets the topic cannot serve, per partition (empty: nothing).

    Past the end: the topic was recreated or truncated under the query. Before the first offset:
    retention deleted records the query had not read. A partition the query has not read yet
    starts at its first offset, and is fine.
    """
    problems = []
    for partition, offset in sorted(committed.items()):
        first, end = ranges.get(partition, (0, 0))
        if offset > end:
            problems.append(
                f"partition {partition}: checkpoint at offset {offset:,}, past the end ({end:,}): "
                "the topic was recreated or truncated"
            )
        elif offset < first:
            problems.append(
                f"partition {partition}: checkpoint at offset {offset:,}, before the first retained offset "
                f"({first:,}): {first - offset:,} records were deleted unread"
            )
    return problems


def delta_pending_rows(table: Path, offset: Mapping[str, Any]) -> int | None:
    """Rows added by the table's commits after a Delta source offset, from the commits' file
    statistics; None when the log cannot tell (still reading the first snapshot, log files
    cleaned up, files without statistics). A version the query has read only partly (more files
    than one trigger takes) counts whole."""
    if "reservoirVersion" not in offset or (offset.get("isStartingVersion") and offset["index"] != DELTA_END_INDEX):
        return None
    version = int(offset["reservoirVersion"])
    first = version + 1 if offset["index"] == DELTA_END_INDEX else version
    log = table / "_delta_log"
    rows, current = 0, first
    while (commit := log / f"{current:020d}.json").exists():
        added = _added_rows(commit)
        if added is None:
            return None
        rows += added
        current += 1
    # Nothing after `first`, or its log files were cleaned up behind a later checkpoint.
    last_checkpoint = log / "_last_checkpoint"
    if current == first and last_checkpoint.exists() and json.loads(last_checkpoint.read_text())["version"] >= first:
        return None
    return rows


def _added_rows(commit: Path) -> int | None:
    rows = 0
    for line in commit.read_text().splitlines():
        add = json.loads(line).get("add")
        if add and add.get("dataChange", True):  # compaction (dataChange false) is not new data
            if not add.get("stats"):
                return None
            rows += json.loads(add["stats"])["numRecords"]
    return rows


def classify(idle_s: float | None, lag: int | None, max_idle_s: float) -> str:
    """``idle_s``: seconds since the last committed batch (None: none yet); an unknown lag counts as records waiting."""
    if idle_s is None:
        return NOT_STARTED
    if lag == 0 or idle_s <= max_idle_s:
        return HEALTHY
    return STALE


def describe(state: str, idle_s: float | None, lag: int | None, max_idle_s: float, unknown_lag: str) -> str:
    if state == NOT_STARTED:
        return "no committed batch in its checkpoint"
    waiting = unknown_lag if lag is None else "up to date" if lag == 0 else f"{lag:,} records waiting"
    if state == STALE:
        return f"{waiting}, no commit for {idle_s:,.0f} s, limit {max_idle_s:g} s"
    return waiting if lag == 0 else f"{waiting}, last batch {idle_s:,.0f} s ago"


@dataclass(frozen=True)
class JobQuery:
    """A query of one of the long-running jobs, and what it reads."""

    job: str
    name: str
    topic: str | None = None  # a Kafka source
    table: str | None = None  # a Delta source: a catalog table name


def streaming_queries(settings: Settings) -> list[JobQuery]:
    """Every query of the two long-running jobs: ingest (bronze, then silver, per stream) and the
    scorer (``score``, then ``score_landing``)."""
    topics, names = settings.kafka.topics, table_names(settings)
    bronze = [JobQuery("ingest", ingest_query_name("bronze", s), topic=getattr(topics, s).name) for s in STREAMS]
    silver = [JobQuery("ingest", ingest_query_name("silver", s), table=names.bronze(s)) for s in STREAMS]
    scorer = [
        JobQuery("score", SCORE_QUERY, topic=topics.transactions.name),
        JobQuery("score", SCORE_LANDING_QUERY, topic=topics.scored.name),
    ]
    return [*bronze, *silver, *scorer]


def managed_table_path(settings: Settings, table: str) -> Path:
    """Where a catalog table created by the jobs lives: ``<warehouse>/<schema>.db/<table>``."""
    schema, name = table.split(".")
    return local_path(settings.warehouse_dir) / f"{schema}.db" / name


def stream_status(settings: Settings, *, max_idle_s: float | None = None, now: datetime | None = None) -> StreamStatus:
    """The status of every streaming query; BrokerUnavailableError when the broker does not answer."""
    max_idle_s = settings.streaming.max_idle_s if max_idle_s is None else max_idle_s
    queries = streaming_queries(settings)
    checkpoints = {q.name: query_plan(settings, q.name).checkpoint for q in queries}
    batches: dict[str, CommittedBatch | None] = {}
    damaged: dict[str, str] = {}
    for q in queries:
        try:
            batches[q.name] = last_commit(local_path(checkpoints[q.name]))
        except CheckpointError as exc:
            batches[q.name], damaged[q.name] = None, str(exc)
    # After the checkpoints: a commit landing meanwhile makes the lag look larger, never negative.
    from lakehouse.platform.kafka.topics import offset_ranges

    ranges = offset_ranges(settings.kafka, *dict.fromkeys(q.topic for q in queries if q.topic))
    now = now or datetime.now(UTC)
    statuses = []
    for q in queries:
        batch = batches[q.name]
        lag, unknown_lag, broken = None, "", damaged.get(q.name, "")
        if batch is not None and q.topic:
            if q.topic in ranges:
                committed = {int(p): o for p, o in batch.source_offset.get(q.topic, {}).items()}
                lag = kafka_lag(committed, {p: end for p, (_, end) in ranges[q.topic].items()})
                broken = "; ".join(offsets_out_of_range(committed, ranges[q.topic]))
            else:
                unknown_lag = f"lag unknown: topic {q.topic} not found on the broker"
        elif batch is not None:
            path = managed_table_path(settings, q.table)
            lag = delta_pending_rows(path, batch.source_offset) if (path / "_delta_log").is_dir() else None
            unknown_lag = f"lag unknown: cannot count the unread commits of {q.table} at {path}"
        idle_s = None if batch is None else round(max(0.0, (now - batch.planned_at).total_seconds()), 1)
        state = BROKEN if broken else classify(idle_s, lag, max_idle_s)
        statuses.append(
            QueryStatus(
                job=q.job,
                query=q.name,
                source=f"kafka {q.topic}" if q.topic else f"delta {q.table}",
                checkpoint=checkpoints[q.name],
                batch_id=None if batch is None else batch.batch_id,
                last_batch_at=None if batch is None else batch.planned_at,
                idle_s=idle_s,
                lag=lag,
                state=state,
                detail=broken or describe(state, idle_s, lag, max_idle_s, unknown_lag),
            )
        )
    return StreamStatus(now, max_idle_s, statuses)
