"""Streaming-query plumbing shared by every job: each query's plan (name, trigger, checkpoint,
batch size) from config, starting it with that plan, and the supervision loop of the long-running
jobs.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lakehouse.settings import QuerySettings, Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession
    from pyspark.sql.streaming import StreamingQuery

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueryPlan:
    name: str
    trigger: str
    checkpoint: str
    max_records: int


def query_plan(settings: Settings, name: str, *, once: bool = False) -> QueryPlan:
    """Trigger, checkpoint and batch size of one query: its own settings, else the defaults."""
    streaming = settings.streaming
    own = streaming.queries.get(name, QuerySettings())
    trigger = "availableNow" if once else (own.trigger or streaming.trigger)
    checkpoint = own.checkpoint or f"{settings.checkpoint_dir}/{name}"
    return QueryPlan(name, trigger, checkpoint, own.max_records_per_trigger or streaming.max_records_per_trigger)


def start_query(writer, plan: QueryPlan, start: Callable) -> StreamingQuery:
    writer = writer.queryName(plan.name).option("checkpointLocation", plan.checkpoint)
    writer = (
        writer.trigger(availableNow=True)
        if plan.trigger == "availableNow"
        else writer.trigger(processingTime=plan.trigger)
    )
    return start(writer)


#: A failed query restarted in the job waits this long first, doubling per failure up to the cap.
RESTART_BACKOFF_S = 5.0
MAX_RESTART_BACKOFF_S = 300.0
#: A restarted query that has run this long without failing counts as recovered (backoff reset).
RECOVERED_AFTER_S = 120.0


def supervise(
    queries: list[StreamingQuery],
    *,
    poll_s: float = 1.0,
    restart: Callable[[StreamingQuery], StreamingQuery] | None = None,
    give_up_after_s: float = 3600.0,
    backoff_s: float = RESTART_BACKOFF_S,
) -> list[StreamingQuery]:
    """Wait until SIGTERM or Ctrl-C, or until a query ends by itself (failed, or drained with
    availableNow); then stop every query still running. Returns the queries that failed.

    With ``restart`` (given the failed query, it starts it again from its checkpoint), a failed
    query is restarted in the job while the others run on: after ``backoff_s``, doubling per
    failure up to :data:`MAX_RESTART_BACKOFF_S`, reset once it has run :data:`RECOVERED_AFTER_S`.
    A broker outage or a concurrent writer then costs a pause of one query, not the job. A query
    that has failed again and again for ``give_up_after_s`` ends the wait like any failure: the
    job exits and its service manager takes over. Safe because every query resumes from its
    checkpoint, exactly once.

    The signals only set a flag that this loop polls: a query stopped from inside a signal handler
    would re-enter the py4j connection the main thread is waiting on ("reentrant call"), fail, and
    leave the job with an error instead of a clean stop. Call it from the main thread.
    """
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda _signum, _frame: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    running = list(queries)
    restarts = _Restarts(backoff_s, give_up_after_s)
    failed: list[StreamingQuery] = []
    try:
        while not failed and not stop.wait(poll_s):
            for i, query in enumerate(running):
                if restarts.waiting(i):
                    if restarts.due(i):
                        running[i] = restart(query)  # type: ignore[misc]
                        restarts.started(i)
                        log.warning("query %s restarted from its checkpoint", query.name)
                elif query.isActive:
                    restarts.running(i)
                elif query.exception() is None:
                    stop.set()  # drained (availableNow): the job is done
                elif restart is None or not restarts.schedule(i, query):
                    failed.append(query)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if stop.is_set():
        log.info("stopping %s", ", ".join(query.name or query.id for query in running))
    for query in running:
        if query.isActive:
            query.stop()  # a micro-batch cut short is not committed: it runs again after a restart
    # A query waiting for its restart when the job stops resumes at the next start: not a failure.
    return [q for i, q in enumerate(running) if q.exception() is not None and not restarts.waiting(i)]


class _Restarts:
    """The restart schedule of :func:`supervise`: per query index, failures in a row and when."""

    def __init__(self, backoff_s: float, give_up_after_s: float) -> None:
        self.backoff_s = backoff_s
        self.give_up_after_s = give_up_after_s
        self.due_at: dict[int, float] = {}
        self.streak: dict[int, tuple[int, float]] = {}  # failures in a row, the first one's time
        self.started_at: dict[int, float] = {}

    def waiting(self, i: int) -> bool:
        return i in self.due_at

    def due(self, i: int) -> bool:
        if time.monotonic() < self.due_at[i]:
            return False
        del self.due_at[i]
        return True

    def started(self, i: int) -> None:
        self.started_at[i] = time.monotonic()

    def running(self, i: int) -> None:
        if i in self.streak and time.monotonic() - self.started_at.get(i, 0.0) >= RECOVERED_AFTER_S:
            del self.streak[i]

    def schedule(self, i: int, query: StreamingQuery) -> bool:
        """Plan the failed query's restart; False when it has kept failing for too long."""
        now = time.monotonic()
        count, first = self.streak.get(i, (0, now))
        count += 1
        if now - first >= self.give_up_after_s:
            log.error("query %s has kept failing for %.0f s: giving up", query.name, now - first)
            return False
        self.streak[i] = (count, first)
        delay = min(self.backoff_s * 2 ** (count - 1), MAX_RESTART_BACKOFF_S)
        self.due_at[i] = now + delay
        reason = str(query.exception()).strip().splitlines()[0][:500]
        log.error("query %s failed (%d in a row): %s; restarting it in %.0f s", query.name, count, reason, delay)
        return True


def raise_if_failed(query: StreamingQuery) -> None:
    error = query.exception()
    if error is not None:
        raise RuntimeError(f"streaming query {query.name} failed: {error}")


def has_batch(spark: SparkSession, checkpoint: str, log: str = "commits") -> bool:
    """Whether the query of ``checkpoint`` has a micro-batch in its ``log``: ``commits`` (one has
    committed) or ``offsets`` (one has been planned: a restart runs it again from those offsets).
    False for a new checkpoint. Works on any file system Spark reads."""
    jvm = spark.sparkContext._jvm
    folder = jvm.org.apache.hadoop.fs.Path(f"{checkpoint.rstrip('/')}/{log}")
    files = folder.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())
    if not files.exists(folder):
        return False
    return any(status.getPath().getName().isdigit() for status in files.listStatus(folder))
