"""Delta reads and writes that every stage shares: a table's current version and location, a read
pinned to one version (or a timestamp), and the idempotent append of a streaming micro-batch.

Pinning: a job that reads a table more than once, or records what it read (training, features,
quality gates, backtests), reads one version, so its inputs are one consistent snapshot that time
travel can replay.

Exactly once: :func:`append_once` writes with Delta's idempotent-write options (``txnAppId``,
``txnVersion``), so a micro-batch replayed after a crash is skipped by Delta instead of appended
twice. The application id is part of the on-disk contract: it must stay the same across releases.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def latest_version(spark: SparkSession, name: str) -> int:
    """The table's current Delta version (what a job pins to read one consistent snapshot)."""
    return int(spark.sql(f"DESCRIBE HISTORY {name} LIMIT 1").first().version)


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


def append_once(rows: DataFrame, location: str, *, app_id: str, batch_id: int) -> None:
    """Append ``rows`` to the Delta table at ``location`` once per (``app_id``, ``batch_id``)."""
    (rows.write.format("delta").mode("append").option("txnAppId", app_id).option("txnVersion", batch_id).save(location))
