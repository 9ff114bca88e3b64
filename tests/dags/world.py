"""The DAG tests' world, built in its own process (with the world's catalog server, which the
DAG's tasks then share; the test session's Spark has its own catalog): simulated days imported
like outside files (with the label events reported by the last day: labels come from them, as
from a label stream), features built, and a deliberately weak first champion (a one-split tree)
that a properly trained challenger beats.

Run: ``python -m tests.dags.world --out FOLDER --start 2026-10-01`` with the FRAUDLAKE_* variables
of the world (its own data dir).
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

from lakehouse.features.materialize import build_features
from lakehouse.ingest.files import import_files
from lakehouse.ml.training import train
from lakehouse.platform.entrypoint import configure_logging, exit_on_error
from lakehouse.platform.spark import build_spark
from lakehouse.settings import load_settings
from lakehouse.simulator.files import write_offline_batch
from lakehouse.simulator.simulation import Simulation


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.dags.world")
    parser.add_argument("--out", type=Path, required=True, help="folder for the simulator's files")
    parser.add_argument("--start", type=date.fromisoformat, required=True, help="first simulated day")
    args = parser.parse_args(argv)
    configure_logging()
    with exit_on_error():
        settings = load_settings()
        manifest = write_offline_batch(Simulation(settings.simulator, args.start), args.out)
        spark = build_spark(settings, app_name="fraudlake-dag-world")
        import_files(
            spark,
            settings,
            transactions=str(args.out / "transactions.parquet"),
            users=str(args.out / "users.parquet"),
            merchants=str(args.out / "merchants.parquet"),
            labels=str(args.out / "labels.parquet"),
            name="dag_world",
        )
        build_features(spark, settings)
        stump = settings.training.model_copy(
            update={"gbt": settings.training.gbt.model_copy(update={"max_iter": 1, "max_depth": 1})}
        )
        champion = train(spark, settings.model_copy(update={"training": stump}))
        print(
            f"world: {manifest['transactions']} transactions, {manifest['fraud']} fraud; "
            f"champion version {champion.version}"
        )
        spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
