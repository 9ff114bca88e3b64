"""The page of ``fraudlake bench score`` (:mod:`lakehouse.benchmarks.scoring` measures, this module
writes): throughput, latency at each rate and where a scorer micro-batch's time goes, each next to
the pass-through."""

from __future__ import annotations

import json
import statistics
from dataclasses import asdict
from pathlib import Path

from lakehouse.benchmarks.report import Report, machine_description
from lakehouse.benchmarks.scoring import DRAIN_S, PASSTHROUGH, PIPELINE, WARMUP_S, LatencyRun, ScoreBench
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
            "the scorer": "Kafka → parse and validate → online features (stateful, RocksDB) → table features → GBT"
            " model → reasons → alerts to Kafka and rows to Delta",
            "the pass-through": "Kafka → Kafka, records as they are (the engine's floor)",
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
                *(f"{run.percentile(q):,.0f}" for q in (50, 95, 99)),
            )
            for run in bench.latency
        ],
        align="rlrrrr",
    )
    verdicts = []
    for rate in sorted(rates):
        pair = {r.pipeline: r for r in bench.latency if r.rate == rate}
        if len(pair) == 2:
            p99 = pair[PIPELINE].percentile(99) / pair[PASSTHROUGH].percentile(99)
            verdicts.append(
                f"- at {rate:,.0f}/s: scorer p99 / pass-through p99 = **{p99:.2f}x** (goal: at most 2x:"
                f" {'met' if p99 <= 2 else 'not met'})"
            )
    if verdicts:
        report.text(*verdicts)

    report.section("Where a scorer micro-batch's time goes (latency runs, median over batches after the first two)")
    rows = []
    for rate, batches in bench.batches.items():
        steady = batches[2:] or batches
        med = {
            k: statistics.median(getattr(b, k) for b in steady) for k in ("rows", "features_s", "alerts_s", "delta_s")
        }
        rows.append(
            (
                f"{rate:,.0f}",
                len(steady),
                f"{med['rows']:,.0f}",
                f"{med['features_s']:.2f}",
                f"{med['alerts_s']:.2f}",
                f"{med['delta_s']:.2f}",
            )
        )
    report.table(
        [
            "rate (tx/s)",
            "batches",
            "rows per batch",
            "Kafka + state + table features + model + reasons s",
            "alerts to Kafka s",
            "Delta commit s",
        ],
        rows,
        align="rrrrrr",
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


def write_score_report(path: Path, bench: ScoreBench, machine: str, settings: Settings, *, duration_s: float) -> str:
    return score_report(bench, settings, duration_s=duration_s, machine=machine).write(path)
