"""Streaming-query plumbing shared by every job: each query's plan (name, trigger, checkpoint,
batch size) from config, starting it with that plan, and the supervision loop of the long-running
jobs.
"""

from __future__ import annotations

import logging
import signal
import threading
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


def supervise(queries: list[StreamingQuery], *, poll_s: float = 1.0) -> list[StreamingQuery]:
    """Wait until SIGTERM or Ctrl-C, or until a query ends by itself (failed, or drained with
    availableNow); then stop every query still running. Returns the queries that failed.

    The signals only set a flag that this loop polls: a query stopped from inside a signal handler
    would re-enter the py4j connection the main thread is waiting on ("reentrant call"), fail, and
    leave the job with an error instead of a clean stop. Call it from the main thread.
    """
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda _signum, _frame: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not stop.wait(poll_s) and all(query.isActive for query in queries):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if stop.is_set():
        log.info("stopping %s", ", ".join(query.name or query.id for query in queries))
    for query in queries:
        if query.isActive:
            query.stop()  # a micro-batch cut short is not committed: it runs again after a restart
    return [query for query in queries if query.exception() is not None]


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
