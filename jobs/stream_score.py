"""The real-time scorer. Run: ``fraudlake stream score [--once]``.

Continuous by default (the ``score`` query on its configured trigger) until Ctrl-C or SIGTERM,
which stop the query between micro-batches; ``--once`` scores what the topic holds now and exits.
"""

from __future__ import annotations

import argparse
import logging
import sys

from lakehouse.features.warm import STARTS
from lakehouse.platform.entrypoint import configure_logging, exit_on_error, private_files
from lakehouse.platform.spark import build_spark
from lakehouse.settings import load_settings

log = logging.getLogger("jobs.stream_score")


def main(argv: list[str] | None = None) -> int:
    from lakehouse.platform import faults
    from lakehouse.platform.streaming import supervise
    from lakehouse.scoring.processor import FAULT_STEPS
    from lakehouse.scoring.scorer import start_scorer

    parser = argparse.ArgumentParser(prog="python -m jobs.stream_score", description=__doc__)
    parser.add_argument("--env", default=None, help="config environment (local, test, cluster)")
    parser.add_argument("--once", action="store_true", help="score what the topic holds now, then exit (availableNow)")
    parser.add_argument(
        "--starting-offsets",
        default="silver",
        choices=STARTS,
        help="where a new scorer starts: silver (default: a warm start, user history from silver, scoring from "
        "where silver ends), earliest (the whole topic; history from it alone) or latest",
    )
    args = parser.parse_args(argv)
    configure_logging()
    private_files()
    with exit_on_error():
        settings = load_settings(args.env)
        faults.arm(FAULT_STEPS)  # before Spark starts: its JVM and workers inherit it
        spark = build_spark(settings, app_name="fraudlake-score")
        queries = start_scorer(spark, settings, once=args.once, starting_offsets=args.starting_offsets)
        if args.once:
            for query in queries:
                query.awaitTermination()
            failed = [query for query in queries if query.exception() is not None]
        else:
            log.info(
                "scorer running: %s → %s and %s (Ctrl-C or SIGTERM stops)",
                settings.kafka.topics.transactions.name,
                settings.kafka.topics.alerts.name,
                settings.kafka.topics.scored.name,
            )
            failed = supervise(queries)
        for query in failed:
            log.error("the scorer's %s query failed: %s", query.name, query.exception())
        return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
