"""`fraudlake bench ingest`: ingest (Kafka → bronze → silver, quarantine included) against the
engine's floors, in one run, on the same preloaded records.

The records are the simulator's transactions with the users and merchants they need (and the
label events it emits), with 1% bad records of every kind (:mod:`lakehouse.simulator.bad_records`),
preloaded once into the benchmark's own topics. Each run then drains all of them three ways, in
turn, each from a fresh checkpoint and into fresh tables, with the same batch size and the same
``availableNow`` trigger:

- **Kafka → Delta append** (the floor for landing data): one query appends the records as Spark
  reads them to one Delta table, nothing else;
- **Kafka → Kafka pass-through** (the floor the scorer is judged against): one query copies them
  to another topic;
- **ingest**: :func:`lakehouse.ingest.queries.run_ingest`, exactly as ``fraudlake ingest
  --once`` runs it; afterwards ``reconcile`` must be OK, or the benchmark fails.

A pipeline's drain time is the time during which at least one of its micro-batches was executing
(:func:`lakehouse.platform.measure.busy_seconds`): query start-up and idle gaps are left out, the
same way for all three. Throughput = records / drain time; each figure is the median of the runs.
"""

from __future__ import annotations

import os
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from lakehouse.benchmarks.delta_commits import CommitCost, commit_cost, commits_section, data_commits
from lakehouse.benchmarks.ingest_flat import BAD_RATE, PROGRESS_KEPT, FlatRun, flat_section
from lakehouse.benchmarks.report import Report, machine_description
from lakehouse.contract.tables import STREAMS
from lakehouse.ingest.queries import SilverTimings
from lakehouse.platform.measure import busy_seconds
from lakehouse.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

INGEST, DELTA_FLOOR, KAFKA_FLOOR = "ingest → bronze, silver", "Kafka → Delta append", "Kafka → Kafka pass-through"
PIPELINES = (DELTA_FLOOR, KAFKA_FLOOR, INGEST)
GOAL = 0.5  # ingest at least half the Kafka → Delta floor
DURATION_KEYS = ("latestOffset", "getBatch", "queryPlanning", "addBatch", "walCommit", "commitOffsets")


@dataclass
class Drain:
    records: int
    busy_s: float
    wall_s: float
    batches: int

    @property
    def rate(self) -> float:
        return self.records / self.busy_s if self.busy_s else float("nan")


@dataclass
class IngestBench:
    transactions: int
    records: dict[str, int] = field(default_factory=dict)  # stream → records preloaded
    bad: int = 0
    drains: dict[str, list[Drain]] = field(default_factory=dict)
    silver_steps: list[SilverTimings] = field(default_factory=list)  # the ingest runs' silver batches
    progress: dict[str, list[dict]] = field(default_factory=dict)  # ingest query → its batches (last run)
    flat: FlatRun | None = None  # the compressed month (lakehouse.benchmarks.ingest_flat)
    commits: dict[str, dict[str, int]] = field(default_factory=dict)  # pipeline → table → commits (last run)
    commit_cost: CommitCost | None = None  # one append, plain and idempotent (same run)

    def median_rate(self, pipeline: str) -> float:
        return statistics.median(d.rate for d in self.drains[pipeline])

    @property
    def total(self) -> int:
        return sum(self.records.values())


def bench_ingest(
    spark: SparkSession,
    settings: Settings,
    *,
    folder: Path,
    transactions: int,
    runs: int,
    on_progress: Callable[[str], None] = print,
) -> IngestBench:
    from lakehouse.benchmarks.training import bench_world
    from lakehouse.ingest.queries import run_ingest
    from lakehouse.ingest.reconcile import reconcile
    from lakehouse.platform.isolation import drop_schemas, isolated
    from lakehouse.platform.kafka.floor import start_delta_append, start_passthrough
    from lakehouse.platform.kafka.topics import delete_topics, ensure_topics, offset_ranges
    from lakehouse.platform.streaming import QueryPlan, query_plan, raise_if_failed

    world = bench_world(
        settings,
        folder,
        topics=True,
        checkpoint_dir=folder / "checkpoints",
        simulator={"transactions": transactions, "users": max(200, transactions // 50), "days": 30},
    )
    topics = [getattr(world.kafka.topics, stream).name for stream in STREAMS]
    source = ",".join(topics)
    max_records = query_plan(world, "bench", once=True).max_records
    bench = IngestBench(transactions)
    created = list(topics)
    spark.conf.set("spark.sql.streaming.numRecentProgressUpdates", str(PROGRESS_KEPT))

    def plan(name: str) -> QueryPlan:
        return QueryPlan(name, "availableNow", str(folder / "checkpoints" / uuid.uuid4().hex), max_records)

    def drain_floor(pipeline: str, last: bool) -> tuple[list, float]:
        began = time.perf_counter()
        path = str(folder / "floor" / uuid.uuid4().hex)
        if pipeline == DELTA_FLOOR:
            query = start_delta_append(spark, world, source=source, path=path, plan=plan("bench_delta"))
        else:
            target = f"bench_ingest_copy_{uuid.uuid4().hex[:10]}"
            ensure_topics(world.kafka, [world.kafka.topics.transactions.model_copy(update={"name": target})])
            created.append(target)
            query = start_passthrough(spark, world, source=source, target=target, plan=plan("bench_kafka"))
        query.awaitTermination()
        raise_if_failed(query)
        wall = time.perf_counter() - began
        if last:
            bench.commits[pipeline] = (
                {"the table": data_commits(spark, f"delta.`{path}`")} if pipeline == DELTA_FLOOR else {}
            )
        return list(query.recentProgress), wall

    def drain_ingest(last: bool) -> tuple[list, float]:
        run = isolated(world, schema_prefix="bench_", checkpoint_dir=folder / "checkpoints" / uuid.uuid4().hex)
        try:
            began = time.perf_counter()
            queries = run_ingest(spark, run, once=True, on_batch=bench.silver_steps.append)
            wall = time.perf_counter() - began
            bench.progress = {q.name: list(q.recentProgress) for q in queries}
            failed = [r for r in reconcile(spark, run) if not r.ok]
            if failed:
                raise RuntimeError(f"ingest lost or doubled records: {failed}")
            if last:
                bench.commits[INGEST] = ingest_commits(spark, run)
            return [p for q in bench.progress.values() for p in q], wall
        finally:
            drop_schemas(spark, run)

    try:
        ensure_topics(world.kafka)
        bench.bad = _preload(world, on_progress)
        ranges = offset_ranges(world.kafka, *topics)
        bench.records = {
            stream: sum(end - first for first, end in ranges.get(topic, {}).values())
            for stream, topic in zip(STREAMS, topics, strict=True)
        }
        on_progress(f"preloaded {bench.total:,} records: {bench.records}, {bench.bad:,} of them bad")
        for run in range(runs):
            for pipeline in PIPELINES:
                last = run == runs - 1
                progress, wall = drain_ingest(last) if pipeline == INGEST else drain_floor(pipeline, last)
                drain = Drain(bench.total, busy_seconds(progress), wall, sum(1 for p in progress if p["numInputRows"]))
                bench.drains.setdefault(pipeline, []).append(drain)
                on_progress(
                    f"run {run + 1} {pipeline}: {drain.records:,} records, {drain.busy_s:,.1f} s busy"
                    f" ({drain.wall_s:,.1f} s wall) = {drain.rate:,.0f}/s"
                )
        bench.commit_cost = commit_cost(spark, folder)
    finally:
        for active in spark.streams.active:
            active.stop()
        delete_topics(world.kafka, created)
        drop_schemas(spark, world)
    return bench


def ingest_commits(spark: SparkSession, run: Settings) -> dict[str, int]:
    """The commits an ingest run left in each table it writes."""
    from lakehouse.contract.tables import table_names

    names = table_names(run)
    tables = {
        **{f"bronze {stream}": names.bronze(stream) for stream in STREAMS},
        **{f"silver {stream}": names.accepted(stream) for stream in STREAMS},
        "quarantine": names.quarantine,
        "progress": names.progress,
    }
    return {label: data_commits(spark, name) for label, name in tables.items()}


def _preload(world: Settings, on_progress: Callable[[str], None]) -> int:
    """Send the benchmark's records once (delivery confirmed); returns how many are bad."""
    from lakehouse.platform.kafka.senders import make_sender
    from lakehouse.simulator.producer import ProduceLimits, produce
    from lakehouse.simulator.simulation import Simulation, start_before

    sim = world.simulator
    on_progress(f"preloading {sim.transactions:,} transactions with {BAD_RATE:.0%} bad records")
    sender = make_sender(world.kafka, world.producer)
    try:
        start = start_before(sim, date.today(), 0)
        report = produce(
            world, Simulation(sim, start, traffic_seed=303), sender, ProduceLimits(count=sim.transactions),
            first_day=0, bad_rate=BAD_RATE,
        )  # fmt: skip
    finally:
        sender.close()
    if report.failed or report.caught_up:
        raise RuntimeError(f"the benchmark producer lost records or reached the wall clock: {report}")
    return report.bad


def ingest_report(bench: IngestBench, settings: Settings, machine: str | None = None) -> Report:
    """The page of ``fraudlake bench ingest``: the three drains, the ratios and the goal, then
    where an ingest batch's time goes."""
    rates = {pipeline: bench.median_rate(pipeline) for pipeline in PIPELINES}
    to_delta, to_kafka = rates[INGEST] / rates[DELTA_FLOOR], rates[INGEST] / rates[KAFKA_FLOOR]
    runs = len(bench.drains[INGEST])
    report = Report(
        "ingest",
        "Ingest: Kafka → bronze → silver against the engine's floors",
        f"fraudlake bench ingest --transactions {bench.transactions} --runs {runs}"
        + (f" --days {f.days} --per-day {f.per_day} --rate {f.rate:g}" if (f := bench.flat) else " --days 0"),
        settings={
            "records": f"{bench.total:,} preloaded once ("
            + ", ".join(f"{n:,} {stream}" for stream, n in bench.records.items())
            + f"), {bench.bad:,} of them bad ({BAD_RATE:.0%} of every kind: malformed, missing and out-of-range"
            " fields, duplicates, late and out-of-order events, ...)",
            "Spark": f"`{settings.spark.master}`, {settings.spark.shuffle_partitions} shuffle partitions",
            "Kafka": "the embedded single-node broker on loopback; "
            + ", ".join(f"{getattr(settings.kafka.topics, s).partitions} partitions for {s}" for s in STREAMS),
            "micro-batches": f"availableNow, at most {settings.streaming.max_records_per_trigger:,} records each,"
            " a fresh checkpoint and fresh tables every run",
            "drain time": "the time during which at least one of the pipeline's micro-batches was executing"
            " (query start-up and idle gaps left out, the same for all three)",
        },
        machine=machine or machine_description(),
    )
    report.section(f"Drain throughput (median of {runs} runs, interleaved)")
    report.table(
        ["pipeline", "records/s", "drain s", "wall s", "batches", "runs (records/s)"],
        [
            (
                pipeline,
                f"{rates[pipeline]:,.0f}",
                f"{statistics.median(d.busy_s for d in bench.drains[pipeline]):,.1f}",
                f"{statistics.median(d.wall_s for d in bench.drains[pipeline]):,.1f}",
                f"{statistics.median(d.batches for d in bench.drains[pipeline]):,.0f}",
                ", ".join(f"{d.rate:,.0f}" for d in bench.drains[pipeline]),
            )
            for pipeline in PIPELINES
        ],
        "lrrrrl",
    )
    verdict = "met" if to_delta >= GOAL else "not met"
    report.text(
        f"- ingest / Kafka → Delta append: **{to_delta:.2f}x** (goal ≥ {GOAL}x: **{verdict}**)",
        f"- ingest / Kafka → Kafka pass-through: **{to_kafka:.2f}x**",
    )
    if bench.flat is not None:
        flat_section(report, bench.flat)
    report.section("Where the time goes (the last ingest run)")
    report.table(
        ["query", "batches", "busy s", *[f"{k} s" for k in DURATION_KEYS]],
        [
            (
                name,
                len(batches),
                f"{busy_seconds(batches):,.1f}",
                *[f"{sum(p['durationMs'].get(k, 0) for p in batches) / 1000:,.1f}" for k in DURATION_KEYS],
            )
            for name, batches in bench.progress.items()
        ],
        "lrr" + "r" * len(DURATION_KEYS),
    )
    steps: dict[tuple[str, str], float] = {}
    for timings in bench.silver_steps:
        for step, seconds in timings.seconds.items():
            steps[timings.query, step] = steps.get((timings.query, step), 0.0) + seconds
    report.text(f"Inside the silver batches (`addBatch`), summed over the {runs} runs' batches:")
    report.table(["query", "step", "seconds"], [(q, s, f"{v:,.1f}") for (q, s), v in steps.items()], "llr")
    if bench.commit_cost is not None and INGEST in bench.commits:
        floor_s = statistics.median(d.busy_s for d in bench.drains[DELTA_FLOOR])
        commits_section(
            report,
            bench.commits,
            bench.commit_cost,
            ingest=INGEST,
            drain_s=statistics.median(d.busy_s for d in bench.drains[INGEST]),
            goal_s=floor_s / GOAL,
            cores=os.cpu_count() or 1,
        )
    return report
