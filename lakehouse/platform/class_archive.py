"""The Spark driver's class-data archive (the JVM's AppCDS): a faster start for every short job.

A Spark driver loads and verifies some 20,000 classes before it runs anything; on 2 cores that is
about half of the 11 to 14 s a ``fraudlake`` command, a job or an Airflow task spends starting Spark.
The JVM can map classes from an archive made once instead (``-XX:SharedArchiveFile``), which
takes the start-up to about 8 s. Long jobs gain little; the many short ones (every DAG task, every
CLI command, every restart) gain 4 to 6 s each.

- :func:`~lakehouse.platform.spark.class_archive_path`: the archive for a driver class path
  (``spark.class_archive_dir``; one file per ``spark.driver.extraClassPath``, because the JVM
  accepts an archive only for the class path it was made with).
- :func:`~lakehouse.platform.spark.build_spark` uses it when the file exists. The JVM checks it
  (same JDK, same class path, same jar files) and, when it does not match, starts without it and
  says so in one warning line on stderr: a stale archive costs time, never correctness.
- ``python -m lakehouse.platform.class_archive [--env ENV]`` (run by ``make setup``) makes it: a
  child process starts a driver with ``-XX:ArchiveClassesAtExit``, goes through the catalog, Delta
  and a stateful stream on a scratch folder, and exits; the archive is moved into place only when
  it was written whole. Re-run it after a JDK or pyspark upgrade (``make setup`` does, when the
  packages change).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from lakehouse.errors import PlatformError
from lakehouse.platform.isolation import isolated
from lakehouse.platform.jobs import job_environ
from lakehouse.platform.spark import CLASS_ARCHIVE_DUMP_ENV, build_spark, class_archive_path, spark_conf
from lakehouse.settings import Settings


def make(settings: Settings, timeout_s: float = 600) -> Path:
    """Write the archive for these settings' driver class path (replacing an older one)."""
    path = class_archive_path(settings, spark_conf(settings))
    if path is None:
        raise PlatformError("spark.class_archive_dir is not set: there is no class-data archive to make")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.unlink(missing_ok=True)
    command = [sys.executable, "-m", "lakehouse.platform.class_archive", "--workload", "--env", settings.env]
    dump = {**job_environ(), CLASS_ARCHIVE_DUMP_ENV: str(partial)}
    done = subprocess.run(command, env=dump, capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0 or not partial.is_file() or partial.stat().st_size == 0:
        partial.unlink(missing_ok=True)
        raise PlatformError(f"the class-data archive was not written (exit {done.returncode}): {done.stderr[-1500:]}")
    partial.replace(path)
    return path


def _workload(settings: Settings) -> None:
    """A short tour of what jobs load at start-up: the catalog, Delta, SQL, a stateful stream."""
    with tempfile.TemporaryDirectory(prefix="fraudlake-class-archive-") as scratch:
        root = Path(scratch)
        # The class path comes from the real settings; the catalog and the data are scratch ones.
        own = isolated(
            settings,
            schemas=False,
            data_dir=root,
            spark={"catalog": "derby", "metastore_dir": root / "metastore", "warehouse_dir": str(root / "warehouse")},
        )
        spark = build_spark(own, app_name="fraudlake-class-archive")
        spark.sql("CREATE SCHEMA IF NOT EXISTS warmup")
        spark.range(100).selectExpr("id", "id % 7 AS k").write.format("delta").saveAsTable("warmup.t")
        spark.sql("SELECT k, count(*) FROM warmup.t GROUP BY k").collect()
        query = (
            spark.readStream.format("delta")
            .table("warmup.t")
            .groupBy("k")
            .count()
            .writeStream.format("delta")
            .outputMode("complete")
            .option("checkpointLocation", str(root / "checkpoint"))
            .trigger(availableNow=True)
            .start(str(root / "counts"))
        )
        query.awaitTermination()
        _stop_jvm(spark)


def _stop_jvm(spark) -> None:
    """Stop Spark and wait for its JVM to exit: it writes the archive on the way out."""
    from pyspark import SparkContext

    gateway = SparkContext._gateway
    spark.stop()
    process = getattr(gateway, "proc", None)
    if process is None:
        return
    gateway.shutdown()
    process.stdin.close()  # the gateway server exits when its stdin closes
    process.wait(timeout=300)


def main(argv: list[str] | None = None) -> int:
    from lakehouse.platform.entrypoint import configure_logging, exit_on_error
    from lakehouse.settings import load_settings

    parser = argparse.ArgumentParser(prog="python -m lakehouse.platform.class_archive", description=__doc__)
    parser.add_argument("--env", default=None, help="config environment (local, test, cluster)")
    parser.add_argument("--workload", action="store_true", help=argparse.SUPPRESS)  # the child of make()
    args = parser.parse_args(argv)
    configure_logging()
    with exit_on_error():
        settings = load_settings(args.env)
        if args.workload:
            _workload(settings)
        else:
            print(f"class-data archive: {make(settings)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
