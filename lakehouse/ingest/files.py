"""Bring your own data: `fraudlake import` loads transactions (and optionally users and merchants)
from CSV or Parquet into the same bronze and silver tables the streams fill, through the same
validation, so `features build`, `train` and `backtest` run on outside datasets.

Each file becomes bronze rows of a pseudo-topic ``import:<name>:<stream>`` (one partition,
offsets in event-time order, the row as JSON), then goes through the silver step of the streams
(:class:`lakehouse.ingest.queries.SilverBatch`) in the import itself: bad rows are quarantined
with their reason, duplicates of transactions already in silver too (and a streamed transaction
that repeats an imported one is a duplicate); the streams' own silver queries skip these rows.
`fraudlake reconcile` accounts for every row. Columns are renamed with a mapping
(``contract_field=source_column``); optional fields may be missing (device_ip, labels, user and
merchant details); a missing currency takes ``--currency``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lakehouse.contract.schemas import MERCHANT_FIELDS, STREAM_KEYS, TRANSACTION_FIELDS, USER_FIELDS
from lakehouse.errors import ConfigError
from lakehouse.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

FIELDS = {"transactions": TRANSACTION_FIELDS, "users": USER_FIELDS, "merchants": MERCHANT_FIELDS}
ORDER_FIELD = {"transactions": "timestamp", "users": "updated_at", "merchants": "updated_at"}


@dataclass(frozen=True)
class ImportReport:
    stream: str
    rows: int
    accepted: int
    quarantined: int


def parse_mapping(pairs: list[str]) -> dict[str, str]:
    """``["timestamp=tx_time", ...]`` → {contract field: source column}."""
    known = {f.name for fields in FIELDS.values() for f in fields}
    mapping = {}
    for pair in pairs:
        target, sep, source = pair.partition("=")
        if not sep or not target or not source:
            raise ConfigError(f"--map {pair!r}: expected contract_field=source_column")
        if target not in known:
            raise ConfigError(f"--map {pair!r}: {target!r} is not a contract field ({', '.join(sorted(known))})")
        mapping[target] = source
    return mapping


def read_file(spark: SparkSession, path: str, fmt: str | None) -> DataFrame:
    fmt = fmt or Path(path).suffix.lstrip(".").lower()
    if fmt == "csv":
        return spark.read.option("header", "true").csv(path)  # every column as text: validation types it
    if fmt == "parquet":
        return spark.read.parquet(path)
    raise ConfigError(f"{path}: unknown format {fmt!r}; use --format csv or parquet")


def as_contract_json(
    rows: DataFrame, stream: str, mapping: dict[str, str], *, currency: str | None, source: str
) -> DataFrame:
    """Source rows → (key, value, _order) with ``value`` the row as contract JSON. Fails naming the
    field when a required one has no source column (nulls inside a column are quarantined per row)."""
    from pyspark.sql import functions as F

    columns = set(rows.columns)

    def column_of(name: str) -> str:
        return mapping.get(name, name)

    selected = []
    for field in FIELDS[stream]:
        column = column_of(field.name)
        if column in columns:
            value = F.col(f"`{column}`")
            if field.kind == "timestamp":  # ISO 8601 in UTC, whatever the source type
                text = value.cast("string")
                stamp = F.coalesce(F.try_to_timestamp(text), value.try_cast("timestamp"))
                value = F.when(stamp.isNull(), text).otherwise(F.date_format(stamp, "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'"))
            elif field.kind == "date":
                value = value.cast("string")
            selected.append(value.alias(field.name))
        elif field.name == "currency" and currency:
            selected.append(F.lit(currency).alias("currency"))
        elif field.required:
            raise ConfigError(
                f"{source}: no column for required field {field.name!r} (map one with --map {field.name}=<column>)"
            )
    key, order = column_of(STREAM_KEYS[stream]), column_of(ORDER_FIELD[stream])
    return rows.select(
        F.col(f"`{key}`").cast("string").alias("key"),
        F.to_json(F.struct(*selected), {"ignoreNullFields": "false"}).alias("value"),
        (F.col(f"`{order}`").cast("string") if order in columns else F.lit(None).cast("string")).alias("_order"),
    )


def import_stream(
    spark: SparkSession,
    settings: Settings,
    stream: str,
    rows: DataFrame,
    mapping: dict[str, str],
    *,
    name: str,
    currency: str | None,
) -> ImportReport:
    """One file of one stream → bronze + silver/quarantine through the streams' silver step."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from lakehouse.contract.tables import create_tables, import_topic
    from lakehouse.ingest.queries import SilverBatch
    from lakehouse.platform.delta import table_location

    records = as_contract_json(
        rows, stream, mapping, currency=currency, source=f"{name} ({stream})"
    )  # fails before any write
    names = create_tables(spark, settings)
    # Offsets in event-time order (then file order), so nothing in the file is "late" to itself.
    ordered = records.withColumn("_row", F.monotonically_increasing_id())
    now = F.current_timestamp()
    bronze = ordered.select(
        "key",
        "value",
        F.lit(import_topic(name, stream)).alias("topic"),
        F.lit(0).alias("partition"),
        (F.row_number().over(Window.orderBy(F.col("_order").asc_nulls_last(), "_row")) - 1)
        .cast("bigint")
        .alias("offset"),
        now.alias("kafka_timestamp"),
        now.alias("ingested_at"),
    ).withColumn("ingest_date", F.to_date("ingested_at"))
    bronze = bronze.persist()
    try:
        total = bronze.count()
        batch_id = time.time_ns() // 1_000_000  # above any stream's batch ids; unique per import
        bronze.write.format("delta").mode("append").save(table_location(spark, names.bronze(stream)))
        query = f"import_{stream}"
        SilverBatch(spark, settings, names, stream, query)(bronze, batch_id)
        quarantined = (
            spark.table(names.quarantine).where(F.col("_batch_id") == batch_id).where(F.col("source") == stream).count()
        )
    finally:
        bronze.unpersist()
    report = ImportReport(stream, total, total - quarantined, quarantined)
    log.info("imported %s: %s rows, %s accepted, %s quarantined", stream, total, report.accepted, quarantined)
    return report


def import_files(
    spark: SparkSession,
    settings: Settings,
    *,
    transactions: str,
    users: str | None = None,
    merchants: str | None = None,
    fmt: str | None = None,
    mapping: dict[str, str] | None = None,
    name: str | None = None,
    currency: str | None = None,
) -> list[ImportReport]:
    """Users and merchants first (so transactions find them), then transactions."""
    mapping = mapping or {}
    name = name or Path(transactions).stem
    if currency is not None and currency not in settings.data.currencies:
        raise ConfigError(f"--currency {currency!r} is not one of data.currencies")
    reports = []
    for stream, path in (("users", users), ("merchants", merchants), ("transactions", transactions)):
        if path:
            reports.append(
                import_stream(
                    spark, settings, stream, read_file(spark, path, fmt), mapping, name=name, currency=currency
                )
            )
    return reports
