"""Bring your own data: `fraudlake import` loads transactions, users, merchants and label events
(a chargeback file) from CSV or Parquet into the same bronze and silver tables the streams fill, through the same
validation, so `features build`, `train` and `backtest` run on outside datasets.

Each file becomes bronze rows of a pseudo-topic ``import:<name>:<stream>`` (one partition,
offsets in event-time order, the row as JSON), then goes through the silver step of the streams
(:class:`lakehouse.ingest.queries.SilverBatch`) in the import itself: bad rows are quarantined
with their reason, duplicates of transactions already in silver too (and a streamed transaction
that repeats an imported one is a duplicate); the streams' own silver queries skip these rows.
`fraudlake reconcile` accounts for every row. Columns are renamed with a mapping
(``contract_field=source_column``); optional fields may be missing (device_ip, labels, user and
merchant details); a missing currency takes ``--currency``.

Idempotent and resumable. ``silver.imports`` is the ledger: each import (its pseudo-topic) has a
fingerprint of its rows' content and a batch id, recorded before the first write. Every write
is an idempotent Delta append under the import's own ``txnAppId`` (one per import, so two
imports never skip each other's writes), and silver is computed from the rows bronze holds.
Importing the same file under the same name again is therefore a no-op that says so; an import
that stopped half-way (between bronze and silver, or between silver and quarantine) is finished
by running it again; another file under a name already used is refused. Rows are ordered by
their event time as a time (``+02:00`` and ``Z`` compared as instants), not as text.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from lakehouse.contract.schemas import LATEST_BY, STREAM_KEYS
from lakehouse.contract.schemas import STREAMS as FIELDS
from lakehouse.errors import ConfigError
from lakehouse.platform import faults
from lakehouse.platform.delta import append_once, auto_compaction_off, computed_once, release, table_location
from lakehouse.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from lakehouse.contract.tables import TableNames

log = logging.getLogger(__name__)

ORDER_FIELD = {"transactions": "timestamp", **{stream: order for stream, (_, order) in LATEST_BY.items()}}
#: Where ``FRAUDLAKE_FAULT`` can kill ``fraudlake import`` (see :mod:`lakehouse.platform.faults`).
AFTER_BRONZE = "import_after_bronze"
#: Offsets per run of the import's lateness decision (see ``transforms.with_lateness``).
LATENESS_RUN = 100_000
FAULT_STEPS = (AFTER_BRONZE,)


@dataclass(frozen=True)
class ImportReport:
    stream: str
    rows: int
    accepted: int
    quarantined: int
    #: The same rows were imported under this name before: nothing was written.
    already: bool = False


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
    """The file's rows. CSV columns are all text (validation types them). Parquet is read as it is,
    except nanosecond timestamps (pandas' default), which Spark cannot read as timestamps: they are
    read as their nanosecond counts and turned into timestamps (the contract then keeps
    milliseconds, as the stream does). That needs ``spark.sql.legacy.parquet.nanosAsLong``, set for the session
    because the read is lazy (it only changes how such columns are read)."""
    from pyspark.sql import functions as F

    fmt = fmt or Path(path).suffix.lstrip(".").lower()
    if fmt == "csv":
        return spark.read.option("header", "true").csv(path)
    if fmt == "parquet":
        nanos = _nanosecond_columns(path)
        if nanos:
            spark.conf.set("spark.sql.legacy.parquet.nanosAsLong", "true")
            rows = spark.read.parquet(path)
            return rows.withColumns({c: F.timestamp_micros(F.floor(F.col(f"`{c}`") / 1000)) for c in nanos})
        return spark.read.parquet(path)
    raise ConfigError(f"{path}: unknown format {fmt!r}; use --format csv or parquet")


def _nanosecond_columns(path: str) -> list[str]:
    """Top-level columns of a local Parquet file or folder that hold nanosecond timestamps."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    local = path.removeprefix("file://")
    if "://" in local or not Path(local).exists():
        return []  # a remote store: Spark reads it, and says so if it cannot
    schema = ds.dataset(local, format="parquet").schema
    return [f.name for f in schema if pa.types.is_timestamp(f.type) and f.type.unit == "ns"]


def as_contract_json(
    rows: DataFrame, stream: str, mapping: dict[str, str], *, currency: str | None, source: str
) -> DataFrame:
    """Source rows → (key, value, _order) with ``value`` the row as contract JSON. Fails naming the
    field when a required one has no source column (nulls inside a column are quarantined per row)."""
    from pyspark.sql import functions as F

    columns = set(rows.columns)

    def column_of(name: str) -> str:
        return mapping.get(name, name)

    def instant(value):
        """A time from ISO 8601 text (any offset), a timestamp column, or an epoch number: seconds,
        milliseconds, microseconds or nanoseconds, told apart by magnitude (9 to 19 digits)."""
        text = value.cast("string")
        epoch = F.when(text.rlike(r"^-?[0-9]{9,19}(\.[0-9]+)?$"), text.try_cast("decimal(38,9)"))
        size = F.abs(epoch)
        seconds = (
            F.when(size < 1e11, epoch)
            .when(size < 1e14, epoch / 1_000)
            .when(size < 1e17, epoch / 1_000_000)
            .otherwise(epoch / 1_000_000_000)
        )
        return F.coalesce(
            F.timestamp_micros(F.floor(seconds * 1_000_000).try_cast("bigint")),
            F.try_to_timestamp(text),
            value.try_cast("timestamp"),
        )

    selected = []
    for field in FIELDS[stream]:
        column = column_of(field.name)
        if column in columns:
            value = F.col(f"`{column}`")
            if field.kind == "timestamp":  # ISO 8601 in UTC, whatever the source type
                stamp = instant(value)
                value = F.when(stamp.isNull(), value.cast("string")).otherwise(
                    F.date_format(stamp, "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'")
                )
            elif field.kind == "date":
                value = value.cast("string")
            selected.append(value.alias(field.name))
        elif field.name == "currency" and currency:
            selected.append(F.lit(currency).alias("currency"))
        elif field.name == "label_id" and {column_of("transaction_id"), column_of("reported_at")} <= columns:
            # A label file without ids: the report's own (payment, source, time), as the simulator's.
            parts = [F.col(f"`{column_of(c)}`").cast("string") for c in ("transaction_id", "source", "reported_at")]
            selected.append(F.concat_ws("-", F.lit("lbl"), *parts).alias("label_id"))
        elif field.required:
            raise ConfigError(
                f"{source}: no column for required field {field.name!r} (map one with --map {field.name}=<column>)"
            )
    key, order = column_of(STREAM_KEYS[stream]), column_of(ORDER_FIELD[stream])
    return rows.select(
        F.col(f"`{key}`").cast("string").alias("key"),
        F.to_json(F.struct(*selected), {"ignoreNullFields": "false"}).alias("value"),
        (instant(F.col(f"`{order}`")) if order in columns else F.lit(None).cast("timestamp")).alias("_order"),
    )


def import_stream(
    spark: SparkSession,
    settings: Settings,
    names: TableNames,
    stream: str,
    records: DataFrame,
    *,
    name: str,
    source_path: str = "",
) -> ImportReport:
    """One file of one stream, as contract JSON (:func:`as_contract_json`) → bronze +
    silver/quarantine through the streams' silver step, once.

    See the module's notes: the ledger makes a repeat a no-op and a stopped import resumable.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from lakehouse.contract.tables import import_topic
    from lakehouse.ingest.queries import SilverBatch

    topic = import_topic(name, stream)
    # Offsets in event-time order (then file order), so nothing in the file is "late" to itself.
    ordered = records.withColumn("_row", F.monotonically_increasing_id())
    now = F.current_timestamp()
    bronze = ordered.select(
        "key",
        "value",
        F.lit(topic).alias("topic"),
        F.lit(0).alias("partition"),
        (F.row_number().over(Window.orderBy(F.col("_order").asc_nulls_last(), "_row")) - 1)
        .cast("bigint")
        .alias("offset"),
        now.alias("kafka_timestamp"),
        now.alias("ingested_at"),
    ).withColumn("ingest_date", F.to_date("ingested_at"))
    # The offsets come from one ordered pass; spread the rows again so bronze gets several files and
    # the silver step reads them in parallel (one file would be one task).
    bronze = computed_once(bronze.repartition(settings.spark.shuffle_partitions))
    try:
        total, fingerprint = _fingerprint(bronze)
        ledger = _Ledger(spark, table_location(spark, names.imports), topic, stream, source_path, fingerprint, total)
        last = ledger.last()
        if last is not None and last.fingerprint != fingerprint:
            raise ConfigError(
                f"{source_path or name}: the import name {name!r} already holds other {stream} rows "
                f"({last.rows:,} rows, recorded {last.recorded_at:%Y-%m-%d %H:%M}); import this file under "
                "another --name"
            )
        if last is not None and last.state == "done":
            log.info("%s: these %s rows were imported on %s; nothing to do", topic, stream, last.recorded_at)
            return ImportReport(stream, total, last.accepted, last.quarantined, already=True)
        if last is None and spark.table(names.bronze(stream)).where(F.col("topic") == topic).limit(1).count():
            raise ConfigError(
                f"{source_path or name}: bronze already holds rows of {topic} from an import without a ledger "
                "entry (before imports were recorded); import this file under another --name"
            )
        batch_id = last.batch_id if last is not None else time.time_ns() // 1_000_000
        if last is None:
            ledger.record("started", batch_id)
        # Each write is skipped if this import already made it (the import's own appId).
        append_once(bronze, table_location(spark, names.bronze(stream)), app_id=f"{topic}->bronze", batch_id=batch_id)
    finally:
        release(bronze)
    faults.reached(AFTER_BRONZE)
    landed = spark.table(names.bronze(stream)).where(F.col("topic") == topic)
    # One partition holds the whole file: its lateness is decided in runs, in parallel.
    SilverBatch(spark, settings, names, stream, topic, lateness_run=LATENESS_RUN)(landed, batch_id)
    quarantined = (
        spark.table(names.quarantine).where((F.col("_batch_id") == batch_id) & (F.col("_topic") == topic)).count()
    )
    ledger.record("done", batch_id, accepted=total - quarantined, quarantined=quarantined)
    report = ImportReport(stream, total, total - quarantined, quarantined)
    log.info("imported %s: %s rows, %s accepted, %s quarantined", stream, total, report.accepted, quarantined)
    return report


def _fingerprint(bronze: DataFrame) -> tuple[int, str]:
    """The row count and an order-free digest of the rows' keys and values (two 32-bit sums of
    xxhash64 halves: a file with other content gets another fingerprint)."""
    from pyspark.sql import functions as F

    digest = F.xxhash64("key", "value")
    low, high = digest.bitwiseAND(0xFFFFFFFF), F.shiftrightunsigned(digest, 32)
    row = bronze.agg(F.count("*").alias("n"), F.sum(low).alias("low"), F.sum(high).alias("high")).first()
    return row.n, f"{row.n}:{row.low or 0:x}:{row.high or 0:x}"


@dataclass(frozen=True)
class _LedgerEntry:
    fingerprint: str
    rows: int
    accepted: int | None
    quarantined: int | None
    batch_id: int
    state: str
    recorded_at: datetime


@dataclass
class _Ledger:
    """One import's rows in ``silver.imports``."""

    spark: SparkSession
    location: str
    topic: str
    stream: str
    source_path: str
    fingerprint: str
    rows: int

    def last(self) -> _LedgerEntry | None:
        """The import's latest entry, if it ever started."""
        from pyspark.sql import functions as F

        latest = (
            self.spark.read.format("delta")
            .load(self.location)
            .where(F.col("topic") == self.topic)
            .orderBy(F.col("recorded_at").desc(), F.col("state").asc())  # "done" before "started" at a tie
            .limit(1)
            .collect()
        )
        if not latest:
            return None
        row = latest[0]
        return _LedgerEntry(
            row.fingerprint, row.rows, row.accepted, row.quarantined, row._batch_id, row.state, row.recorded_at
        )

    def record(self, state: str, batch_id: int, *, accepted: int | None = None, quarantined: int | None = None) -> None:
        from pyspark.sql import functions as F

        from lakehouse.contract.tables import IMPORT_COLUMNS

        values = (
            self.topic,
            self.stream,
            self.source_path,
            self.fingerprint,
            self.rows,
            accepted,
            quarantined,
            batch_id,
            state,
        )
        schema = ", ".join(f"`{c}` {t}" for c, t in IMPORT_COLUMNS[:-1])
        row = self.spark.createDataFrame([values], schema).withColumn("recorded_at", F.current_timestamp())
        row.write.format("delta").mode("append").save(self.location)


def import_files(
    spark: SparkSession,
    settings: Settings,
    *,
    transactions: str | None = None,
    users: str | None = None,
    merchants: str | None = None,
    labels: str | None = None,
    fmt: str | None = None,
    mapping: dict[str, str] | None = None,
    name: str | None = None,
    currency: str | None = None,
) -> list[ImportReport]:
    """Each given file, of each stream, through :func:`import_stream`: users and merchants
    first, then transactions, then label events (a chargeback file: ``transaction_id``,
    ``label``, ``source``, ``reported_at``...). Every file is read and mapped to the contract
    first, so a wrong mapping in any of them fails before anything is written.

    (Tried: the files side by side, one thread each in the same session; the 1M-row benchmark
    gained nothing, 1.33x against 1.36x sequential: every step is CPU-bound on 2 cores.)"""
    from lakehouse.contract.tables import create_tables

    mapping = mapping or {}
    files = {"users": users, "merchants": merchants, "transactions": transactions, "labels": labels}
    given = [path for path in (transactions, labels, users, merchants) if path]
    if not given:
        raise ConfigError("nothing to import: give --transactions, --labels, --users or --merchants")
    name = name or Path(given[0]).stem
    if currency is not None and currency not in settings.data.currencies:
        raise ConfigError(f"--currency {currency!r} is not one of data.currencies")
    records = {
        stream: as_contract_json(
            read_file(spark, path, fmt), stream, mapping, currency=currency, source=f"{name} ({stream})"
        )
        for stream, path in files.items()
        if path
    }
    names = create_tables(spark, settings)
    with auto_compaction_off(spark):  # a bulk write: `fraudlake maintain` compacts its files
        return [
            import_stream(spark, settings, names, stream, rows, name=name, source_path=files[stream])
            for stream, rows in records.items()
        ]
