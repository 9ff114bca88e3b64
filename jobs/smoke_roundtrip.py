"""Platform smoke round trip (Kafka ↔ kafka-python ↔ Spark ↔ Delta). Run: ``fraudlake smoke``."""

from __future__ import annotations

import argparse
import shutil
import sys
import uuid

from lakehouse.operations.smoke import run_smoke
from lakehouse.platform.entrypoint import configure_logging, exit_on_error, private_files
from lakehouse.platform.spark import build_spark
from lakehouse.settings import load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.smoke_roundtrip", description=__doc__)
    parser.add_argument("--env", default=None, help="config environment (local, test, cluster)")
    parser.add_argument("--count", type=int, default=100, help="records to send through")
    args = parser.parse_args(argv)
    configure_logging()
    private_files()
    with exit_on_error():
        settings = load_settings(args.env)
        table = f"{settings.paths.data_dir}/smoke/{uuid.uuid4().hex[:12]}"
        spark = None

        def spark_factory():
            nonlocal spark
            spark = build_spark(settings, app_name="fraudlake-smoke")
            return spark

        try:
            report = run_smoke(settings, spark_factory, table, count=args.count)
        finally:
            if spark is not None:
                spark.stop()
            shutil.rmtree(table, ignore_errors=True)
        print(
            f"smoke {'OK' if report.ok else 'FAILED'}: {report.produced} produced, {report.consumed} consumed "
            f"(kafka-python), {report.spark_read} read by Spark into Delta; time travel: version 0 has "
            f"{report.delta_rows_at_version_0} rows, version {report.delta_version} has {report.delta_rows_now}"
        )
        return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
