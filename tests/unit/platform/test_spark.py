"""The SparkSession factory's settings, checked without starting a JVM."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakehouse.errors import PlatformError
from lakehouse.platform.spark import (
    CLASS_ARCHIVE_DUMP_ENV,
    ROCKSDB_PROVIDER,
    class_archive_options,
    class_archive_path,
    spark_conf,
)
from lakehouse.settings import load_settings
from tests.helpers import PROJECT_DIR


@pytest.fixture
def fake_jars(tmp_path: Path) -> Path:
    for name in ("delta-spark_4.1_2.13-4.4.0.jar", "spark-sql-kafka-0-10_2.13-4.1.3.jar", "kafka-clients-3.9.1.jar"):
        (tmp_path / name).write_bytes(b"")
    return tmp_path


def test_spark_conf_local_has_delta_rocksdb_jars_and_derby_catalog(fake_jars: Path, tmp_path: Path) -> None:
    settings = load_settings(
        "test", environ={"FRAUDLAKE_SPARK__JARS_DIR": str(fake_jars), "FRAUDLAKE_PATHS__DATA_DIR": str(tmp_path)}
    )
    conf = spark_conf(settings)
    assert conf["spark.master"] == "local[2]"
    assert conf["spark.sql.shuffle.partitions"] == conf["spark.databricks.delta.snapshotPartitions"] == "2"
    assert conf["spark.sql.extensions"] == "io.delta.sql.DeltaSparkSessionExtension"
    assert conf["spark.sql.catalog.spark_catalog"] == "org.apache.spark.sql.delta.catalog.DeltaCatalog"
    assert conf["spark.sql.streaming.stateStore.providerClass"] == ROCKSDB_PROVIDER
    assert conf["spark.sql.catalogImplementation"] == "hive"
    assert str(tmp_path / "metastore" / "metastore_db") in conf["spark.hadoop.javax.jdo.option.ConnectionURL"]
    assert conf["spark.sql.warehouse.dir"] == str(tmp_path / "warehouse")
    assert conf["spark.driver.bindAddress"] == "127.0.0.1"
    assert sorted(Path(j).name for j in conf["spark.jars"].split(",")) == sorted(p.name for p in fake_jars.iterdir())
    assert conf["spark.sql.streaming.minBatchesToRetain"] == "10"  # test overlay's free-form conf


def test_spark_conf_cluster_takes_master_and_settings_from_config(fake_jars: Path) -> None:
    settings = load_settings(
        "cluster",
        environ={"SPARK_MASTER_URL": "spark://master.example:7077", "FRAUDLAKE_SPARK__JARS_DIR": str(fake_jars)},
    )
    conf = spark_conf(settings)
    assert conf["spark.master"] == "spark://master.example:7077"
    assert "spark.driver.bindAddress" not in conf
    assert conf["spark.executor.memory"] == "4g"
    assert conf["spark.sql.shuffle.partitions"] == conf["spark.databricks.delta.snapshotPartitions"] == "48"


def test_spark_conf_hive_metastore_uri(fake_jars: Path) -> None:
    settings = load_settings(
        "cluster",
        environ={
            "FRAUDLAKE_SPARK__CATALOG": "hive-metastore",
            "FRAUDLAKE_SPARK__METASTORE_URI": "thrift://metastore:9083",
            "FRAUDLAKE_SPARK__JARS_DIR": str(fake_jars),
        },
    )
    assert spark_conf(settings)["spark.hadoop.hive.metastore.uris"] == "thrift://metastore:9083"


def test_spark_conf_missing_jars_says_how_to_get_them(tmp_path: Path) -> None:
    settings = load_settings("test", environ={"FRAUDLAKE_SPARK__JARS_DIR": str(tmp_path / "nowhere")})
    with pytest.raises(PlatformError, match=r"Spark jars missing .*make jars"):
        spark_conf(settings)


def test_spark_sql_shell_uses_the_same_catalog_and_jars(fake_jars: Path, tmp_path: Path) -> None:
    from lakehouse.platform.spark import spark_sql_shell_command

    (fake_jars / "derbyclient-10.16.1.1.jar").write_bytes(b"")
    settings = load_settings(
        "local",
        environ={
            "FRAUDLAKE_SPARK__JARS_DIR": str(fake_jars),
            "FRAUDLAKE_SPARK__CATALOG_SERVER__JARS_DIR": str(fake_jars),
            "FRAUDLAKE_PATHS__DATA_DIR": str(tmp_path),
        },
    )
    command = spark_sql_shell_command(settings, "-e", "SHOW TABLES")

    assert command[0].endswith("pyspark/bin/spark-sql")
    assert command[command.index("--master") + 1] == "local[*]"
    assert "spark-sql-kafka-0-10_2.13-4.1.3.jar" in command[command.index("--jars") + 1]
    confs = dict(c.split("=", 1) for c in command[1:] if "=" in c and c.startswith("spark."))
    assert confs["spark.sql.catalog.spark_catalog"] == "org.apache.spark.sql.delta.catalog.DeltaCatalog"
    # The local environment shares one catalog server between processes.
    assert (
        confs["spark.hadoop.javax.jdo.option.ConnectionURL"] == "jdbc:derby://127.0.0.1:1527/metastore_db;create=true"
    )
    assert confs["spark.driver.extraClassPath"].endswith("derbyclient-10.16.1.1.jar")
    assert command[-2:] == ["-e", "SHOW TABLES"]


def test_both_local_catalogs_share_one_driver_class_path_and_so_one_class_archive(fake_jars: Path) -> None:
    (fake_jars / "derbyclient-10.16.1.1.jar").write_bytes(b"")
    jars = {"FRAUDLAKE_SPARK__JARS_DIR": str(fake_jars), "FRAUDLAKE_SPARK__CATALOG_SERVER__JARS_DIR": str(fake_jars)}
    embedded, server = (load_settings(env, environ=jars) for env in ("test", "local"))
    assert (embedded.spark.catalog, server.spark.catalog) == ("derby", "derby-server")
    paths = {class_archive_path(s, spark_conf(s)) for s in (embedded, server)}
    assert len(paths) == 1 and next(iter(paths)).parent == PROJECT_DIR / ".jars" / "class-archive"
    hive = load_settings("cluster", environ={"FRAUDLAKE_SPARK__JARS_DIR": str(fake_jars)})
    assert hive.spark.class_archive_dir is not None
    assert class_archive_path(hive, spark_conf(hive)) not in paths  # another class path, another archive


def test_the_driver_uses_its_class_archive_only_when_it_exists_and_jvm_warnings_go_to_stderr(
    fake_jars: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings(
        "test",
        environ={"FRAUDLAKE_SPARK__JARS_DIR": str(fake_jars), "FRAUDLAKE_SPARK__CLASS_ARCHIVE_DIR": str(tmp_path)},
    )
    conf = spark_conf(settings)
    assert "-Xlog:all=warning:stderr" in conf["spark.driver.extraJavaOptions"].split()  # stdout is the output's
    monkeypatch.delenv(CLASS_ARCHIVE_DUMP_ENV, raising=False)
    assert class_archive_options(settings, conf) == []  # not made yet: start without it
    archive = class_archive_path(settings, conf)
    archive.write_bytes(b"made by make setup")
    assert class_archive_options(settings, conf) == [f"-XX:SharedArchiveFile={archive}"]
    monkeypatch.setenv(CLASS_ARCHIVE_DUMP_ENV, str(tmp_path / "partial.jsa"))  # the process that makes it
    assert class_archive_options(settings, conf) == [f"-XX:ArchiveClassesAtExit={tmp_path / 'partial.jsa'}"]
