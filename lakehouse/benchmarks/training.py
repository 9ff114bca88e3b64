"""`fraudlake bench train`: the whole offline path on a simulated batch of N transactions (simulate
→ import → features → train), timed stage by stage, with the model's evaluation next to the two
baselines on the same validation window. Runs in its own catalog schemas and registry, so it never
touches the user's tables or champion."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from lakehouse.benchmarks.report import Report, StageClock, machine_description
from lakehouse.contract.features import FEATURE_NAMES
from lakehouse.platform.isolation import drop_schemas, isolated
from lakehouse.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from lakehouse.ml.training import TrainResult


#: What this release added to the model's inputs (issue 16): the previous defaults are the rest.
ADDED_FEATURES = ("amount", "merchant_fraud_rate_1d", "merchant_fraud_rate_7d")
PREVIOUS_FEATURES = tuple(f for f in FEATURE_NAMES if f not in ADDED_FEATURES)
#: name → (the model's features, whether training.selection runs): the previous defaults, then this
#: release's features alone, then this release's defaults (features and model selection).
CANDIDATES: dict[str, tuple[tuple[str, ...], bool]] = {
    "previous defaults": (PREVIOUS_FEATURES, False),
    "+ amount, merchant risk 1d/7d": (FEATURE_NAMES, False),
    "this release's defaults (+ model selection)": (FEATURE_NAMES, True),
}


def candidate_world(world: Settings, selecting: bool) -> Settings:
    """``world`` as it is, or with model selection off (the previous defaults trained one GBT)."""
    if selecting:
        return world
    selection = world.training.selection.model_copy(update={"folds": 0})
    return world.model_copy(update={"training": world.training.model_copy(update={"selection": selection})})


@dataclass
class TrainBench:
    transactions: int
    users: int
    days: int
    stages: dict[str, float] = field(default_factory=dict)  # seconds
    result: TrainResult | None = None  # this release's defaults
    compared: dict[str, TrainResult] = field(default_factory=dict)  # CANDIDATES by name, on the same tables


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
    from lakehouse.ml.training import train

    run = bench_world(settings, folder, simulator={"transactions": transactions, "users": users, "days": days})
    bench = TrainBench(transactions, users, days)
    stage = StageClock(bench.stages, on_progress)
    try:
        bench.result = train_world(spark, run, folder, stage)
        for name, (features, selecting) in CANDIDATES.items():
            if selecting:  # this release's defaults: the model just trained
                bench.compared[name] = bench.result
                continue
            earlier = candidate_world(run, selecting)
            bench.compared[name] = stage(
                f"train: {name}",
                lambda w=earlier, f=features: train(  # the same pinned tables, hence the same split
                    spark, w, features=f, promote=False, table_versions=bench.result.table_versions
                ),
            )
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
    report.stages(bench.stages)
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
    report.table(
        [
            "side by side, same tables and validation window",
            "features",
            "model",
            "AP",
            "ROC AUC",
            f"daily top-{daily_alerts} precision",
            "recall at the threshold",
        ],
        [
            (
                name,
                len(features),
                r.selection.chosen if r.selection else f"{settings.training.algorithm} (as configured)",
                f"{r.evaluation.average_precision:.4f}",
                f"{r.evaluation.roc_auc:.4f}",
                f"{r.evaluation.daily_top_k_precision:.3f}",
                f"{r.evaluation.recall:.3f}",
            )
            for name, (features, _) in CANDIDATES.items()
            for r in [bench.compared[name]]
        ],
        align="lrlrrrr",
    )
    if result.selection:
        columns, rows = result.selection.table()
        report.text("Model selection of this release's defaults (average precision per time fold):")
        report.table(columns, rows)
    best_baseline = max(result.baselines.values())
    return report.text(
        f"The model's average precision is {e.average_precision / best_baseline:.1f}x the best baseline's."
    )
