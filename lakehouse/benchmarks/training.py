"""`fraudlake bench train`: the whole offline path on a simulated batch of N transactions (simulate
→ import → features → train), timed stage by stage, with the model's evaluation next to the two
baselines on the same validation window. Runs in its own catalog schemas and registry, so it never
touches the user's tables or champion."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from lakehouse.benchmarks.report import Report, machine_description
from lakehouse.platform.isolation import drop_schemas, isolated
from lakehouse.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from lakehouse.ml.training import TrainResult


@dataclass
class TrainBench:
    transactions: int
    users: int
    days: int
    stages: dict[str, float] = field(default_factory=dict)  # seconds
    result: TrainResult | None = None


def bench_world(settings: Settings, folder: Path, **changes: object) -> Settings:
    """The settings of a benchmark's own world: its catalog schemas (``bench_<layer>_<suffix>``)
    and its registry in ``folder``; ``changes`` as :func:`lakehouse.platform.isolation.isolated`'s."""
    return isolated(settings, schema_prefix="bench_", registry_dir=folder, **changes)


def train_world(
    spark: SparkSession, world: Settings, folder: Path, stage: Callable[[str, Callable[[], object]], object]
) -> TrainResult:
    """The offline path in a benchmark's world, each step timed by ``stage``: simulate → import →
    features → train (the first model becomes champion)."""
    from lakehouse.features.materialize import build_features
    from lakehouse.ingest.files import import_files
    from lakehouse.ml.training import train
    from lakehouse.simulator.files import write_offline_batch
    from lakehouse.simulator.simulation import Simulation

    batch = folder / "batch"
    start = date.today() - timedelta(days=world.simulator.days)
    stage("simulate (Parquet)", lambda: write_offline_batch(Simulation(world.simulator, start), batch))
    stage(
        "import → bronze, silver",
        lambda: import_files(
            spark,
            world,
            transactions=str(batch / "transactions.parquet"),
            users=str(batch / "users.parquet"),
            merchants=str(batch / "merchants.parquet"),
            name="bench",
        ),
    )
    stage("features build", lambda: build_features(spark, world))
    return stage("train + evaluate + register", lambda: train(spark, world))


def bench_train(
    spark: SparkSession,
    settings: Settings,
    *,
    transactions: int,
    users: int,
    days: int,
    folder: Path,
    on_progress: Callable[[str], None] = print,
) -> TrainBench:
    run = bench_world(settings, folder, simulator={"transactions": transactions, "users": users, "days": days})
    bench = TrainBench(transactions, users, days)

    def stage(name: str, work: Callable[[], object]) -> object:
        on_progress(f"{name} ...")
        began = time.perf_counter()
        out = work()
        bench.stages[name] = time.perf_counter() - began
        on_progress(f"{name}: {bench.stages[name]:,.0f} s")
        return out

    try:
        bench.result = train_world(spark, run, folder, stage)
    finally:
        drop_schemas(spark, run)
    return bench


def train_report(bench: TrainBench, settings: Settings, machine: str | None = None) -> Report:
    """The page of ``fraudlake bench train``: seconds per stage, the model against the baselines on
    the same validation window, and its recall per fraud scenario."""
    result = bench.result
    assert result is not None
    e = result.evaluation
    daily_alerts = settings.training.threshold.daily_alerts
    report = Report(
        "training",
        "Training on simulated data",
        f"fraudlake bench train --transactions {bench.transactions} --users {bench.users} --days {bench.days}",
        settings={
            "data": f"{bench.transactions:,} simulated transactions ({bench.users:,} users, {bench.days} days, fraud"
            f" rate {settings.simulator.fraud_rate:g})",
            "path": "the product's own commands: simulate, import, features build, train; Spark local mode",
            "model": f"{settings.training.algorithm}, {result.split.describe()} ({result.rows_train:,} training rows,"
            f" {settings.training.gap_days}-day gap), threshold chosen for at most {daily_alerts} alerts a day",
        },
        machine=machine or machine_description(),
    )
    report.table(
        ["stage", "seconds"],
        [
            *[(name, f"{seconds:,.0f}") for name, seconds in bench.stages.items()],
            ("**total**", f"**{sum(bench.stages.values()):,.0f}**"),
        ],
        align="lr",
    )
    report.table(
        ["on the validation window", "average precision"],
        [
            ("**model**", f"**{e.average_precision:.4f}**"),
            *[(f"baseline: {name.replace('_', ' ')}", f"{ap:.4f}") for name, ap in result.baselines.items()],
        ],
        align="lr",
    )
    report.text(
        f"Model at its threshold ({e.threshold:.4f}): ROC AUC {e.roc_auc:.4f}, precision {e.precision:.3f}, recall "
        f"{e.recall:.3f}, {e.alerts_per_day:.1f} alerts a day, daily top-{daily_alerts} precision "
        f"{e.daily_top_k_precision:.3f}, fraud amount recall {e.amount_recall:.3f} ({e.frauds:,} frauds in "
        f"{e.rows:,} validation rows)."
    )
    report.table(
        ["scenario", "recall at the threshold"],
        [(name, f"{recall:.3f}") for name, recall in e.recall_by_scenario.items()],
        align="lr",
    )
    best_baseline = max(result.baselines.values())
    return report.text(
        f"The model's average precision is {e.average_precision / best_baseline:.1f}x the best baseline's."
    )


def write_train_report(path: Path, bench: TrainBench, machine: str, settings: Settings) -> str:
    return train_report(bench, settings, machine).write(path)
