"""The page of ``fraudlake bench score`` (:mod:`lakehouse.benchmarks.scoring` measures, this module
writes): throughput, latency at each rate and where a scorer micro-batch's time goes, each next to
the pass-through."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict
from pathlib import Path

from lakehouse.benchmarks.quix import QUIXSTREAMS
from lakehouse.benchmarks.report import Report, machine_description
from lakehouse.benchmarks.scoring import DRAIN_S, PASSTHROUGH, PIPELINE, QUIX, WARMUP_S, LatencyRun, ScoreBench
from lakehouse.scoring.processor import STEP_NAMES
from lakehouse.scoring.scorer import STEP_METRICS
from lakehouse.settings import QuerySettings, Settings


def score_report(bench: ScoreBench, settings: Settings, *, duration_s: float, machine: str | None = None) -> Report:
    """The page of ``fraudlake bench score``: throughput, latency at each rate and where a scorer
    micro-batch's time goes, each next to the pass-through; the runs' figures as JSON lines next to it."""
    score_query = settings.streaming.queries.get("score", QuerySettings())
    throughput = {name: statistics.median(values) for name, values in bench.throughput.items()}
    ratio = throughput[PIPELINE] / throughput[PASSTHROUGH]
    rates = list(dict.fromkeys(run.rate for run in bench.latency))
    runs = max((len(values) for values in bench.throughput.values()), default=0)
    report = Report(
        "scoring",
        "Scoring: throughput and end-to-end alert latency",
        "fraudlake bench score "
        + "".join(f"--rate {rate:g} " for rate in rates)
        + f"--duration {duration_s:g} --preload {bench.preload} --runs {runs}",
        settings={
            "Spark": f"`{settings.spark.master}`, {settings.spark.shuffle_partitions} shuffle partitions",
            "Kafka": f"the embedded single-node broker on loopback; {settings.kafka.topics.transactions.partitions}"
            " partitions per topic",
            "micro-batches": f"trigger {score_query.trigger or settings.streaming.trigger}; at most"
            f" {score_query.max_records_per_trigger or settings.streaming.max_records_per_trigger:,} records each",
            "the scorer": "Kafka → parse and validate → one stateful step (history in RocksDB, table features from"
            " an in-memory snapshot, the compiled GBT model, reasons) → alerts and scored rows to Kafka; a second"
            " query lands the scored rows in Delta",
            "the pass-through": "Kafka → Kafka, records as they are (the engine's floor)",
            **(
                {
                    "Quix Streams": f"{QUIXSTREAMS} in its own virtualenv and process: one Python callback per"
                    " message runs the scorer's own kernel (the same history step, table features, compiled model,"
                    " reasons and records), the user's history in Quix's RocksDB state (changelog topics on),"
                    " at-least-once, default commit interval; one drain for throughput (it takes minutes)"
                }
                if QUIX in bench.throughput
                else {}
            ),
        },
        machine=machine or machine_description(),
    )

    report.section(
        f"Sustainable throughput (drain {bench.preload:,} preloaded transactions; records / summed batch time;"
        f" median of {runs} runs)"
    )
    report.table(
        ["pipeline", "median records/s", "runs"],
        [
            (name, f"{throughput[name]:,.0f}", ", ".join(f"{v:,.0f}" for v in values))
            for name, values in bench.throughput.items()
        ],
        align="lrl",
    )
    report.text(
        f"Scorer / pass-through: **{ratio:.2f}x** (goal: at least 0.5x: {'met' if ratio >= 0.5 else 'not met'})."
    )
    if QUIX in throughput:
        report.text(
            f"Quix Streams / pass-through: {throughput[QUIX] / throughput[PASSTHROUGH]:.3f}x; the Spark scorer runs"
            f" at {throughput[PIPELINE] / throughput[QUIX]:,.1f}x Quix Streams."
        )
    if bench.parity is not None:
        parity = bench.parity
        report.text(
            f"Same features, same model: on the {parity.compared:,} transactions both scored, Quix Streams' scores"
            f" differ from the Spark scorer's by at most {parity.max_score_diff:.1e}, with {parity.alert_differences}"
            f" different alert decisions; {parity.only_one} transactions scored by one pipeline only"
            f" ({'equal' if parity.equal else 'NOT EQUAL'} within 1e-9)."
        )

    report.section(
        f"End-to-end latency at fixed rates (transaction created → output appended in Kafka; {duration_s:g} s per"
        f" rate, first {WARMUP_S:g} s dropped; every transaction alerts)"
    )

    def behind(run: LatencyRun) -> str:
        if run.received >= run.sent:
            return ""
        return f" (fell behind: {run.received:,} of {run.sent:,} out {DRAIN_S:g} s after the last send)"

    report.table(
        ["rate (tx/s)", "pipeline", "records", "p50 ms", "p95 ms", "p99 ms"],
        [
            (
                f"{run.rate:,.0f}",
                f"{run.pipeline}{behind(run)}",
                f"{len(run.samples_ms):,}",
                *(f"{run.percentile(q):,.0f}" if run.samples_ms else "none after the warm-up" for q in (50, 95, 99)),
            )
            for run in bench.latency
        ],
        align="rlrrrr",
    )
    verdicts = []
    for rate in sorted(rates):
        pair = {r.pipeline: r for r in bench.latency if r.rate == rate}
        if PIPELINE in pair and PASSTHROUGH in pair:
            floor = pair[PASSTHROUGH].percentile(99)
            p99 = pair[PIPELINE].percentile(99) / floor
            quix = ""
            if QUIX in pair and pair[QUIX].samples_ms:
                quix = f"; Quix Streams p99 / pass-through p99 = {pair[QUIX].percentile(99) / floor:.2f}x"
            verdicts.append(
                f"- at {rate:,.0f}/s: scorer p99 / pass-through p99 = **{p99:.2f}x** (goal: at most 2x:"
                f" {'met' if p99 <= 2 else 'not met'}){quix}"
            )
    if verdicts:
        report.text(*verdicts)

    report.section("Where a scorer micro-batch's time goes (latency runs, median over batches after the first two)")
    report.text(
        "From the query's progress: *source* (offsets and planning), *append* (the one Kafka append, which runs the"
        " stateful step), *commit* (offset log and commit log). Inside the append, summed over its tasks: *state*"
        " (history from the state store, lateness, duplicates), *features* (table features from the snapshot),"
        " *model* (the compiled champion), *reasons*, *records* (the JSON records). *store commit*: the state"
        " store's own commit (RocksDB), summed over its tasks, from the query's state operator metrics. State rows"
        " written (one per user of the batch, and the partitions' clocks) and the store's bytes after the batch; the"
        " store's total row count is not tracked (it costs a read before every write: see `bench state` for it)."
    )
    rows = []
    for rate, batches in bench.batches.items():
        steady = batches[2:] or batches
        progress = [p for p in bench.progress.get(rate, []) if p["numInputRows"]][2:]

        def med(values) -> float:
            values = list(values)
            return statistics.median(values) if values else float("nan")

        def duration(p: dict, *keys: str) -> float:
            return sum(p["durationMs"].get(k, 0) for k in keys) / 1000

        def store_commit(p: dict) -> float:
            return sum(o.get("commitTimeMs", 0) for o in p.get("stateOperators", [])) / 1000

        state = [p["stateOperators"][0] for p in progress if p.get("stateOperators")]
        steps = [_as_dict(p.get("observedMetrics", {}).get(STEP_METRICS, {})) for p in progress]
        rows.append(
            (
                f"{rate:,.0f}",
                len(progress),
                f"{med(p['numInputRows'] for p in progress):,.0f}",
                f"{med(duration(p, 'latestOffset', 'getBatch', 'queryPlanning') for p in progress):.2f}",
                f"{med(b.append_s for b in steady):.2f}",
                *(f"{med(s.get(k, 0.0) for s in steps):.3f}" for k in STEP_NAMES),
                f"{med(store_commit(p) for p in progress):.3f}",
                f"{med(duration(p, 'walCommit', 'commitOffsets') for p in progress):.2f}",
                f"{med(s['numRowsUpdated'] for s in state):,.0f}",
                f"{med(s['memoryUsedBytes'] for s in state) / 1e6:,.1f}",
            )
        )
    report.table(
        [
            "rate (tx/s)",
            "batches",
            "rows per batch",
            "source s",
            "append s",
            *(f"{k} s" for k in STEP_NAMES),
            "store commit s",
            "commit s",
            "state rows written",
            "state MB",
        ],
        rows,
        align="r" * (9 + len(STEP_NAMES)),
    )
    if bench.quix_figures and bench.quix_figures.get("processed"):
        figures = bench.quix_figures
        per_event = {k: v / figures["processed"] * 1000 for k, v in figures["steps"].items()}
        total = figures["seconds"] / figures["processed"] * 1000
        engine = total - sum(per_event.values())
        report.text(
            f"Where a Quix Streams event's time goes (its throughput run, ms per event): {total:.2f} in all; "
            + ", ".join(f"{k} {v:.2f}" for k, v in per_event.items())
            + f"; Quix itself (deserialising, state get/set, producing, committing) {engine:.2f}."
            " The kernel is vectorised for micro-batches: one event per call pays its fixed cost per event."
        )
    report.text("Set-up (not measured above): " + ", ".join(f"{k} {v:,.0f} s" for k, v in bench.setup.items()) + ".")

    raw = [
        {
            **asdict(run),
            "samples_ms": None,
            "p50": run.percentile(50),
            "p95": run.percentile(95),
            "p99": run.percentile(99),
        }
        for run in bench.latency
    ]
    raw.append({"throughput": bench.throughput})
    return report.attach(".jsonl", "".join(json.dumps(line) + "\n" for line in raw))


def _as_dict(metrics) -> dict:
    """Observed metrics come as a Row (a dict once the progress went through JSON)."""
    return metrics.asDict() if hasattr(metrics, "asDict") else dict(metrics)


def write_score_report(path: Path, bench: ScoreBench, machine: str, settings: Settings, *, duration_s: float) -> str:
    return score_report(bench, settings, duration_s=duration_s, machine=machine).write(path)
