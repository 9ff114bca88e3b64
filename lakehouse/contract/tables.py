"""The lakehouse tables: names in the catalog, columns, and their creation (idempotent).

    bronze.transactions | users | merchants | labels   raw Kafka records + coordinates, append-only
    silver.transactions                      clean, typed, deduplicated payments (event_date partitions)
    silver.user_versions | merchant_versions every accepted profile version, append-only
    silver.label_versions                    every accepted label event (deduplicated by label_id), append-only
    silver.users | merchants                 view: the latest version per key (by updated_at)
    silver.labels                            view: the latest label per transaction (by reported_at)
    silver.quarantine                        every rejected record: raw value, coordinates, reason
    silver.ingest_progress                   per micro-batch and Kafka partition: latest event time (folded)
    silver.imports                           the import ledger: each imported file, its fingerprint and state
    silver.transactions_enriched             view: transactions with the user and merchant known so far
    gold.transaction_features                every silver transaction's features, point in time (+ labels)
    gold.merchant_daily                      per merchant and day: transactions and frauds
    gold.scored_transactions                 every transaction the scorer scored: score, model version, alert
    gold.shadow_scores                       the shadow version's score beside the champion's (no alerts)

The database names come from ``lakehouse.contract.schemas`` in config.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lakehouse.contract.features import feature_table_columns, feature_table_types
from lakehouse.contract.schemas import LATEST_BY, TRANSACTION_FIELDS, Field
from lakehouse.contract.schemas import STREAMS as STREAM_FIELDS
from lakehouse.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

STREAMS = tuple(STREAM_FIELDS)
#: Imported files land in bronze under a pseudo-topic with this prefix (``import:<name>:<stream>``)
#: and go to silver in the import itself: the streams' silver queries leave those rows alone.
IMPORT_TOPIC_PREFIX = "import:"


def import_topic(name: str, stream: str) -> str:
    return f"{IMPORT_TOPIC_PREFIX}{name}:{stream}"


#: Columns every silver row and quarantine row carries to trace it to its Kafka record.
SOURCE_COLUMNS = (
    ("_topic", "STRING"),
    ("_partition", "INT"),
    ("_offset", "BIGINT"),
    ("_kafka_timestamp", "TIMESTAMP"),
    ("_ingested_at", "TIMESTAMP"),
    ("_batch_id", "BIGINT"),
)
BRONZE_COLUMNS = (
    ("key", "STRING"),
    ("value", "STRING"),
    ("topic", "STRING"),
    ("partition", "INT"),
    ("offset", "BIGINT"),
    ("kafka_timestamp", "TIMESTAMP"),
    ("ingested_at", "TIMESTAMP"),
    ("ingest_date", "DATE"),
)
QUARANTINE_COLUMNS = (
    ("source", "STRING"),
    ("reason", "STRING"),
    ("key", "STRING"),
    ("value", "STRING"),
    *SOURCE_COLUMNS,
    ("quarantined_at", "TIMESTAMP"),
)
PROGRESS_COLUMNS = (
    ("source", "STRING"),
    ("_batch_id", "BIGINT"),
    ("_topic", "STRING"),
    ("_partition", "INT"),
    ("max_event_time", "TIMESTAMP"),
    ("max_offset", "BIGINT"),
)
#: silver.imports: one row when an import starts and one when it is done (append-only; the latest wins).
IMPORT_COLUMNS = (
    ("topic", "STRING"),  # import:<name>:<stream>
    ("stream", "STRING"),
    ("source_path", "STRING"),
    ("fingerprint", "STRING"),  # the rows' content: the same file gives the same fingerprint
    ("rows", "BIGINT"),
    ("accepted", "BIGINT"),
    ("quarantined", "BIGINT"),
    ("_batch_id", "BIGINT"),
    ("state", "STRING"),  # started | done
    ("recorded_at", "TIMESTAMP"),
)
_SQL_TYPES = {
    "string": "STRING",
    "double": "DOUBLE",
    "int": "INT",
    "boolean": "BOOLEAN",
    "timestamp": "TIMESTAMP",
    "date": "DATE",
}


def silver_columns(fields: tuple[Field, ...]) -> list[tuple[str, str]]:
    """Typed contract columns; the transaction's ``timestamp`` becomes ``event_time`` (+ ``event_date``)."""
    columns = [("event_time" if f.name == "timestamp" else f.name, _SQL_TYPES[f.kind]) for f in fields]
    if any(f.name == "timestamp" for f in fields):
        columns.append(("event_date", "DATE"))
    return columns + list(SOURCE_COLUMNS)


@dataclass(frozen=True)
class TableNames:
    bronze_schema: str
    silver_schema: str
    gold_schema: str

    def bronze(self, stream: str) -> str:
        return f"{self.bronze_schema}.{stream}"

    def silver(self, stream: str) -> str:
        return f"{self.silver_schema}.{stream}"

    def versions(self, stream: str) -> str:
        return f"{self.silver_schema}.{stream[:-1]}_versions"  # users → user_versions

    def accepted(self, stream: str) -> str:
        """Where silver appends a stream's accepted records: its versions, or silver.transactions."""
        return self.versions(stream) if stream in LATEST_BY else self.silver(stream)

    @property
    def quarantine(self) -> str:
        return f"{self.silver_schema}.quarantine"

    @property
    def progress(self) -> str:
        return f"{self.silver_schema}.ingest_progress"

    @property
    def imports(self) -> str:
        return f"{self.silver_schema}.imports"

    @property
    def enriched(self) -> str:
        return f"{self.silver_schema}.transactions_enriched"

    @property
    def features(self) -> str:
        return f"{self.gold_schema}.transaction_features"

    @property
    def merchant_daily(self) -> str:
        return f"{self.gold_schema}.merchant_daily"

    @property
    def scored(self) -> str:
        return f"{self.gold_schema}.scored_transactions"

    @property
    def shadow(self) -> str:
        return f"{self.gold_schema}.shadow_scores"

    @property
    def retraining_runs(self) -> str:
        return f"{self.gold_schema}.retraining_runs"

    @property
    def console_audit(self) -> str:
        return f"{self.gold_schema}.console_audit"

    @property
    def feature_check(self) -> str:
        return f"{self.gold_schema}.feature_check_online"


def table_names(settings: Settings) -> TableNames:
    schemas = settings.lakehouse.schemas
    return TableNames(schemas.bronze, schemas.silver, schemas.gold)


def _ddl(name: str, columns, *, partitioned_by: str | None = None, properties: dict[str, str] | None = None) -> str:
    body = ",\n  ".join(f"`{c}` {t}" for c, t in columns)
    sql = f"CREATE TABLE IF NOT EXISTS {name} (\n  {body}\n) USING DELTA"
    if partitioned_by:
        sql += f" PARTITIONED BY ({partitioned_by})"
    if properties:
        sql += " TBLPROPERTIES (" + ", ".join(f"'{k}' = '{v}'" for k, v in properties.items()) + ")"
    return sql


def table_ddls(names: TableNames, settings: Settings) -> dict[str, str]:
    """Every Delta table of the lakehouse by name, with the statement that creates it (pure)."""
    hours = settings.lakehouse.history_retention_hours
    # Keep the log and removed files at least as long as the time-travel window promises.
    retention = {
        "delta.logRetentionDuration": f"interval {max(hours, 24 * 30):g} hours",
        "delta.deletedFileRetentionDuration": f"interval {hours:g} hours",
    }
    # The tables the ingest streams write every micro-batch compact their small files themselves
    # (Delta's auto compaction, after a commit that leaves enough of them): without it each batch
    # adds files, and every later batch that reads the table (duplicates, lateness clock, MERGE)
    # pays for all of them, so batch time grew over a month of traffic.
    streamed = {**retention, "delta.autoOptimize.autoCompact": "true"}
    tables = [(names.bronze(stream), BRONZE_COLUMNS, "ingest_date", streamed) for stream in STREAMS]
    tables.append((names.silver("transactions"), silver_columns(TRANSACTION_FIELDS), "event_date", streamed))
    for stream in LATEST_BY:
        tables.append((names.versions(stream), silver_columns(STREAM_FIELDS[stream]), None, streamed))
    tables += [
        (names.quarantine, QUARANTINE_COLUMNS, None, streamed),
        (names.progress, PROGRESS_COLUMNS, None, streamed),
        (names.imports, IMPORT_COLUMNS, None, retention),
        (names.features, feature_columns(), "event_date", retention),
        (names.merchant_daily, MERCHANT_DAILY_COLUMNS, None, retention),
        (names.scored, SCORED_COLUMNS, "event_date", retention),
        (names.shadow, SHADOW_COLUMNS, "event_date", retention),
        (names.retraining_runs, RETRAINING_COLUMNS, None, retention),
        (names.console_audit, AUDIT_COLUMNS, None, retention),
    ]
    return {
        name: _ddl(name, columns, partitioned_by=partitioned_by, properties=properties)
        for name, columns, partitioned_by, properties in tables
    }


def latest_select_sql(source: str, key: str, order: str, columns: list[str]) -> str:
    """One row per ``key`` of ``source``: the latest ``order`` (a tie goes to the later Kafka record)."""
    listed = ", ".join(f"`{c}`" for c in columns)
    return (
        f"SELECT {listed} FROM (SELECT *, row_number() OVER (PARTITION BY `{key}` "
        f"ORDER BY `{order}` DESC, `_partition` DESC, `_offset` DESC) AS `_rank` FROM {source}) WHERE `_rank` = 1"
    )


def latest_views(names: TableNames) -> dict[str, str]:
    """``silver.users``, ``silver.merchants``, ``silver.labels`` by name, with the statement that
    creates each: a view of the latest version per key over the stream's versions table.

    Views, not tables MERGE-d per micro-batch (a fixed cost of seconds each, to copy what the
    versions tables hold); the append-only versions tables are the change feed."""
    return {
        names.silver(stream): f"CREATE VIEW IF NOT EXISTS {names.silver(stream)} AS {latest_sql(names, stream)}"
        for stream in LATEST_BY
    }


def latest_sql(names: TableNames, stream: str, version: int | None = None) -> str:
    """The SELECT of ``silver.<stream>``'s view; with ``version``, over that Delta version of the
    versions table (a consistent, repeatable read: what a quality gate pins)."""
    key, order = LATEST_BY[stream]
    source = names.versions(stream) + ("" if version is None else f" VERSION AS OF {int(version)}")
    return latest_select_sql(source, key, order, [c for c, _ in silver_columns(STREAM_FIELDS[stream])])


def enriched_view_sql(names: TableNames) -> str:
    """``silver.transactions_enriched``: transactions with their user's and merchant's current profile."""
    return f"""CREATE OR REPLACE VIEW {names.enriched} AS
        SELECT t.*, u.age AS user_age, u.gender AS user_gender, u.location AS user_location,
               u.latitude AS user_latitude, u.longitude AS user_longitude, u.signup_date AS user_signup_date,
               m.name AS merchant_name, m.category AS merchant_category, m.location AS merchant_location,
               m.latitude AS merchant_latitude, m.longitude AS merchant_longitude
        FROM {names.silver("transactions")} t
        LEFT JOIN {names.silver("users")} u ON t.user_id = u.user_id
        LEFT JOIN {names.silver("merchants")} m ON t.merchant_id = m.merchant_id"""


#: Catalog statements run side by side when a fresh lake's tables are created.
CREATE_THREADS = 4


def create_tables(spark: SparkSession, settings: Settings) -> TableNames:
    """Create the databases, tables and view of every layer where missing; existing ones are kept
    as they are. Every job calls it at start-up, so it asks the catalog once per schema what
    exists and runs a statement only for what does not: a ``CREATE TABLE IF NOT EXISTS`` of a
    Delta table costs a catalog round trip and a look at its log even when it creates nothing
    (4 s per job start for the 16 tables). On a fresh lake the missing tables are created four at a
    time: each statement mostly waits on the catalog server and on writing the table's first log
    entry, so the 19 of a fresh lake took 16 s one by one on 2 cores and 12 s this way."""
    names = table_names(settings)
    known_schemas = {row[0].lower() for row in spark.sql("SHOW SCHEMAS").collect()}
    existing: set[str] = set()  # the catalog keeps names in lower case
    views: set[str] = set()
    for schema in (names.bronze_schema, names.silver_schema, names.gold_schema):
        if schema.lower() not in known_schemas:
            spark.sql(f"CREATE SCHEMA IF NOT EXISTS {schema}")
            continue
        existing |= {f"{schema}.{row.tableName}".lower() for row in spark.sql(f"SHOW TABLES IN {schema}").collect()}
        if schema == names.silver_schema:
            views = {f"{schema}.{row.viewName}".lower() for row in spark.sql(f"SHOW VIEWS IN {schema}").collect()}
    missing = [ddl for name, ddl in table_ddls(names, settings).items() if name.lower() not in existing]
    with ThreadPoolExecutor(CREATE_THREADS) as pool:
        list(pool.map(spark.sql, missing))  # raises the first statement's error, if any
    for name, ddl in latest_views(names).items():
        if name.lower() in views:
            continue
        if name.lower() in existing:
            _drop_merged_copy(spark, name)  # a lake from a release that kept it as a table
        spark.sql(ddl)
    if names.enriched.lower() not in existing:
        spark.sql(enriched_view_sql(names))
    return names


def _drop_merged_copy(spark: SparkSession, name: str) -> None:
    """Releases up to 2026-12-07 kept the latest versions as a Delta table, MERGE-d by ingest on
    every micro-batch: every row of it is in the versions table, so it gives way to the view. Two
    jobs starting together may both get here: the one that finds the view already made leaves it."""
    if spark.catalog.getTable(name).tableType == "VIEW":
        return
    log.warning("%s: the MERGE-d table of earlier releases is replaced by a view of its versions", name)
    spark.sql(f"DROP TABLE IF EXISTS {name}")


#: gold.scored_transactions: one row per scored transaction (alert fields filled for alerts only).
SCORED_COLUMNS = (
    ("transaction_id", "STRING"),
    ("user_id", "STRING"),
    ("merchant_id", "STRING"),
    ("amount", "DOUBLE"),
    ("currency", "STRING"),
    ("event_time", "TIMESTAMP"),
    ("event_date", "DATE"),
    ("transaction_created_at", "TIMESTAMP"),
    ("kafka_partition", "INT"),
    ("kafka_offset", "BIGINT"),
    ("score", "DOUBLE"),
    ("threshold", "DOUBLE"),
    ("model_version", "INT"),
    ("is_alert", "BOOLEAN"),
    ("alert_id", "STRING"),
    ("reasons", "ARRAY<STRUCT<feature: STRING, value: DOUBLE, text: STRING>>"),
    ("scored_at", "TIMESTAMP"),
    ("run_id", "STRING"),
    ("batch_id", "BIGINT"),
)
#: gold.shadow_scores: per transaction scored while a shadow version ran, both scores side by side.
SHADOW_COLUMNS = (
    ("transaction_id", "STRING"),
    ("user_id", "STRING"),
    ("amount", "DOUBLE"),
    ("event_time", "TIMESTAMP"),
    ("event_date", "DATE"),
    ("model_version", "INT"),  # the champion's
    ("score", "DOUBLE"),
    ("is_alert", "BOOLEAN"),
    ("shadow_model_version", "INT"),
    ("shadow_score", "DOUBLE"),
    ("shadow_threshold", "DOUBLE"),
    ("shadow_is_alert", "BOOLEAN"),  # what it would have decided; it sends no alert
    ("scored_at", "TIMESTAMP"),
    ("run_id", "STRING"),
    ("batch_id", "BIGINT"),
)
MERCHANT_DAILY_COLUMNS = (
    ("merchant_id", "STRING"),
    ("event_date", "DATE"),
    ("tx_count", "BIGINT"),
    ("fraud_count", "BIGINT"),
)


#: gold.console_audit: every state-changing action in the analyst console (lakehouse.console.audit).
AUDIT_COLUMNS = (
    ("at", "TIMESTAMP"),
    ("actor", "STRING"),
    ("action", "STRING"),  # login | decide:<outcome> | promote | rollback | refused:<path>
    ("alert_id", "STRING"),
    ("transaction_id", "STRING"),
    ("label_id", "STRING"),  # the label event a decision put on fraud_labels
    ("model_version", "INT"),
    ("note", "STRING"),
    ("recorded_at", "TIMESTAMP"),
)

#: gold.retraining_runs: one row per retraining run (data interval) of the fraud_model_retraining DAG.
RETRAINING_COLUMNS = (
    ("run_key", "STRING"),
    ("interval_end", "TIMESTAMP"),
    ("status", "STRING"),  # promoted | shadowing | kept_champion | gate_failed | incomplete
    ("stopped_at", "STRING"),  # the failed gates, or the first step that did not run
    ("features_version", "BIGINT"),
    ("window_from", "DATE"),
    ("window_to", "DATE"),
    ("challenger_version", "INT"),
    ("champion_before", "INT"),
    ("champion_after", "INT"),
    ("challenger_ap", "DOUBLE"),
    ("champion_ap", "DOUBLE"),
    ("reason", "STRING"),
    ("scorer", "STRING"),
    ("failed_expectations", "ARRAY<STRING>"),
    ("recorded_at", "TIMESTAMP"),
    ("state", "STRING"),  # the run's whole state (JSON)
)


def feature_columns() -> list[tuple[str, str]]:
    types = feature_table_types()
    return [(c, types[c]) for c in feature_table_columns()]
