"""Table maintenance: OPTIMIZE (compact small files) and VACUUM (remove unreferenced files).

VACUUM never goes below ``lakehouse.history_retention_hours``: files that a version inside the
time-travel window still references are kept. Delta's own safety check (168 hours minimum unless
disabled) stays on.

A stream that lags behind its table needs more. Silver's queries read bronze's commits in order,
file by file; OPTIMIZE replaces those files (the stream skips its compaction commits and reads the
originals), and VACUUM then deletes the originals once they are older than the retention. A
silver query that has not read a commit yet would fail on a missing file at its next batch (or,
with missing files ignored, lose the records). So VACUUM of a bronze table keeps everything
removed since the oldest commit its silver query has not read (from the query's checkpoint), plus
an hour, whatever the configured retention.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lakehouse.contract.tables import STREAMS, table_names
from lakehouse.errors import ConfigError
from lakehouse.ingest.reconcile import silver_read_version
from lakehouse.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


#: Kept beyond the age of the oldest unread commit: the stream may be reading it right now.
STREAM_MARGIN_HOURS = 1


@dataclass(frozen=True)
class MaintenanceResult:
    table: str
    files_before: int
    files_after: int
    version_after: int
    retained_hours: float  # what VACUUM kept: the configured retention, or more for a lagging stream


def delta_tables(spark: SparkSession, settings: Settings) -> list[str]:
    """Every Delta table of the bronze, silver and gold schemas (views excluded)."""
    names = table_names(settings)
    tables = []
    for schema in (names.bronze_schema, names.silver_schema, names.gold_schema):
        if not spark.catalog.databaseExists(schema):
            continue
        for table in spark.catalog.listTables(schema):
            if table.tableType != "VIEW" and not table.isTemporary:
                tables.append(f"{schema}.{table.name}")
    return sorted(tables)


def maintain(spark: SparkSession, settings: Settings, *, retain_hours: float | None = None) -> list[MaintenanceResult]:
    window = settings.lakehouse.history_retention_hours
    hours = window if retain_hours is None else retain_hours
    if hours < window:
        raise ConfigError(
            f"--retain-hours {hours:g} is below lakehouse.history_retention_hours ({window:g}): it would break "
            "time travel inside the promised window and streams reading older files"
        )
    results = []
    for table in delta_tables(spark, settings):
        before = spark.sql(f"DESCRIBE DETAIL {table}").first().numFiles
        spark.sql(f"OPTIMIZE {table}")
        unread = unread_hours(spark, settings, table)
        keep = hours if unread is None else max(hours, math.ceil(unread) + STREAM_MARGIN_HOURS)
        spark.sql(f"VACUUM {table} RETAIN {keep:g} HOURS")
        detail = spark.sql(f"DESCRIBE DETAIL {table}").first()
        version = spark.sql(f"DESCRIBE HISTORY {table} LIMIT 1").first().version
        results.append(MaintenanceResult(table, before, detail.numFiles, version, keep))
    return results


def unread_hours(spark: SparkSession, settings: Settings, table: str) -> float | None:
    """How old the oldest commit of a bronze ``table`` is that its silver query has not read yet
    (hours); None for another table, a stream without a checkpoint, or one that has read all."""
    from pyspark.sql import functions as F

    names = table_names(settings)
    stream = next((s for s in STREAMS if names.bronze(s) == table), None)
    read = None if stream is None else silver_read_version(settings, stream)
    if read is None:
        return None
    age = F.unix_timestamp(F.current_timestamp()) - F.unix_timestamp(F.min("timestamp"))
    hours = spark.sql(f"DESCRIBE HISTORY {table}").where(F.col("version") > read).agg((age / 3600).alias("h"))
    value = hours.first().h
    return None if value is None else float(value)
