"""Benchmarks that write their figures to docs/ (never asserted as times in tests).

Machines are noisy: each figure is the median of several runs, with the spread next to it.
"""

from __future__ import annotations

import statistics
import time
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from lakehouse.benchmarks.report import Report, machine_description
from lakehouse.platform.isolation import isolated
from lakehouse.platform.kafka.senders import make_sender
from lakehouse.platform.kafka.topics import delete_topics, ensure_topics
from lakehouse.settings import Settings
from lakehouse.simulator.producer import ProduceLimits, produce
from lakehouse.simulator.simulation import Simulation


@dataclass(frozen=True)
class Series:
    name: str
    runs: list[float]  # records per second

    @property
    def median(self) -> float:
        return statistics.median(self.runs)


def bench_generation(settings: Settings, start: date, count: int, repeats: int) -> Series:
    """Simulator + JSON serialisation alone: how fast records can be made, before any Kafka."""
    runs = []
    for repeat in range(repeats):
        simulation = Simulation(settings.simulator, start, traffic_seed=1000 + repeat)
        began = time.perf_counter()
        made, day = 0, settings.simulator.days
        while made < count:
            made += len(simulation.transaction_json(simulation.day(day)))
            day += 1
        runs.append(made / (time.perf_counter() - began))
    return Series("generate + serialise (no Kafka)", runs)


def bench_producer(settings: Settings, client: str, start: date, count: int, repeats: int) -> Series:
    """Transactions per second into the real broker (delivery confirmed), each run on fresh topics."""
    runs = []
    producer_settings = settings.producer.model_copy(update={"client": client})
    for repeat in range(repeats):
        run_settings = isolated(settings, suffix=f"bench{uuid.uuid4().hex[:8]}", schemas=False, topics=True)
        ensure_topics(run_settings.kafka)
        simulation = Simulation(settings.simulator, start, traffic_seed=2000 + repeat)
        sender = make_sender(run_settings.kafka, producer_settings)
        try:
            report = produce(
                run_settings, simulation, sender, ProduceLimits(count=count), first_day=settings.simulator.days
            )
        finally:
            sender.close()
            delete_topics(run_settings.kafka, [t.name for t in run_settings.kafka.topics.all()])
        if report.failed or report.delivered != report.sent or report.caught_up:
            raise RuntimeError(f"benchmark run lost records: {report}")
        runs.append(report.transactions / report.elapsed_s)
    return Series(f"produce with {client}", runs)


def producer_report(series: list[Series], count: int, target: float, machine: str | None = None) -> Report:
    """The page of ``fraudlake bench produce``: one row per series, then the goal and the verdict."""
    report = Report(
        "producer",
        "Producer throughput",
        f"fraudlake bench produce --count {count} --repeats {max((len(s.runs) for s in series), default=0)}",
        settings={
            "each run": f"{count:,} simulated transactions (plus the users and merchants they need)",
            "delivery": "acks=all and idempotence on; a record counts only when its delivery is confirmed",
            "broker": "the embedded single-node KRaft broker on loopback",
        },
        machine=machine or machine_description(),
    )
    report.table(
        ["what", "median tx/s", "runs (tx/s)"],
        [(s.name, f"{s.median:,.0f}", ", ".join(f"{r:,.0f}" for r in s.runs)) for s in series],
        align="lrl",
    )
    fastest = max((s for s in series if s.name.startswith("produce")), key=lambda s: s.median)
    baseline = next((s for s in series if "kafka-python" in s.name), None)
    verdict = [
        f"Goal: at least {target:,.0f} transactions/s into the broker. Fastest: {fastest.name}, "
        f"{fastest.median:,.0f}/s ({'meets' if fastest.median >= target else 'misses'} the goal)."
    ]
    if baseline and baseline is not fastest:
        verdict.append(
            f"{fastest.name} is {fastest.median / baseline.median:.1f}x kafka-python's median, "
            "which is why `producer.client` defaults to confluent."
        )
    return report.text(*verdict)


def write_producer_report(path: Path, series: list[Series], count: int, target: float) -> str:
    return producer_report(series, count, target).write(path)
