"""The one SparkSession factory.

Everything comes from :class:`~lakehouse.settings.SparkSettings`: the master URL, the jars (Delta
and the Kafka connector, resolved by Maven, so nothing is fetched by Ivy at run time), the catalog
(an embedded Derby metastore locally, a Hive metastore on a cluster), the RocksDB state store and
any extra ``spark.*`` setting. The same code runs on ``local[*]`` and on a cluster.
"""

from __future__ import annotations

import hashlib
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from lakehouse.errors import PlatformError
from lakehouse.platform.catalog_server import catalog_credentials
from lakehouse.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

ROCKSDB_PROVIDER = "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider"
REQUIRED_JARS = ("delta-spark_", "spark-sql-kafka-0-10_")
#: Set (to a file) in the process that makes the class-data archive: its driver writes it on exit.
CLASS_ARCHIVE_DUMP_ENV = "FRAUDLAKE_CLASS_ARCHIVE_DUMP"


def spark_jars(settings: Settings) -> list[Path]:
    """The jars put on ``spark.jars``; raises when the Maven-resolved folder is missing or incomplete."""
    folder = settings.spark.jars_dir
    if folder is None:
        return []
    jars = sorted(folder.glob("*.jar")) if folder.is_dir() else []
    missing = [prefix for prefix in REQUIRED_JARS if not any(j.name.startswith(prefix) for j in jars)]
    if missing:
        raise PlatformError(
            f"Spark jars missing in {folder} ({', '.join(missing)}*): run `make jars` (or `make setup`)"
        )
    return jars


TRACK_STATE_ROWS = "spark.sql.streaming.stateStore.rocksdb.trackTotalNumberOfRows"


def spark_conf(settings: Settings) -> dict[str, str]:
    """Every Spark setting the session is built with (pure: no JVM, no disk writes)."""
    spark = settings.spark
    conf: dict[str, str] = {
        "spark.master": spark.master,
        "spark.app.name": spark.app_name,
        "spark.driver.memory": spark.driver_memory,
        "spark.sql.shuffle.partitions": str(spark.shuffle_partitions),
        "spark.default.parallelism": str(spark.shuffle_partitions),
        "spark.ui.enabled": str(spark.ui_enabled).lower(),
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        "spark.sql.streaming.stateStore.providerClass": ROCKSDB_PROVIDER,
        "spark.sql.warehouse.dir": settings.warehouse_dir,
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.streaming.checkpointLocation": settings.checkpoint_dir,
        # transformWithState with a processing-time TTL otherwise runs empty micro-batches for
        # ever, so an availableNow query (backfills, the feature check) would never finish; TTL
        # eviction still happens in every batch that has data.
        "spark.sql.streaming.noDataMicroBatches.enabled": "false",
        # RocksDB state: commit a change log per micro-batch instead of a full checkpoint (the
        # snapshot is uploaded in the background): the scorer's commit drops from seconds to ms.
        "spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled": "true",
        # Counting the store's rows costs a read before every write (the scorer writes once per user
        # and batch): off, as Spark's docs advise for speed. `bench state`, which reports the count,
        # turns it on for its own query (TRACK_STATE_ROWS).
        TRACK_STATE_ROWS: "false",
        # Delta: tables written here are read by batch jobs and streams alike; keep defaults that a
        # platform team expects (Change Data Feed can be enabled per table).
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
        # Delta rebuilds a table's snapshot from its log in this many tasks (default 50, sized for a
        # cluster): every streaming MERGE or append pays it, so it follows the shuffle partitions.
        "spark.databricks.delta.snapshotPartitions": str(spark.shuffle_partitions),
        # Hadoop sets a new file's mode itself (umask 022: world-readable), whatever the process's
        # umask: the warehouse holds personal data, so tables and checkpoints are their owner's
        # alone. Hive's defaults set the old key (dfs.umaskmode), which wins over the new one.
        "spark.hadoop.fs.permissions.umask-mask": "077",
        "spark.hadoop.dfs.umaskmode": "077",
    }
    jars = spark_jars(settings)
    if jars:
        conf["spark.jars"] = ",".join(str(j) for j in jars)
    # JVM warnings (e.g. an archive that does not match) go to stderr: stdout carries commands' output.
    java_options = ["-Duser.timezone=UTC", "-Xlog:disable", "-Xlog:all=warning:stderr"]
    if spark.log4j_config is not None:
        java_options.append(f"-Dlog4j2.configurationFile={spark.log4j_config.as_uri()}")
    if spark.catalog == "derby":
        metastore = settings.metastore_dir
        conf["spark.sql.catalogImplementation"] = "hive"
        conf["spark.hadoop.javax.jdo.option.ConnectionURL"] = (
            f"jdbc:derby:;databaseName={metastore / 'metastore_db'};create=true"
        )
        conf["spark.hadoop.datanucleus.schema.autoCreateAll"] = "true"
        conf["spark.hadoop.hive.metastore.schema.verification"] = "false"
        java_options.append(f"-Dderby.system.home={metastore}")
    elif spark.catalog == "derby-server":
        server = spark.catalog_server
        conf["spark.sql.catalogImplementation"] = "hive"
        # The database lives in the server's own folder (derby.system.home), named relative to it.
        conf["spark.hadoop.javax.jdo.option.ConnectionURL"] = (
            f"jdbc:derby://{server.host}:{server.port}/metastore_db;create=true"
        )
        conf["spark.hadoop.javax.jdo.option.ConnectionDriverName"] = "org.apache.derby.jdbc.ClientDriver"
        credentials = catalog_credentials(settings) if server.enabled else None
        if credentials is not None:  # Spark redacts keys that name a password wherever it shows them
            conf["spark.hadoop.javax.jdo.option.ConnectionUserName"] = credentials[0]
            conf["spark.hadoop.javax.jdo.option.ConnectionPassword"] = credentials[1]
        conf["spark.hadoop.datanucleus.schema.autoCreateAll"] = "true"
        conf["spark.hadoop.hive.metastore.schema.verification"] = "false"
    elif spark.catalog == "hive-metastore":
        conf["spark.sql.catalogImplementation"] = "hive"
        conf["spark.hadoop.hive.metastore.uris"] = str(spark.metastore_uri)
    else:
        conf["spark.sql.catalogImplementation"] = "in-memory"
    if spark.catalog in ("derby", "derby-server"):
        # The metastore client loads its JDBC driver from the driver JVM's own class path. The
        # embedded catalog gets the client jar too (unused there, and optional): both local
        # catalogs then share one driver class path, so one class-data archive serves them both.
        client = derby_client_jar(settings, required=spark.catalog == "derby-server")
        if client is not None:
            conf["spark.driver.extraClassPath"] = str(client)
    if spark.local_ip:
        conf["spark.driver.host"] = spark.local_ip
        conf["spark.driver.bindAddress"] = spark.local_ip
    conf["spark.driver.extraJavaOptions"] = " ".join([*java_options, *spark.driver_java_options])
    conf.update(spark.conf)
    return conf


def class_archive_path(settings: Settings, conf: dict[str, str]) -> Path | None:
    """The driver's class-data archive for this class path (see :mod:`lakehouse.platform.class_archive`);
    None when archives are off."""
    folder = settings.spark.class_archive_dir
    if folder is None:
        return None
    key = hashlib.sha256(conf.get("spark.driver.extraClassPath", "").encode()).hexdigest()[:12]
    return folder / f"spark-driver-{key}.jsa"


def class_archive_options(settings: Settings, conf: dict[str, str]) -> list[str]:
    """The driver's JVM options for the archive: writing it (the child process that makes it), or using it."""
    dump = os.environ.get(CLASS_ARCHIVE_DUMP_ENV)
    if dump:
        return [f"-XX:ArchiveClassesAtExit={dump}"]
    path = class_archive_path(settings, conf)
    return [f"-XX:SharedArchiveFile={path}"] if path is not None and path.is_file() else []


def derby_client_jar(settings: Settings, *, required: bool = True) -> Path | None:
    folder = settings.spark.catalog_server.jars_dir
    jars = sorted(folder.glob("derbyclient-*.jar")) if folder.is_dir() else []
    if not jars:
        if not required:
            return None
        raise PlatformError(f"Derby client jar missing in {folder}: run `make jars` (or `make setup`)")
    return jars[-1]


def build_spark(settings: Settings, *, app_name: str | None = None) -> SparkSession:
    """Create (or return the running) SparkSession for these settings."""
    from pyspark.sql import SparkSession

    conf = spark_conf(settings)
    if app_name:
        conf["spark.app.name"] = app_name
    archive = class_archive_options(settings, conf)
    if archive:
        conf["spark.driver.extraJavaOptions"] = " ".join([conf["spark.driver.extraJavaOptions"], *archive])
    if settings.spark.local_ip:
        os.environ.setdefault("SPARK_LOCAL_IP", settings.spark.local_ip)
    # Python workers must run the interpreter (and virtualenv) of the driver.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    if settings.spark.catalog == "derby":
        settings.metastore_dir.mkdir(parents=True, exist_ok=True)
    if settings.spark.catalog == "derby-server":
        from lakehouse.platform.jvm import port_open

        server = settings.spark.catalog_server
        if not port_open(server.host, server.port):
            hint = " Start it with `fraudlake catalog up`." if server.enabled else ""
            raise PlatformError(f"catalog server not reachable at {server.host}:{server.port}.{hint}")

    builder = SparkSession.builder
    for key, value in conf.items():
        builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # the JVM failed to start: say why in one line
        raise PlatformError(f"Spark failed to start ({settings.spark.master}): {exc}") from exc
    if settings.spark.catalog == "derby":
        _check_embedded_catalog(session, settings)
    log.info("Spark %s session on %s", session.version, settings.spark.master)
    return session


def _check_embedded_catalog(session: SparkSession, settings: Settings) -> None:
    """Embedded Derby admits one process per metastore folder: say so plainly when another holds it."""
    try:
        session.catalog.listDatabases()
    except Exception as exc:
        if "metastore" not in str(exc).lower() and "derby" not in str(exc).lower():
            raise
        session.stop()
        raise PlatformError(
            f"the catalog in {settings.metastore_dir} is in use by another Spark process (embedded Derby "
            "admits one at a time): stop that job (e.g. a running `fraudlake stream ingest`) and retry, or "
            "use spark.catalog: hive-metastore for concurrent access"
        ) from None


def spark_sql_shell_command(settings: Settings, *extra: str) -> list[str]:
    """The command line of pyspark's own ``spark-sql`` shell with this platform's settings, so it
    sees the same catalog, warehouse, Delta extensions and jars as the jobs."""
    import pyspark

    shell = Path(pyspark.__file__).parent / "bin" / "spark-sql"
    conf = spark_conf(settings)
    command = [str(shell), "--master", conf.pop("spark.master"), "--name", "fraudlake-spark-sql"]
    if "spark.jars" in conf:
        command += ["--jars", conf.pop("spark.jars")]
    command += ["--driver-java-options", conf.pop("spark.driver.extraJavaOptions")]
    for key, value in conf.items():
        command += ["--conf", f"{key}={value}"]
    return command + list(extra)
