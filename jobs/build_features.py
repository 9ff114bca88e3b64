"""Offline features: silver → gold.merchant_daily and gold.transaction_features.
Run: ``fraudlake features build [--since YYYY-MM-DD]``.

Deterministic and idempotent (one pinned silver version per run): the retraining DAG calls it
for its data interval, and a rerun writes the same rows.
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import date

from lakehouse.features.materialize import build_features
from lakehouse.platform.entrypoint import configure_logging, exit_on_error, private_files
from lakehouse.platform.spark import build_spark
from lakehouse.settings import load_settings

log = logging.getLogger("jobs.build_features")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.build_features", description=__doc__)
    parser.add_argument("--env", default=None, help="config environment (local, test, cluster)")
    parser.add_argument(
        "--since", type=date.fromisoformat, default=None, help="recompute event days from this date on (default: all)"
    )
    args = parser.parse_args(argv)
    configure_logging()
    private_files()
    with exit_on_error():
        settings = load_settings(args.env)
        report = build_features(build_spark(settings, app_name="fraudlake-features"), settings, since=args.since)
        print(
            f"features: {report.rows:,} transactions (silver version {report.silver_version}) → "
            f"{settings.lakehouse.schemas.gold}.transaction_features version {report.features_version}"
        )
        return 0


if __name__ == "__main__":
    sys.exit(main())
