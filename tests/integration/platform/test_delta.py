"""Delta tables on the session's Spark: write, read back, time travel, and tables by name in the
persistent catalog."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from lakehouse.contract.tables import create_tables, latest_views, table_ddls
from lakehouse.platform.delta import append_once, auto_compaction_off, latest_version, table_location
from lakehouse.platform.isolation import drop_schemas, isolated

pytestmark = pytest.mark.integration


def test_delta_write_read_and_time_travel_by_path(spark, tmp_path) -> None:
    path = str(tmp_path / "amounts")
    spark.createDataFrame([(1, 10.0), (2, 20.0)], "id INT, amount DOUBLE").write.format("delta").save(path)
    spark.createDataFrame([(3, 30.0)], "id INT, amount DOUBLE").write.format("delta").mode("append").save(path)

    now = sorted(r.id for r in spark.read.format("delta").load(path).collect())
    before = sorted(r.id for r in spark.read.format("delta").option("versionAsOf", 0).load(path).collect())

    assert now == [1, 2, 3]
    assert before == [1, 2]


def test_delta_table_by_name_in_catalog_with_sql_time_travel(spark, settings) -> None:
    schema = f"bronze_test_{uuid.uuid4().hex[:8]}"
    table = f"{schema}.probe"
    spark.sql(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    try:
        spark.createDataFrame([("a",), ("b",)], "v STRING").write.format("delta").saveAsTable(table)
        spark.sql(f"INSERT INTO {table} VALUES ('c')")

        assert spark.catalog.tableExists(table)
        assert spark.sql(f"SELECT count(*) AS n FROM {table}").first().n == 3
        assert spark.sql(f"SELECT count(*) AS n FROM {table} VERSION AS OF 0").first().n == 2
        location = spark.sql(f"DESCRIBE DETAIL {table}").first().location
        assert location.endswith(f"{schema}.db/probe")
        assert table_location(spark, table) == location  # read from the catalog's entry
        assert settings.warehouse_dir in location  # the configured warehouse, not a working-dir default
        assert (settings.metastore_dir / "metastore_db").is_dir()  # the persistent (Derby) catalog
    finally:
        spark.sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def test_latest_version_follows_every_commit_and_a_view_gets_delta_s_own_error(spark) -> None:
    """The version a job pins comes from Delta's log of the table: it sees a commit made by path
    (as the streams write) at once, and a name that is no Delta table fails as DESCRIBE HISTORY does."""
    from pyspark.errors import AnalysisException

    schema = f"bronze_test_{uuid.uuid4().hex[:8]}"
    table = f"{schema}.probe"
    spark.sql(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    try:
        spark.createDataFrame([("a",)], "v STRING").write.format("delta").saveAsTable(table)
        assert latest_version(spark, table) == 0
        append_once(spark.createDataFrame([("b",)], "v STRING"), table_location(spark, table), app_id="t", batch_id=0)
        spark.sql(f"INSERT INTO {table} VALUES ('c')")
        described = spark.sql(f"DESCRIBE HISTORY {table} LIMIT 1").first().version
        assert latest_version(spark, table) == described == 2
        spark.sql(f"CREATE VIEW {schema}.probe_view AS SELECT * FROM {table}")
        with pytest.raises(AnalysisException):
            latest_version(spark, f"{schema}.probe_view")
        with pytest.raises(AnalysisException):
            latest_version(spark, f"{schema}.missing")
    finally:
        spark.sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def test_create_tables_creates_what_is_missing_and_keeps_what_exists(spark, settings, tmp_path) -> None:
    """Every job calls it at start-up: the first call creates every table and the view, a later one
    recreates a dropped table and leaves the others (and their rows) as they were."""
    own = isolated(settings, data_dir=tmp_path)
    try:
        names = create_tables(spark, own)
        wanted = {*table_ddls(names, own), *latest_views(names), names.enriched}
        assert all(spark.catalog.tableExists(name) for name in wanted)
        spark.sql(f"INSERT INTO {names.retraining_runs} (run_key, status) VALUES ('k', 'promoted')")
        spark.sql(f"DROP TABLE {names.quarantine}")

        create_tables(spark, own)

        assert all(spark.catalog.tableExists(name) for name in wanted)
        assert spark.table(names.retraining_runs).count() == 1
        assert spark.table(names.quarantine).count() == 0
    finally:
        drop_schemas(spark, own)


def test_a_lake_whose_latest_users_are_a_merged_table_gets_the_view_of_its_versions(spark, settings, tmp_path) -> None:
    """Upgrade: releases up to 2026-12-07 kept ``silver.users`` as a Delta table MERGE-d by ingest.
    The next job start replaces it by the view over ``silver.user_versions``, whose rows it held."""
    own = isolated(settings, data_dir=tmp_path)
    try:
        names = create_tables(spark, own)
        users = names.silver("users")
        columns = "user_id, updated_at, _partition, _offset"
        spark.sql(f"DROP VIEW {users}")
        spark.sql(f"CREATE TABLE {users} USING DELTA AS SELECT * FROM {names.versions('users')}")
        spark.sql(
            f"INSERT INTO {names.versions('users')} ({columns}) VALUES "
            "('U1', TIMESTAMP '2026-11-01 00:00:00', 0, 1), ('U1', TIMESTAMP '2026-11-02 00:00:00', 0, 2)"
        )

        create_tables(spark, own)

        assert spark.catalog.getTable(users).tableType == "VIEW"
        assert [(r.user_id, r._offset) for r in spark.table(users).collect()] == [("U1", 2)]
    finally:
        drop_schemas(spark, own)


def test_the_tables_the_streams_write_compact_their_small_files_and_the_others_do_not(
    spark, settings, tmp_path
) -> None:
    """Defect: every micro-batch added files to bronze and silver, and each later batch paid for all
    of them (batch time rose over a compressed month). Delta's auto compaction (a lower threshold
    here, so that a few appends reach it) keeps the streamed tables' file count bounded."""
    own = isolated(settings, data_dir=tmp_path)
    names = create_tables(spark, own)
    spark.conf.set("spark.databricks.delta.autoCompact.minNumFiles", "4")
    try:
        for table in (names.progress, names.retraining_runs):
            for i in range(6):
                spark.sql(
                    f"INSERT INTO {table} (source) VALUES ('{i}')"
                    if table == names.progress
                    else f"INSERT INTO {table} (run_key, status) VALUES ('{i}', 'promoted')"
                )
        files = {t: spark.sql(f"DESCRIBE DETAIL {t}").first().numFiles for t in (names.progress, names.retraining_runs)}
        assert files[names.progress] < 4, files  # compacted on the way
        assert files[names.retraining_runs] == 6, files  # not streamed: left as written
        assert spark.table(names.progress).count() == 6
        with auto_compaction_off(spark):  # an import's bulk writes: left for `fraudlake maintain`
            for i in range(6):
                spark.sql(f"INSERT INTO {names.quarantine} (source, reason) VALUES ('{i}', 'r')")
        assert spark.sql(f"DESCRIBE DETAIL {names.quarantine}").first().numFiles == 6
    finally:
        spark.conf.unset("spark.databricks.delta.autoCompact.minNumFiles")
        drop_schemas(spark, own)


def test_a_merge_that_meets_a_concurrent_writer_runs_again_on_a_fresh_snapshot(spark, tmp_path) -> None:
    """Defect: an OPTIMIZE, an import or a DELETE committing under the silver MERGE made it fail,
    and the failed query stopped ingest. A UDF in the MERGE's source holds it until another writer
    has rewritten the files it read, so the conflict is certain, not a matter of timing."""
    import threading

    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    from lakehouse.platform.delta import conflict_errors, retry_on_conflict
    from lakehouse.platform.waits import wait_until

    path = str(tmp_path / "users")
    spark.createDataFrame([(i, 0) for i in range(4)], "id INT, v INT").coalesce(1).write.format("delta").save(path)
    reached, release = tmp_path / "reached", tmp_path / "release"

    @F.udf("int")
    def held(value: int) -> int:
        from lakehouse.platform.waits import wait_until  # in the Python worker

        reached.touch()
        wait_until(release.exists, timeout_s=120, what="the other writer's commit")
        return value

    source = spark.range(0, 4, 1, numPartitions=1).select(F.col("id").cast("int"), held(F.lit(1)).alias("v"))
    attempts: list[int] = []

    def merge() -> None:
        attempts.append(1)
        table = DeltaTable.forPath(spark, path).alias("t")
        table.merge(source.alias("s"), "t.id = s.id").whenMatchedUpdate(set={"v": "s.v"}).execute()

    def other_writer(drop_id: int) -> threading.Thread:
        def run() -> None:
            wait_until(reached.exists, timeout_s=120, what="the MERGE reading its source")
            spark.sql(f"DELETE FROM delta.`{path}` WHERE id = {drop_id}")
            release.touch()

        thread = threading.Thread(target=run)
        thread.start()
        return thread

    writer = other_writer(3)
    with pytest.raises(conflict_errors()):
        retry_on_conflict(merge, what="test merge", attempts=1)  # without retries: the conflict is real
    writer.join()
    reached.unlink()
    release.unlink()

    writer = other_writer(2)
    retry_on_conflict(merge, what="test merge", backoff_s=0.01)
    writer.join()

    assert len(attempts) == 1 + 2  # the failed one above, then one conflict and one success
    rows = sorted((r.id, r.v) for r in spark.read.format("delta").load(path).collect())
    assert rows == [(0, 1), (1, 1)]  # updated on the snapshot after both deletes


def test_files_the_platform_creates_are_private(tmp_path, cli_env) -> None:
    """Defect: the warehouse (personal data), the MLflow database and Airflow's generated password
    were world-readable. Every entry point sets a private umask before it starts anything, so the
    files of a command, and of the Spark JVM it starts, are the owner's alone (0600, folders 0700)."""
    import stat
    import subprocess
    import sys

    fraudlake = str(Path(sys.executable).parent / "fraudlake")
    own = {**cli_env, "FRAUDLAKE_PATHS__DATA_DIR": str(tmp_path / "data"), "FRAUDLAKE_SPARK__CATALOG": "in-memory"}
    table, batch = tmp_path / "table", tmp_path / "batch"
    for command in (
        ["simulate", "--out", str(batch), "--transactions", "200", "--days", "2"],
        ["sql", "--write", f"CREATE TABLE probe USING DELTA LOCATION '{table}' AS SELECT 1 AS id"],
    ):
        done = subprocess.run([fraudlake, *command], env=own, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]

    written = [p for root in (table, batch, tmp_path / "data") for p in root.rglob("*")]
    exposed = [str(p) for p in written if stat.S_IMODE(p.stat().st_mode) & 0o077]
    assert len(written) > 10 and exposed == []
