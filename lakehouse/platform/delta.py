"""Delta reads and writes that every stage shares: a table's current version and location, a read
pinned to one version (or a timestamp), and the idempotent append of a streaming micro-batch.

Pinning: a job that reads a table more than once, or records what it read (training, features,
quality gates, backtests), reads one version, so its inputs are one consistent snapshot that time
travel can replay.

Exactly once: :func:`append_once` writes with Delta's idempotent-write options (``txnAppId``,
``txnVersion``), so a micro-batch replayed after a crash is skipped by Delta instead of appended
twice. The application id is part of the on-disk contract: it must stay the same across releases.

Concurrent writers: Delta's optimistic concurrency makes a commit fail when another writer
changed what it read (``fraudlake maintain``'s OPTIMIZE under a MERGE or a silver batch, an import
beside a stream into the same table). :func:`retry_on_conflict` runs such a step again on a fresh snapshot, so a
conflict costs a retry instead of stopping a stream; it is for steps that are safe to repeat
(idempotent appends, insert-only MERGEs).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)
T = TypeVar("T")
#: Attempts of a step that meets concurrent Delta writers, the first one included.
CONFLICT_ATTEMPTS = 6


def conflict_errors() -> tuple[type[BaseException], ...]:
    """Delta's commit-conflict exceptions, as PySpark raises them."""
    import delta.exceptions as errors

    names = (
        "DeltaConcurrentModificationException",
        "ConcurrentWriteException",
        "ConcurrentAppendException",
        "ConcurrentDeleteReadException",
        "ConcurrentDeleteDeleteException",
        "ConcurrentTransactionException",
        "MetadataChangedException",
        "ProtocolChangedException",
    )
    return tuple(getattr(errors, name) for name in names if hasattr(errors, name))


def retry_on_conflict(
    step: Callable[[], T], *, what: str, attempts: int = CONFLICT_ATTEMPTS, backoff_s: float = 0.5
) -> T:
    """Run ``step``; when a concurrent Delta writer made its commit fail, run it again (up to
    ``attempts`` in all, backing off exponentially with jitter), then let the conflict through.
    ``step`` must be safe to repeat."""
    conflicts = conflict_errors()
    for attempt in range(1, attempts + 1):
        try:
            return step()
        except conflicts as exc:
            if attempt == attempts:
                raise
            delay = backoff_s * 2 ** (attempt - 1) * (1 + random.random())  # jitter
            log.warning(
                "%s: a concurrent Delta writer changed what it read (%s); attempt %d of %d in %.1f s",
                what,
                type(exc).__name__,
                attempt + 1,
                attempts,
                delay,
            )
            time.sleep(delay)
    raise AssertionError("unreachable")


#: Delta's writer option for an optimized write (rows grouped by partition before writing).
OPTIMIZE_WRITE = "optimizeWrite"


def latest_version(spark: SparkSession, name: str) -> int:
    """The table's current Delta version (what a job pins to read one consistent snapshot).

    Read from the driver's log of the table (Delta's ``DeltaLog``, brought up to date by listing
    its ``_delta_log``: 20-40 ms); ``DESCRIBE HISTORY``, the public route, plans and runs a query
    (0.3-0.6 s a table, and a training pins several). That log is Delta's internal API: where a
    release changes it, or ``name`` is no Delta table (a view, a missing table), the public route
    answers, with its own error."""
    from py4j.protocol import Py4JError

    try:
        version = _log_version(spark, name)
    except Py4JError:
        version = -1
    if version >= 0:
        return version
    return int(spark.sql(f"DESCRIBE HISTORY {name} LIMIT 1").first().version)


def _log_version(spark: SparkSession, name: str) -> int:
    jvm, session = spark._jvm, spark._jsparkSession
    table = session.sessionState().sqlParser().parseTableIdentifier(name)
    none = getattr(getattr(jvm.scala, "None$"), "MODULE$")
    log = jvm.org.apache.spark.sql.delta.DeltaLog.forTable(session, table)
    return int(log.update(False, none, none).version())  # -1: no commit there (not a Delta table)


def table_location(spark: SparkSession, name: str) -> str:
    """Where the table's files live (per-batch writers use the path: no catalog round trip).

    Read from the catalog's entry (``SHOW TABLE EXTENDED``): ``DESCRIBE DETAIL`` would also count
    the table's files, a Spark job over its whole Delta log (2 s a table at a job's start)."""
    schema, _, table = name.rpartition(".")
    scope = f" IN {schema}" if schema else ""
    row = spark.sql(f"SHOW TABLE EXTENDED{scope} LIKE '{table}'").first()
    if row is None:
        raise ValueError(f"no table {name} in the catalog")
    for line in row.information.splitlines():
        key, _, value = line.partition(": ")
        if key == "Location":
            return value.strip()
    raise ValueError(f"the catalog has no location for {name}")


def read_version(
    spark: SparkSession, name: str, *, version: int | None = None, timestamp: str | None = None
) -> DataFrame:
    """The table as of ``version`` (or ``timestamp``); the current snapshot when neither is given."""
    if version is not None and timestamp is not None:
        raise ValueError("read a table as of a version or a timestamp, not both")
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    elif timestamp is not None:
        reader = reader.option("timestampAsOf", timestamp)
    return reader.table(name)


def read_pinned(spark: SparkSession, name: str, version: int | None = None) -> tuple[DataFrame, int]:
    """The table at ``version``, or at its current version when none is given: (frame, version read)."""
    pinned = latest_version(spark, name) if version is None else version
    return read_version(spark, name, version=pinned), pinned


def replace_where(rows: DataFrame, location: str, predicate: str) -> None:
    """Replace the rows of the Delta table at ``location`` that match ``predicate`` (SQL) with
    ``rows``, all of which must match it, in one commit: readers see the old rows or the new ones."""
    rows.write.format("delta").mode("overwrite").option("replaceWhere", predicate).save(location)


def append_once(rows: DataFrame, location: str, *, app_id: str, batch_id: int, by_partition: bool = False) -> None:
    """Append ``rows`` to the Delta table at ``location`` once per (``app_id``, ``batch_id``).

    ``by_partition``: the rows are first grouped by the table's partition values (Delta's
    optimized write, one shuffle), so each partition gets about one new file. Without it every task
    writes a file in every partition it holds rows of: a silver batch that spans 30 event days
    wrote 120 small files, each a file creation, a commit entry and a later read; its append took
    half as long grouped (``fraudlake bench ingest``, 2026-12-07)."""
    writer = rows.write.format("delta").mode("append").option("txnAppId", app_id).option("txnVersion", batch_id)
    if by_partition:
        writer = writer.option(OPTIMIZE_WRITE, "true")
    writer.save(location)


def computed_once(rows: DataFrame) -> DataFrame:
    """``rows`` computed now and kept on the executors, cut from the tables they were read from.

    A ``persist()``-ed frame that reads a table is cached only until that table is written: every
    write makes Spark drop the cached rows of the plans that read it, and the next use computes
    them again (a silver batch reads silver to find duplicates, then appends to it, then writes its
    quarantine from the same rows). These rows are kept whatever is written; free them with
    :func:`release`. Like any cached rows they live on the executors: one lost with them fails the
    job (a streaming batch then runs again, its writes being idempotent)."""
    return rows.localCheckpoint(eager=True)


def release(rows: DataFrame) -> None:
    """Free a frame from ``persist()`` or :func:`computed_once` (the latter's blocks belong to its
    checkpointed RDD, which ``unpersist()`` of the frame does not reach)."""
    plan = rows._jdf.queryExecution().analyzed()
    if plan.getClass().getSimpleName() == "LogicalRDD":
        plan.rdd().unpersist(False)
    else:
        rows.unpersist()


@contextmanager
def auto_compaction_off(spark: SparkSession) -> Iterator[None]:
    """Delta's auto compaction (``delta.autoOptimize.autoCompact`` of the tables the streams write)
    left out for the writes made inside: the session setting wins over the table property. For a
    bulk write (an import), whose files ``fraudlake maintain`` compacts later, so that it does not
    pay for an OPTIMIZE of every partition it touched on the way."""
    key = "spark.databricks.delta.autoCompact.enabled"
    before = spark.conf.get(key, None)
    spark.conf.set(key, "false")
    try:
        yield
    finally:
        if before is None:
            spark.conf.unset(key)
        else:
            spark.conf.set(key, before)
