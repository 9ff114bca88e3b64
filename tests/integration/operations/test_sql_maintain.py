"""`fraudlake sql` and `fraudlake maintain` on the session's catalog: time travel, output formats,
plain errors, compaction that keeps time travel, and a retention that cannot go below the window."""

from __future__ import annotations

import csv
import io
import json
import shutil
import uuid
from pathlib import Path

import pytest

from lakehouse.contract.queries import ingest_query_name
from lakehouse.errors import ConfigError
from lakehouse.operations.maintenance import maintain
from lakehouse.operations.sql import SqlError, run_sql, write_rows
from lakehouse.platform.checkpoints import DELTA_END_INDEX
from lakehouse.platform.isolation import isolated
from lakehouse.platform.streaming import query_plan
from tests.helpers import write_checkpoint

pytestmark = pytest.mark.integration


def four_versions(spark, name: str) -> tuple[str, str]:
    """``<new schema>.<name>`` with versions 0..3 (one row, one file each time)."""
    schema = f"sqltest_{uuid.uuid4().hex[:8]}"
    spark.sql(f"CREATE SCHEMA {schema}")
    table = f"{schema}.{name}"
    spark.createDataFrame([(0, 10.0)], "id INT, amount DOUBLE").write.format("delta").saveAsTable(table)
    for i in range(1, 4):
        spark.sql(f"INSERT INTO {table} VALUES ({i}, {10.0 * (i + 1)})")
    return schema, table


@pytest.fixture
def versioned_table(spark):
    """schema.amounts with versions 0..3 (one row each time), in a schema of its own."""
    schema, table = four_versions(spark, "amounts")
    yield schema, table
    spark.sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def test_sql_time_travel_by_version_and_timestamp(spark, versioned_table) -> None:
    _, table = versioned_table
    assert run_sql(spark, f"SELECT count(*) AS n FROM {table}").first().n == 4
    assert run_sql(spark, f"SELECT count(*) AS n FROM {table} VERSION AS OF 1").first().n == 2
    stamp = run_sql(spark, f"DESCRIBE HISTORY {table}").where("version = 2").first().timestamp
    assert run_sql(spark, f"SELECT count(*) AS n FROM {table} TIMESTAMP AS OF '{stamp}'").first().n == 3


def test_sql_bad_statement_is_one_plain_line(spark) -> None:
    with pytest.raises(SqlError) as error:
        run_sql(spark, "SELECT * FROM no_such_schema.no_such_table")
    assert "\n" not in str(error.value) and "no_such_table" in str(error.value).lower()
    with pytest.raises(SqlError):
        run_sql(spark, "SELEKT 1")


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_sql_writes_csv_and_json_lines(spark, versioned_table, fmt) -> None:
    _, table = versioned_table
    out = io.StringIO()
    written = write_rows(run_sql(spark, f"SELECT id, amount FROM {table} ORDER BY id"), fmt, out)
    text = out.getvalue()
    rows = list(csv.DictReader(io.StringIO(text))) if fmt == "csv" else [json.loads(line) for line in text.splitlines()]
    assert written == 4
    assert [float(r["amount"]) for r in rows] == [10.0, 20.0, 30.0, 40.0]


def test_maintain_compacts_and_keeps_time_travel(spark, settings, versioned_table) -> None:
    schema, table = versioned_table
    only_this_schema = {"bronze": schema, "silver": f"{schema}_none", "gold": f"{schema}_none"}
    test_settings = isolated(settings, schemas=False, lakehouse={"schemas": only_this_schema})

    [result] = maintain(spark, test_settings)

    assert result.table == table
    assert result.files_before == 4 and result.files_after == 1
    assert run_sql(spark, f"SELECT count(*) AS n FROM {table} VERSION AS OF 0").first().n == 1  # still there


def test_maintain_refuses_a_retention_below_the_time_travel_window(spark, settings) -> None:
    with pytest.raises(ConfigError, match="history_retention_hours"):
        maintain(spark, settings, retain_hours=1)


READS = [
    "SELECT count(*) FROM {table}",
    "WITH a AS (SELECT * FROM {table}) SELECT max(id) FROM a",
    "SELECT * FROM {table} VERSION AS OF 1",
    "SHOW TABLES IN {schema}",
    "DESCRIBE HISTORY {table}",
    "DESCRIBE DETAIL {table}",
    "EXPLAIN DELETE FROM {table}",
]
WRITES = [
    "DROP TABLE {table}",
    "DELETE FROM {table} WHERE id = 0",
    "UPDATE {table} SET amount = 0",
    "INSERT INTO {table} VALUES (9, 9.0)",
    "MERGE INTO {table} t USING {table} s ON t.id = s.id WHEN MATCHED THEN DELETE",
    "TRUNCATE TABLE {table}",
    "ALTER TABLE {table} SET LOCATION '/tmp/elsewhere'",
    "RESTORE TABLE {table} TO VERSION AS OF 0",
    "CREATE TABLE {schema}.copy SHALLOW CLONE {table}",
    "EXECUTE IMMEDIATE 'DROP TABLE {table}'",
    "INSERT OVERWRITE DIRECTORY '/tmp/out' SELECT 1",
    "OPTIMIZE {table}",
    "SET spark.sql.shuffle.partitions = 1",
]


def test_sql_is_read_only_unless_write_is_given(spark, versioned_table) -> None:
    """Defect: `fraudlake sql` ran DROP, DELETE and UPDATE on managed tables without asking."""
    schema, table = versioned_table
    for statement in READS:
        run_sql(spark, statement.format(schema=schema, table=table)).collect()
    for statement in WRITES:
        with pytest.raises(SqlError, match="read-only; give --write"):
            run_sql(spark, statement.format(schema=schema, table=table))
    assert run_sql(spark, f"SELECT count(*) AS n FROM {table}").first().n == 4
    assert run_sql(spark, f"DESCRIBE HISTORY {table}").agg({"version": "max"}).first()[0] == 3

    run_sql(spark, f"DELETE FROM {table} WHERE id = 0", write=True)

    assert run_sql(spark, f"SELECT count(*) AS n FROM {table}").first().n == 3


def added_files(table_location: Path, version: int) -> list[Path]:
    commit = table_location / "_delta_log" / f"{version:020d}.json"
    actions = [json.loads(line) for line in commit.read_text().splitlines()]
    return [table_location / a["add"]["path"] for a in actions if "add" in a]


def test_vacuum_keeps_the_files_a_lagging_silver_stream_has_not_read(spark, settings, tmp_path) -> None:
    """OPTIMIZE replaces bronze's files, VACUUM deletes the originals: a silver query that had not
    read them yet would fail on a missing file at its next batch. Maintain keeps them."""
    schema, table = four_versions(spark, "transactions")
    test_settings = isolated(
        settings,
        schemas=False,
        checkpoint_dir=tmp_path / "checkpoints",
        lakehouse={
            "schemas": {"bronze": schema, "silver": f"{schema}_none", "gold": f"{schema}_none"},
            "history_retention_hours": 0.0001,
        },
    )
    checkpoint = Path(query_plan(test_settings, ingest_query_name("silver", "transactions")).checkpoint)
    read_through_1 = {"sourceVersion": 1, "reservoirId": "r", "reservoirVersion": 1, "index": DELTA_END_INDEX}
    write_checkpoint(checkpoint, {0: read_through_1}, committed=[0])
    location = Path(spark.sql(f"DESCRIBE DETAIL {table}").first().location.removeprefix("file:"))
    unread = added_files(location, 2) + added_files(location, 3)
    spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "false")
    try:
        [lagging] = maintain(spark, test_settings)
        assert lagging.files_after == 1 and lagging.retained_hours >= 1
        assert all(f.is_file() for f in unread), "VACUUM deleted files the silver stream has not read"

        shutil.rmtree(checkpoint)  # no stream: the configured retention alone, and the originals go
        [alone] = maintain(spark, test_settings)
        assert alone.retained_hours == 0.0001
        assert not any(f.is_file() for f in unread)
    finally:
        spark.conf.set("spark.databricks.delta.retentionDurationCheck.enabled", "true")
        spark.sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
