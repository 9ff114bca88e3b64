"""The scorer written in Quix Streams: the third pipeline of ``fraudlake bench score``.

Quix Streams is the stream processor a Python team would pick instead of Spark: a Kafka consumer
group with per-key state in RocksDB (backed by changelog topics) and one Python callback per
message. This app runs the product's own per-event code in it
(:class:`lakehouse.scoring.event.EventScorer`), the history kept in Quix's state under the message
key (the user, as the producer keys), so the benchmark compares engines and not feature code.

It emits what the Spark scorer emits: a scored-row record per transaction and an alert record per
alert. Differences, because this is a benchmark's comparator and not a product path: it is
at-least-once (Quix's default; its exactly-once mode makes outputs visible only at each commit),
the lateness clock lives in process memory, and a record that is not a valid transaction is
counted and skipped rather than quarantined.

It runs in its own virtualenv (:mod:`lakehouse.benchmarks.quix`: quixstreams pins confluent-kafka
and pydantic below the product's), as ``python -m lakehouse.benchmarks.quix_app CONFIG.json``, and
imports nothing but the numpy/pandas kernel: no Spark. On SIGTERM, or after ``stop_after`` input
messages, it stops and writes its figures to ``CONFIG["result"]``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

from lakehouse.scoring.event import EventScorer, Record


def run(config: dict[str, Any]) -> dict[str, Any]:
    """Run the Quix app until SIGTERM or ``stop_after`` input messages; returns its figures."""
    from quixstreams import Application, message_context
    from quixstreams.models.serializers import Serializer

    class RecordValue(Serializer):
        """A record of :meth:`EventScorer.__call__` → its ready JSON value."""

        def __call__(self, value, ctx) -> bytes:
            return value[2].encode()

    scorer = EventScorer(**config["scorer"])
    figures: dict[str, Any] = {"processed": 0, "first_s": None}
    stop_after = int(config.get("stop_after") or 0)

    def processed(topic: str, partition: int, offset: int) -> None:
        figures["processed"] += 1
        if stop_after and figures["processed"] >= stop_after:
            app.stop()

    app = Application(
        broker_address=config["bootstrap_servers"],
        consumer_group=config["consumer_group"],
        auto_offset_reset="earliest",
        state_dir=config["state_dir"],
        on_message_processed=processed,
        loglevel="WARNING",
    )
    source = app.topic(config["source"], value_deserializer="json", key_deserializer="str")
    outputs = {
        name: app.topic(name, value_serializer=RecordValue(), key_serializer="str")
        for name in (config["scorer"]["scored_topic"], config["scorer"]["alerts_topic"])
    }

    def step(value, key, timestamp, headers, state) -> list[Record]:
        if figures["first_s"] is None:
            figures["first_s"] = time.perf_counter()
        context = message_context()
        records, history = scorer(
            value, state.get("history"), partition=context.partition, offset=context.offset, timestamp_ms=timestamp
        )
        if history is not None:
            state.set("history", history)
        return records

    sdf = app.dataframe(source).apply(step, stateful=True, expand=True, metadata=True)
    sdf.to_topic(lambda value, key, timestamp, headers: outputs[value[0]], key=lambda value: value[1])
    app.run()
    ended = time.perf_counter()
    figures["seconds"] = None if figures["first_s"] is None else ended - figures["first_s"]
    figures["skipped"] = scorer.skipped
    figures["steps"] = scorer.timings
    del figures["first_s"]
    return figures


def main(argv: list[str]) -> int:
    config = json.loads(Path(argv[0]).read_text())
    figures = run(config)
    Path(config["result"]).write_text(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
