"""The engine's floor beside the real jobs: a Spark Kafka → Kafka copy of the transaction topic
(:func:`lakehouse.platform.kafka.floor.start_passthrough`) with the scorer's trigger and batch
size, from the latest offsets, until SIGTERM. ``make demo`` runs it next to the ingest and scoring
jobs, so the live alert latency it reports stands next to the floor's, measured at the same time on
the same machine. Run: ``python -m jobs.stream_passthrough --target TOPIC --checkpoint DIR``.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys

from lakehouse.platform.entrypoint import configure_logging, exit_on_error, private_files
from lakehouse.platform.spark import build_spark
from lakehouse.settings import load_settings

log = logging.getLogger("jobs.stream_passthrough")


def main(argv: list[str] | None = None) -> int:
    from lakehouse.contract.queries import SCORE_QUERY
    from lakehouse.platform.kafka.floor import start_passthrough
    from lakehouse.platform.streaming import query_plan, supervise

    parser = argparse.ArgumentParser(prog="python -m jobs.stream_passthrough", description=__doc__)
    parser.add_argument("--env", default=None, help="config environment (local, test, cluster)")
    parser.add_argument("--target", required=True, help="topic the copies go to (LogAppendTime, for latency)")
    parser.add_argument("--checkpoint", required=True, help="the query's checkpoint (a new one: it starts at latest)")
    args = parser.parse_args(argv)
    configure_logging()
    private_files()
    with exit_on_error():
        settings = load_settings(args.env)
        spark = build_spark(settings, app_name="fraudlake-passthrough")
        plan = dataclasses.replace(query_plan(settings, SCORE_QUERY), name="passthrough", checkpoint=args.checkpoint)
        source = settings.kafka.topics.transactions.name
        query = start_passthrough(
            spark, settings, source=source, target=args.target, plan=plan, starting_offsets="latest"
        )
        log.info("pass-through running: %s → %s (SIGTERM stops)", source, args.target)
        failed = supervise([query])
        for query in failed:
            log.error("the pass-through failed: %s", query.exception())
        return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
