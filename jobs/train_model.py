"""Train a challenger on gold.transaction_features, evaluate it, register it, promote it if better.
Run: ``fraudlake train [--from D] [--to D] [--algorithm gbt] [--no-promote]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import date

from lakehouse.ml.training import TrainResult, train
from lakehouse.platform.entrypoint import configure_logging, exit_on_error, private_files
from lakehouse.platform.spark import build_spark
from lakehouse.settings import load_settings

log = logging.getLogger("jobs.train_model")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.train_model", description=__doc__)
    parser.add_argument("--env", default=None, help="config environment (local, test, cluster)")
    parser.add_argument(
        "--from", dest="date_from", type=date.fromisoformat, default=None, help="first event day (default: all)"
    )
    parser.add_argument(
        "--to", dest="date_to", type=date.fromisoformat, default=None, help="last event day (default: all)"
    )
    parser.add_argument("--algorithm", choices=["gbt", "random_forest", "logistic_regression"], default=None)
    parser.add_argument("--no-promote", action="store_true", help="register only; leave the champion as it is")
    parser.add_argument("--json", action="store_true", help="print the result as one JSON object")
    args = parser.parse_args(argv)
    configure_logging()
    private_files()
    with exit_on_error():
        settings = load_settings(args.env)
        spark = build_spark(settings, app_name="fraudlake-train")
        result = train(
            spark,
            settings,
            date_from=args.date_from,
            date_to=args.date_to,
            algorithm=args.algorithm,
            promote=not args.no_promote,
        )
        print_result(result, as_json=args.json)
        return 0


def print_result(result: TrainResult, *, as_json: bool = False) -> None:
    """The training's outcome on stdout: one JSON object, or lines for a person."""
    summary = {
        "version": result.version,
        "split": result.split.describe(),
        "rows_train": result.rows_train,
        "evaluation": result.evaluation.as_dict(),
        "baselines_average_precision": result.baselines,
        "table_versions": result.table_versions,
        "report": str(result.report_path),
        "promoted": result.promotion.promoted if result.promotion else False,
        "promotion": result.promotion.reason if result.promotion else "not attempted (--no-promote)",
    }
    if as_json:
        print(json.dumps(summary, default=str))
    else:
        e = result.evaluation
        print(f"model version {result.version}: {result.split.describe()}, {result.rows_train:,} training rows")
        print(f"  average precision {e.average_precision:.4f}  ROC AUC {e.roc_auc:.4f}  threshold {e.threshold:.4f}")
        print(
            f"  precision {e.precision:.3f}  recall {e.recall:.3f}  daily top-k precision "
            f"{e.daily_top_k_precision:.3f}  amount recall {e.amount_recall:.3f}"
        )
        for name, ap in result.baselines.items():
            print(f"  baseline {name}: average precision {ap:.4f}")
        print(f"  {summary['promotion']}")
        print(f"  training report: {result.report_path}")


if __name__ == "__main__":
    sys.exit(main())
