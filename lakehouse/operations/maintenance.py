"""Table maintenance: OPTIMIZE (compact small files) and VACUUM (remove unreferenced files).

VACUUM never goes below ``lakehouse.history_retention_hours``: files that a version inside the
time-travel window still references, or that a running stream may still read, are kept. Delta's
own safety check (168 hours minimum unless disabled) stays on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from lakehouse.contract.tables import table_names
from lakehouse.errors import ConfigError
from lakehouse.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


@dataclass(frozen=True)
class MaintenanceResult:
    table: str
    files_before: int
    files_after: int
    version_after: int


def delta_tables(spark: SparkSession, settings: Settings) -> list[str]:
    """Every Delta table of the bronze, silver and gold schemas (views excluded)."""
    names = table_names(settings)
    tables = []
    for schema in (names.bronze_schema, names.silver_schema, names.gold_schema):
        if not spark.catalog.databaseExists(schema):
            continue
        for table in spark.catalog.listTables(schema):
            if table.tableType != "VIEW":
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
        spark.sql(f"VACUUM {table} RETAIN {hours:g} HOURS")
        detail = spark.sql(f"DESCRIBE DETAIL {table}").first()
        version = spark.sql(f"DESCRIBE HISTORY {table} LIMIT 1").first().version
        results.append(MaintenanceResult(table, before, detail.numFiles, version))
    return results
