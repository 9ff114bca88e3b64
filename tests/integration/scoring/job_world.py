"""The scorer crash test's world, built in one process of its own: the topics drained into bronze
and silver (as ``jobs.stream_ingest --once``) and the offline features built (as
``jobs.build_features``), in the embedded catalog under the job's data folder, which the scorer
jobs then open. One Spark driver for both steps instead of one per job.

Run: ``python -m tests.integration.scoring.job_world --env test`` with the job's FRAUDLAKE_*
variables.
"""

from __future__ import annotations

import argparse
import sys

from lakehouse.features.materialize import build_features
from lakehouse.ingest.queries import run_ingest
from lakehouse.platform.entrypoint import configure_logging, exit_on_error
from lakehouse.platform.spark import build_spark
from lakehouse.settings import load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.integration.scoring.job_world")
    parser.add_argument("--env", default=None, help="config environment")
    args = parser.parse_args(argv)
    configure_logging()
    with exit_on_error():
        settings = load_settings(args.env)
        spark = build_spark(settings, app_name="fraudlake-job-world")
        run_ingest(spark, settings, once=True)
        build_features(spark, settings)
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
