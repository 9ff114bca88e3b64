"""`fraudlake bench ingest`'s second part: is ingest's cost flat as the lake grows?

The ingest job runs continuously (its own trigger, every query side by side, as ``fraudlake
stream ingest`` runs it) while the producer sends a compressed month: ``days`` simulated days of
traffic, with users, merchants, label events and 1% bad records, paced at a fixed rate, so every
simulated day arrives in the same wall-clock time. Each micro-batch is placed in the simulated day
being sent when it started; the figure is the median batch time of each query on the last day
against the first. One more day is sent before them and not counted: the JVM's warm-up would
otherwise make the first day look slow and the ratio look flat. The rate is the same all along,
so batches should cost the same unless the growing tables (silver, the progress, the Delta logs)
make them dearer.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from lakehouse.benchmarks.report import Report
from lakehouse.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

GOAL = 1.2  # the last day's median batch time at most this times the first day's
BAD_RATE = 0.01  # of every kind, in every ingest benchmark's records
#: Spark keeps this many progress reports per query (default 100): every batch of a run counts.
PROGRESS_KEPT = 100_000


@dataclass
class FlatRun:
    days: int
    per_day: int
    rate: float
    trigger: str
    #: query → simulated day → the durations (s) of its batches with input that started that day
    batches: dict[str, dict[int, list[float]]] = field(default_factory=dict)

    def median(self, query: str, day: int) -> float:
        durations = self.batches.get(query, {}).get(day, [])
        return statistics.median(durations) if durations else float("nan")

    def ratio(self, query: str) -> float:
        """The last day's median batch time over the first day's (day 0 is the warm-up)."""
        return self.median(query, self.days) / self.median(query, 1)

    @property
    def span(self) -> int:
        """Days compared by :meth:`span_ratio`: five, or half the run when it is shorter."""
        return max(1, min(5, self.days // 2))

    def span_ratio(self, query: str) -> float:
        """The median batch time of the last :attr:`span` days over the first ones' (a day has few
        batches: this says whether the last-day figure is a trend or one day's noise)."""
        days, span = self.batches.get(query, {}), self.span

        def median_of(first: int) -> float:
            durations = [d for day in range(first, first + span) for d in days.get(day, [])]
            return statistics.median(durations) if durations else float("nan")

        return median_of(self.days - span + 1) / median_of(1)

    def trend(self, query: str) -> float:
        """The last day's batch time over the first's, from a least-squares line through the log of
        every counted batch's time (days 1 to :attr:`days`) against its day: every batch of the run
        counts, where the one-day medians rest on the few batches of two days."""
        points = [
            (day, math.log(seconds))
            for day, durations in self.batches.get(query, {}).items()
            if day >= 1
            for seconds in durations
            if seconds > 0
        ]
        if len({day for day, _ in points}) < 2:
            return float("nan")
        days, logs = zip(*points, strict=True)
        slope = statistics.linear_regression(days, logs).slope
        return math.exp(slope * (self.days - 1))

    def batches_on(self, day: int) -> int:
        """How many batches with input all the queries ran on ``day``."""
        return sum(len(days.get(day, [])) for days in self.batches.values())


def bench_flat(
    spark: SparkSession,
    settings: Settings,
    *,
    folder: Path,
    days: int,
    per_day: int,
    rate: float,
    trigger: str = "2 seconds",
    on_progress: Callable[[str], None] = print,
) -> FlatRun:
    from lakehouse.benchmarks.training import bench_world
    from lakehouse.ingest.queries import run_ingest
    from lakehouse.ingest.reconcile import reconcile
    from lakehouse.platform.isolation import drop_schemas
    from lakehouse.platform.kafka.senders import make_sender
    from lakehouse.platform.kafka.topics import delete_topics, ensure_topics
    from lakehouse.simulator.producer import ProduceLimits, produce
    from lakehouse.simulator.simulation import Simulation, start_before

    world = bench_world(
        settings,
        folder,
        topics=True,
        checkpoint_dir=folder / "flat-checkpoints",
        simulator={"transactions": per_day * (days + 1), "users": max(200, per_day // 5), "days": days + 1},
        streaming={"trigger": trigger},
    )
    run = FlatRun(days, per_day, rate, trigger)
    spark.conf.set("spark.sql.streaming.numRecentProgressUpdates", str(PROGRESS_KEPT))
    ensure_topics(world.kafka)
    queries = []
    try:
        queries = run_ingest(spark, world, once=False)
        sender = make_sender(world.kafka, world.producer)
        on_progress(f"sending {per_day * (days + 1):,} transactions over 1 + {days} simulated days at {rate:,.0f}/s")
        began = time.time()
        try:
            simulation = Simulation(world.simulator, start_before(world.simulator, date.today(), 0), traffic_seed=404)
            report = produce(
                world, simulation, sender, ProduceLimits(count=per_day * (days + 1), rate=rate), first_day=0,
                bad_rate=BAD_RATE,
            )  # fmt: skip
        finally:
            sender.close()
        sent_s = time.time() - began
        for query in queries:  # bronze first, then silver: everything sent lands
            query.processAllAvailable()
        failed = [r for r in reconcile(spark, world) if not r.ok]
        if report.failed or failed:
            raise RuntimeError(f"the run lost records: producer {report.failed}, reconcile {failed}")
        day_s = sent_s / (days + 1)
        for query in queries:
            for progress in query.recentProgress:
                if not progress["numInputRows"]:
                    continue
                started = datetime.fromisoformat(progress["timestamp"].replace("Z", "+00:00")).timestamp()
                day = int((started - began) // day_s)
                if 0 <= day <= days:
                    duration = progress["durationMs"]["triggerExecution"] / 1000
                    run.batches.setdefault(query.name, {}).setdefault(day, []).append(duration)
        on_progress(
            "flat run: " + ", ".join(f"{q.name} {run.ratio(q.name):.2f}x" for q in queries if q.name in run.batches)
        )
    finally:
        for query in queries:
            query.stop()
        delete_topics(world.kafka, [t.name for t in world.kafka.topics.all()])
        drop_schemas(spark, world)
    return run


def flat_section(report: Report, flat: FlatRun) -> None:
    """The report's section on the compressed month."""
    queries = list(flat.batches)
    # A query with no batch on the first or the last day (a sparse stream) has no ratio.
    ratios = _finite({q: flat.ratio(q) for q in queries})
    worst = max(ratios.values(), default=float("nan"))
    report.section(f"Flat over time ({flat.days} simulated days, continuous)")
    report.text(
        f"The ingest job ran continuously (trigger {flat.trigger}) while {flat.per_day:,} transactions a"
        f" simulated day were sent at {flat.rate:,.0f}/s for 1 + {flat.days} days (the first one is the"
        " warm-up, not counted). Median batch time (s) of each query's batches with input, by the day"
        " being sent when the batch started:"
    )
    shown = sorted({1, 2, flat.days // 2, flat.days - 1, flat.days})
    report.table(
        ["query", *[f"day {d}" for d in shown], "last / first"],
        [
            (q, *[_seconds(flat.median(q, d)) for d in shown], f"{ratios[q]:.2f}x" if q in ratios else "—")
            for q in queries
        ],
        "l" + "r" * (len(shown) + 1),
    )
    verdict = "met" if worst <= GOAL else "not met"
    spans = _finite({q: flat.span_ratio(q) for q in queries})
    report.text(
        f"- worst last-day / first-day ratio: **{worst:.2f}x** (goal ≤ {GOAL}x: **{verdict}**), over the queries"
        " with batches on both days",
        f"- the same over {flat.span} days (median of every batch of days 1 to {flat.span} against days "
        f"{flat.days - flat.span + 1} to {flat.days}): " + ", ".join(f"{q} {r:.2f}x" for q, r in spans.items()),
        f"- the trend over every counted batch (a least-squares line through the log of batch time against the"
        f" day, day {flat.days} over day 1): "
        + ", ".join(f"{q} {r:.2f}x" for q, r in _finite({q: flat.trend(q) for q in queries}).items())
        + f"; the queries ran {flat.batches_on(1)} batches with input on day 1 and {flat.batches_on(flat.days)}"
        f" on day {flat.days} (the verdict above stays the one-day medians')",
    )
    report.attach(
        ".jsonl",
        "".join(
            json.dumps({"query": q, "day": day, "batch_seconds": durations}) + "\n"
            for q, days in flat.batches.items()
            for day, durations in sorted(days.items())
        ),
    )


def _finite(ratios: dict[str, float]) -> dict[str, float]:
    """The ratios that exist (a query with no batch on a compared day has none)."""
    return {q: r for q, r in ratios.items() if math.isfinite(r)}


def _seconds(value: float) -> str:
    return f"{value:.2f}" if math.isfinite(value) else "—"
