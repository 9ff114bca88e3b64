"""Bronze and silver transforms: pure DataFrame → DataFrame functions (no reads, writes or starts),
used by the streaming queries in :mod:`lakehouse.ingest.queries` and unit-tested on static DataFrames.

Validation gives every record at most one machine-readable ``quarantine_reason``, the first that
applies in this order: ``malformed_json``, ``missing_field:<name>``, ``bad_type:<name>`` (a value
that is not of the field's type, or a JSON object or array where an id is expected), ``bad_id:<name>``
(an id that is blank, has surrounding white space or control characters, holds bytes that were
not UTF-8, or is longer than :data:`MAX_ID_LENGTH`), ``not_finite:<name>`` (NaN or an infinity in a number),
``out_of_range:<name>`` (a date or time outside ``data.time_range``, a latitude or longitude off
the globe), ``future_time:<name>`` (a time later than the record's Kafka timestamp, or its import's
time, by more than ``data.max_ahead_minutes``), then the value rules
(``negative_amount``, ``absurd_amount``, ``unknown_currency``, ``invalid_ip``, ``unknown_label``,
``unknown_source``), then, for transactions, ``late_event`` and ``duplicate``, and for label events
``duplicate``. A null required field counts as missing. Unknown
extra fields are ignored (schema drift), and the raw value stays in bronze.

The ranges are what keeps a single hostile record from stopping a stream for good: a year-1 or
year-9999 timestamp is valid for Spark but not for Python's datetime or pandas, which the silver
batch, the scorer's step and the offline features build all use. The id rules keep unrelated
records apart: a blank user id would pool every such payment into one user's history, so would
two ids whose invalid bytes both read as U+FFFD, and an object where an id is expected would
otherwise become its JSON text. The bound against the Kafka timestamp keeps one record dated ahead
from moving its partition's clock into the future, which would make every later record of the
partition ``late_event`` (the broker refuses, in turn, a Kafka timestamp an hour ahead of its own
clock: ``message.timestamp.after.max.ms`` on the topics).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lakehouse.contract.schemas import IDENTIFIERS, LABEL_SOURCES, LABEL_VALUES, Field
from lakehouse.settings import DataContractSettings

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

CORRUPT = "_corrupt_record"
IPV4 = r"^((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$"
IPV6 = r"^[0-9A-Fa-f]{0,4}(:[0-9A-Fa-f]{0,4}){2,7}$"
#: Numeric fields with a natural range (inclusive): outside it is ``out_of_range:<name>``.
NUMERIC_RANGES: dict[str, tuple[float, float]] = {"latitude": (-90.0, 90.0), "longitude": (-180.0, 180.0)}
#: The longest id accepted (a UUID has 36 characters); longer is ``bad_id:<name>``.
MAX_ID_LENGTH = 256


def interval_seconds(seconds: float) -> Column:
    """A day-time interval literal (for timestamp arithmetic)."""
    from pyspark.sql import functions as F

    return F.expr(f"make_dt_interval(0, 0, 0, {seconds:.3f})")


def bronze_records(kafka: DataFrame) -> DataFrame:
    """Kafka source rows → bronze rows. Needs key, value, topic, partition, offset, timestamp;
    adds ingested_at and ingest_date. The value is kept as raw text, whatever it holds."""
    from pyspark.sql import functions as F

    return kafka.select(
        F.col("key").cast("string").alias("key"),
        F.col("value").cast("string").alias("value"),
        "topic",
        "partition",
        "offset",
        F.col("timestamp").alias("kafka_timestamp"),
        F.current_timestamp().alias("ingested_at"),
    ).withColumn("ingest_date", F.to_date("ingested_at"))


def _typed(raw: Column, kind: str) -> Column:
    from pyspark.sql import functions as F

    if kind == "timestamp":
        return F.try_to_timestamp(raw)
    if kind == "date":
        return F.try_to_date(raw)
    return raw.try_cast({"double": "double", "int": "int", "boolean": "boolean"}.get(kind, "string"))


def _out_of_range(value: Column, field: Field, contract: DataContractSettings) -> Column | None:
    """True where ``value`` lies outside the field's plausible range; None for a field without one."""
    from pyspark.sql import functions as F

    if field.kind in ("timestamp", "date"):
        start, end = (F.lit(d).cast(field.kind) for d in contract.time_range)
        return (value < start) | (value >= end)
    if field.name in NUMERIC_RANGES:
        low, high = NUMERIC_RANGES[field.name]
        return (value < low) | (value > high)
    return None


def _id_rules(value: Column, record: Column, name: str) -> list[tuple[Column, str]]:
    """An id's rules: a JSON object or array (``bad_type``), then blank or unsafe text (``bad_id``).

    ``from_json`` reads any JSON value into a string field as its text, so ``{"id": 1}`` would pass
    as an id. Whether it was an object is asked of the record parsed as a variant, only for text
    that starts like one (so a plain id costs nothing more).
    """
    from pyspark.sql import functions as F

    structured = F.schema_of_variant(F.variant_get(record, f"$.{name}", "variant"))
    looks_structured = value.rlike(r"^\s*[\[{]")
    nested = F.when(looks_structured, structured.rlike("^(OBJECT|ARRAY)")).otherwise(False)
    unsafe = (
        (F.trim(value) == "")
        # Any whitespace at either end, Unicode's too (no-break space, line separator ...): Spark's
        # trim only strips the ASCII space, and an id must be the same after anyone's strip.
        | value.rlike(r"^[\s\p{Z}]|[\s\p{Z}]$")
        # Control characters anywhere, C0, DEL and C1 (U+0085 ...); U+FFFD: bytes that were not UTF-8.
        | value.rlike(r"[\x00-\x1f\x7f-\x9f\x{FFFD}]")
        | (F.length(value) > MAX_ID_LENGTH)
    )
    return [(nested, f"bad_type:{name}"), (unsafe, f"bad_id:{name}")]


def parse_records(bronze: DataFrame, fields: tuple[Field, ...], contract: DataContractSettings) -> DataFrame:
    """Bronze rows → typed contract columns + ``quarantine_reason`` (null when valid).

    Needs the bronze columns; adds one column per contract field (``timestamp`` becomes
    ``event_time`` and ``event_date``) and ``quarantine_reason``; keeps the bronze columns."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    # Every field is read as text first, so that "missing" (absent or null) and "wrong type"
    # (present but not convertible) can be told apart.
    text_schema = T.StructType(
        [T.StructField(f.name, T.StringType()) for f in fields] + [T.StructField(CORRUPT, T.StringType())]
    )
    parsed = bronze.withColumn(
        "_json", F.from_json("value", text_schema, {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": CORRUPT})
    )
    raw = {f.name: F.col("_json").getField(f.name) for f in fields}
    typed = {f.name: _typed(raw[f.name], f.kind) for f in fields}

    rules: list[tuple[Column, str]] = [
        (
            F.col("value").isNull()
            | (F.trim("value") == "")
            | F.col("_json").isNull()
            | F.col("_json").getField(CORRUPT).isNotNull(),
            "malformed_json",
        )
    ]
    rules += [(raw[f.name].isNull(), f"missing_field:{f.name}") for f in fields if f.required]
    rules += [
        (raw[f.name].isNotNull() & typed[f.name].isNull(), f"bad_type:{f.name}") for f in fields if f.kind != "string"
    ]
    record = F.try_parse_json("value")  # the record as a variant, one expression for every id field
    rules += [rule for f in fields if f.name in IDENTIFIERS for rule in _id_rules(raw[f.name], record, f.name)]
    numbers = [f.name for f in fields if f.kind == "double"]
    rules += [(F.isnan(typed[n]) | (F.abs(typed[n]) == float("inf")), f"not_finite:{n}") for n in numbers]
    ranges = {f.name: _out_of_range(typed[f.name], f, contract) for f in fields}
    rules += [(condition, f"out_of_range:{name}") for name, condition in ranges.items() if condition is not None]
    ahead = F.col("kafka_timestamp") + interval_seconds(contract.max_ahead_minutes * 60)
    rules += [(typed[f.name] > ahead, f"future_time:{f.name}") for f in fields if f.kind == "timestamp"]
    if "amount" in typed:
        rules += [
            (typed["amount"] <= 0, "negative_amount"),
            (typed["amount"] > contract.max_amount, "absurd_amount"),
        ]
    if "currency" in typed:
        rules.append((~typed["currency"].isin(*contract.currencies), "unknown_currency"))
    if "device_ip" in typed:
        ip = typed["device_ip"]
        rules.append((ip.isNotNull() & ~ip.rlike(IPV4) & ~(ip.contains(":") & ip.rlike(IPV6)), "invalid_ip"))
    for name, allowed in (("label", LABEL_VALUES), ("source", LABEL_SOURCES)):
        if name in typed:
            rules.append((~typed[name].isin(*allowed), f"unknown_{name}"))

    # One flat CASE WHEN, the first rule that applies wins (a null condition does not apply). Spark
    # splits its branches into small generated methods, which the JVM compiles; nested
    # CASE WHENs made one huge method that ran interpreted, at half the speed.
    reason = F.when(rules[0][0], F.lit(rules[0][1]))
    for condition, name in rules[1:]:
        reason = reason.when(condition, F.lit(name))

    columns = [typed[f.name].alias("event_time" if f.name == "timestamp" else f.name) for f in fields]
    out = parsed.select("*", *columns).withColumn("quarantine_reason", reason).drop("_json")
    if "timestamp" in typed:
        out = out.withColumn("event_date", F.to_date("event_time"))
    return out


def with_lateness(valid: DataFrame, prior_max: DataFrame, delay_minutes: float, run: int | None = None) -> DataFrame:
    """Schema-valid transactions with ``_late``; :func:`late_or_duplicate` then marks them.

    Needs ``valid``: event_time, transaction_id, topic, partition, offset (one micro-batch);
    ``prior_max``: topic, partition, prior_max_event_time (latest event time seen in earlier
    batches).

    Late means older than the latest event time seen before it *in its Kafka partition* (earlier
    batches, then earlier offsets of this batch) minus the delay: a definition that depends on the
    log alone, not on how it was cut into micro-batches, so a replay or restart classifies every
    record the same way.

    ``run``: for a batch with many records in one partition (an import has a single one): the
    same maximum computed in parallel, the partition's offsets cut into runs of this length; a
    record's earlier maximum is then the greatest of its run's earlier records and of the whole
    earlier runs (a small table). Without it, each partition is one ordered pass, one task.
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    earlier = (Window.unboundedPreceding, -1)
    if run is None:
        frame = valid
        in_batch = F.max("event_time").over(
            Window.partitionBy("topic", "partition").orderBy("offset").rowsBetween(*earlier)
        )
    else:
        frame = valid.withColumn("_run", F.floor(F.col("offset") / run))
        runs = frame.groupBy("topic", "partition", "_run").agg(F.max("event_time").alias("_run_max"))
        before = Window.partitionBy("topic", "partition").orderBy("_run").rowsBetween(*earlier)
        runs = runs.select("topic", "partition", "_run", F.max("_run_max").over(before).alias("_runs_before"))
        in_run = Window.partitionBy("topic", "partition", "_run").orderBy("offset").rowsBetween(*earlier)
        frame = frame.join(F.broadcast(runs), ["topic", "partition", "_run"], "left")
        in_batch = F.greatest(F.col("_runs_before"), F.max("event_time").over(in_run))
    seen_before = frame.join(F.broadcast(prior_max), ["topic", "partition"], "left").withColumn(
        "_seen_max", F.greatest(F.col("prior_max_event_time"), in_batch)
    )
    late = F.col("event_time") < F.col("_seen_max") - interval_seconds(delay_minutes * 60)
    extra = ["prior_max_event_time", "_seen_max"] + ([] if run is None else ["_run", "_runs_before"])
    return seen_before.withColumn("_late", F.coalesce(late, F.lit(False))).drop(*extra)


def oldest_to_deduplicate(timed: DataFrame):
    """The oldest event time among :func:`with_lateness`'s rows that are not late (None when all
    are): the duplicate check reads earlier batches from there on, so a record from the far past,
    late by definition, does not widen it (one action)."""
    from pyspark.sql import functions as F

    return timed.where(~F.col("_late")).agg(F.min("event_time")).first()[0]


def late_or_duplicate(timed: DataFrame, prior_ids: DataFrame) -> DataFrame:
    """:func:`with_lateness`'s rows with ``quarantine_reason`` ``late_event``, ``duplicate`` or null
    (``prior_ids``: transaction_id accepted in earlier batches, within the dedup window). The first
    occurrence of a transaction_id (by partition, offset) is kept."""
    from pyspark.sql import functions as F

    # Late records do not take part in deduplication: a duplicate of a late record is late too.
    marked = repeats(timed, prior_ids, "transaction_id", "_late")
    return marked.withColumn(
        "quarantine_reason", F.when(F.col("_late"), "late_event").when(F.col("_repeat"), "duplicate")
    ).drop("_late", "_repeat")


def duplicates(valid: DataFrame, prior_ids: DataFrame, key: str) -> DataFrame:
    """Mark schema-valid events ``duplicate`` when their ``key`` was accepted before (``prior_ids``)
    or comes earlier in the batch (by partition, offset); else leave the reason null."""
    from pyspark.sql import functions as F

    marked = repeats(valid, prior_ids, key)
    return marked.withColumn("quarantine_reason", F.when(F.col("_repeat"), "duplicate")).drop("_repeat")


def repeats(valid: DataFrame, prior_ids: DataFrame, key: str, *among: str) -> DataFrame:
    """Adds ``_repeat``: the ``key`` is in ``prior_ids`` or an earlier record of the batch (by
    partition, offset) has it, counted only among records of the same ``among`` columns."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    known = prior_ids.select(key).distinct().withColumn("_known", F.lit(True))
    first = Window.partitionBy(key, *among).orderBy("partition", "offset")
    return (
        valid.join(known, key, "left")
        .withColumn("_repeat", F.col("_known").isNotNull() | (F.row_number().over(first) > 1))
        .drop("_known")
    )


def compacted_progress(progress: DataFrame) -> DataFrame:
    """``silver.ingest_progress`` rows folded into one per (source, topic, partition): the latest
    event time and offset, under the last batch id among them. Every reader of the progress takes
    the maxima per partition (the lateness clock, the warm start's offsets, the clocks-ahead check),
    so they read the same from the folded rows as from the originals."""
    from pyspark.sql import functions as F

    folded = progress.groupBy("source", "_topic", "_partition").agg(
        F.max("_batch_id").alias("_batch_id"),
        F.max("max_event_time").alias("max_event_time"),
        F.max("max_offset").alias("max_offset"),
    )
    return folded.select(*progress.columns)


def with_source(df: DataFrame, batch_id: int) -> DataFrame:
    """Rename the bronze coordinates to the ``_``-prefixed source columns of silver and quarantine."""
    from pyspark.sql import functions as F

    return (
        df.withColumnRenamed("topic", "_topic")
        .withColumnRenamed("partition", "_partition")
        .withColumnRenamed("offset", "_offset")
        .withColumnRenamed("kafka_timestamp", "_kafka_timestamp")
        .withColumnRenamed("ingested_at", "_ingested_at")
        .withColumn("_batch_id", F.lit(batch_id).cast("bigint"))
    )
