"""Kafka → bronze → silver ingest. Run: ``fraudlake stream ingest [--once]``.

Continuous by default (each query on its configured trigger) until Ctrl-C or SIGTERM, which stop
the queries between micro-batches; a query that fails is restarted alone from its checkpoint,
with a back-off, while the others run on. ``--once`` drains what the topics hold now and exits
(backfills, tests).
"""

from __future__ import annotations

import argparse
import logging
import sys

from lakehouse.ingest.queries import FAULT_STEPS, ensure_ingest_topics, ingest_restarter, run_ingest
from lakehouse.platform import faults
from lakehouse.platform.entrypoint import configure_logging, exit_on_error, private_files
from lakehouse.platform.spark import build_spark
from lakehouse.platform.streaming import supervise
from lakehouse.settings import load_settings

log = logging.getLogger("jobs.stream_ingest")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobs.stream_ingest", description=__doc__)
    parser.add_argument("--env", default=None, help="config environment (local, test, cluster)")
    parser.add_argument("--once", action="store_true", help="drain what is there now, then exit (availableNow)")
    args = parser.parse_args(argv)
    configure_logging()
    private_files()
    with exit_on_error():
        settings = load_settings(args.env)
        faults.arm(FAULT_STEPS)  # before Spark starts: its JVM inherits the job's process group
        ensure_ingest_topics(settings)
        spark = build_spark(settings, app_name="fraudlake-ingest")
        queries = run_ingest(spark, settings, once=args.once)
        if args.once:
            log.info("ingest drained: %s", ", ".join(q.name for q in queries))
            return 0

        log.info("ingest running: %s (Ctrl-C or SIGTERM stops)", ", ".join(q.name for q in queries))
        # A failed query (a broker outage, a concurrent writer) is restarted alone, the others run on.
        failed = supervise(queries, restart=ingest_restarter(spark, settings))
        for query in failed:
            log.error("query %s failed: %s", query.name, query.exception())
        return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
