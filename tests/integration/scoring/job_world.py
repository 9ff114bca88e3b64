"""The scorer crash test's world in the job's own catalog: shallow clones (Delta ``SHALLOW CLONE``:
the new table's log points at the source's data files, nothing is copied) of the module world's
silver tables, offline features and merchant daily counts, which the session built already. The
scorer jobs then open them under the job's data folder, and whatever they write goes to the
clones' own logs, never to the module's tables. One short Spark driver instead of a second ingest
and features build.

Run: ``python -m tests.integration.scoring.job_world --env test --clone NAME=LOCATION ...`` with the
job's FRAUDLAKE_* variables.
"""

from __future__ import annotations

import argparse
import sys

from lakehouse.platform.entrypoint import configure_logging, exit_on_error
from lakehouse.platform.spark import build_spark
from lakehouse.settings import load_settings


def history_clones(spark, settings) -> list[str]:
    """The ``--clone`` arguments of a world's history, as the test session's catalog holds it: its
    silver tables, offline features and merchant daily counts (the scorer's dimensions, history
    and features)."""
    from lakehouse.contract.tables import table_names
    from lakehouse.platform.delta import table_location

    names = table_names(settings)
    silver = [
        f"{names.silver_schema}.{t.name}"
        for t in spark.catalog.listTables(names.silver_schema)
        if t.tableType != "VIEW"
    ]
    return [f"--clone={n}={table_location(spark, n)}" for n in [*silver, names.features, names.merchant_daily]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.integration.scoring.job_world")
    parser.add_argument("--env", default=None, help="config environment")
    parser.add_argument("--clone", action="append", default=[], help="NAME=LOCATION of a Delta table to clone")
    args = parser.parse_args(argv)
    configure_logging()
    with exit_on_error():
        settings = load_settings(args.env)
        spark = build_spark(settings, app_name="fraudlake-job-world")
        for pair in args.clone:
            name, _, location = pair.partition("=")
            spark.sql(f"CREATE SCHEMA IF NOT EXISTS {name.rpartition('.')[0]}")
            spark.sql(f"CREATE TABLE {name} SHALLOW CLONE delta.`{location}`")
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
