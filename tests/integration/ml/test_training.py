"""Bring your own data → features → training → registry, on real Spark, Delta and MLflow (SQLite):
the simulator's offline batch is imported like outside files, the model beats both baselines on
the same validation window, a worse challenger is refused, promote and rollback move the
champion, and a corrupt model folder never becomes champion nor serves."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from lakehouse.contract.tables import table_names
from lakehouse.features.materialize import build_features
from lakehouse.ingest.files import import_files
from lakehouse.ml import registry
from lakehouse.ml.compiled import CompiledModel
from lakehouse.ml.pipeline import split_frames, time_split, with_label
from lakehouse.ml.training import decide_promotion, pin_versions, pinned_split, train
from lakehouse.platform.isolation import drop_schemas, isolated
from lakehouse.scoring.champion import load_scoring_model
from lakehouse.settings.schema import CandidateSettings, SelectionSettings
from lakehouse.simulator.files import write_offline_batch
from lakehouse.simulator.simulation import Simulation

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def trained_world(settings, spark, tmp_path_factory):
    """24 simulated days (300 users, 4% fraud) imported from the simulator's Parquet files, with
    features built; this module's own schemas and registry."""
    folder = tmp_path_factory.mktemp("training")
    world = isolated(
        settings,
        registry_dir=folder,
        simulator={"users": 300, "merchants": 90, "cities": 10, "days": 24, "transactions": 9000, "fraud_rate": 0.04},
        training={"gbt": {"max_iter": 20}},
    )
    batch = folder / "batch"
    manifest = write_offline_batch(Simulation(world.simulator, date(2026, 9, 1)), batch)
    reports = import_files(
        spark,
        world,
        transactions=str(batch / "transactions.parquet"),
        users=str(batch / "users.parquet"),
        merchants=str(batch / "merchants.parquet"),
        name="offline_batch",
    )
    assert {r.stream: r.quarantined for r in reports} == {"users": 0, "merchants": 0, "transactions": 0}
    assert next(r for r in reports if r.stream == "transactions").accepted == manifest["transactions"]
    build_features(spark, world)
    yield world
    drop_schemas(spark, world)


def test_model_beats_both_baselines_and_becomes_the_first_champion(trained_world, spark) -> None:
    result = train(spark, trained_world)

    assert result.promotion is not None and result.promotion.promoted
    assert registry.champion_version(trained_world) == result.version
    ap = result.evaluation.average_precision
    assert all(ap > baseline + 0.1 for baseline in result.baselines.values()), (ap, result.baselines)
    assert result.evaluation.alerts_per_day <= trained_world.training.threshold.daily_alerts
    assert (result.split.validation_from - result.split.train_to).days - 1 == trained_world.training.gap_days
    tags = registry.version_info(trained_world, result.version).tags
    assert {"threshold", "features", "table_versions", "code_version", "created_at", "algorithm"} <= set(tags)
    assert "is_fraud" not in tags["features"] and "fraud_scenario" not in tags["features"]
    # Its numpy form is stored with it and gave MLlib's scores and decisions on the validation window.
    parity = json.loads(tags[registry.PARITY_TAG])
    assert parity["passed"] and "0 alert decisions differ, 0 within" in parity["detail"], parity
    import mlflow.artifacts

    stored = mlflow.artifacts.load_text(f"runs:/{tags['run_id']}/{registry.COMPILED_ARTIFACT}")
    assert CompiledModel.from_json(stored).algorithm == trained_world.training.algorithm
    # ... and with the digest of its files, a scorer serves that form without loading MLlib's.
    served = registry.served_form(trained_world, registry.version_info(trained_world, result.version))
    assert served is not None and served.to_json() == stored
    report = result.report_path
    assert report.name == "index.html" and "average_precision" in report.read_text()
    assert {p.name for p in report.parent.glob("*.png")} == {
        "precision_recall.png",
        "roc.png",
        "scores.png",
        "importances.png",
        "scenarios.png",
    }


def test_worse_challenger_is_refused_then_promote_and_rollback_move_the_champion(trained_world, spark) -> None:
    champion = registry.champion_version(trained_world)
    weak = trained_world.model_copy(
        update={
            "training": trained_world.training.model_copy(
                update={
                    "gbt": trained_world.training.gbt.model_copy(update={"max_iter": 1, "max_depth": 1}),
                }
            )
        }
    )
    challenger = train(spark, weak)

    assert not challenger.promotion.promoted
    assert registry.champion_version(trained_world) == champion
    assert "kept champion" in registry.version_info(trained_world, challenger.version).tags["promotion"]

    registry.promote(
        trained_world, challenger.version, validate=lambda model: registry.check_scores(spark, trained_world, model)
    )
    assert registry.champion_version(trained_world) == challenger.version
    assert registry.rollback(trained_world) == champion
    assert registry.champion_version(trained_world) == champion


def test_model_selection_chooses_the_best_mean_ap_on_time_folds_and_reports_them(trained_world, spark) -> None:
    """Two candidates on two 4-day folds of the training window (Sep 1..16 with a 1-day gap before
    the validation week): the best mean average precision is trained on the whole window, and the
    report shows every fold."""
    selection = SelectionSettings(
        folds=2,
        fold_days=4,
        candidates=[
            CandidateSettings(algorithm="logistic_regression", params={"max_iter": 10}),
            CandidateSettings(algorithm="gbt", params={"max_iter": 3, "max_depth": 2}),
        ],
    )
    training = trained_world.training.model_copy(update={"gap_days": 1, "selection": selection})
    result = train(spark, trained_world.model_copy(update={"training": training}), promote=False)

    chosen = result.selection
    assert [f.describe() for f in chosen.folds] == [
        "train ..2026-09-07, validate 2026-09-09..2026-09-12",
        "train ..2026-09-11, validate 2026-09-13..2026-09-16",
    ]
    assert result.split.train_to == date(2026, 9, 16)  # the folds stay inside the training window
    assert all(len(s.fold_ap) == 2 and 0 < s.mean_ap <= 1 for s in chosen.scores)
    assert chosen.chosen == max(chosen.scores, key=lambda s: s.mean_ap).name
    info = registry.version_info(trained_world, result.version)
    assert info.tags["selection"] == chosen.chosen and info.algorithm == chosen.training.algorithm
    page = result.report_path.read_text()
    assert "Model selection" in page and f"{chosen.chosen} (chosen)" in page


def test_a_corrupt_model_folder_is_rejected_and_never_becomes_champion(trained_world, spark) -> None:
    champion = registry.champion_version(trained_world)
    broken = train(spark, trained_world, promote=False)
    folder = Path(registry.artifact_path(trained_world, broken.version))
    stages = folder / "sparkml" / "stages"
    assert stages.is_dir(), list(folder.rglob("*"))[:10]
    shutil.rmtree(stages)  # the Spark model's stages are gone

    with pytest.raises(registry.RegistryError, match="cannot be loaded"):
        registry.promote(
            trained_world, broken.version, validate=lambda model: registry.check_scores(spark, trained_world, model)
        )
    features = spark.table(table_names(trained_world).features)
    first, last = features.agg({"event_date": "min"}).first()[0], features.agg({"event_date": "max"}).first()[0]
    _, validation = split_frames(features, time_split(first, last, trained_world.training))
    decision = decide_promotion(trained_world, broken.version, broken.evaluation, with_label(validation))
    assert not decision.promoted and "refused" in decision.reason
    assert registry.champion_version(trained_world) == champion
    # A scorer asked to serve it refuses it too, by its files' digest (hot reload: tests/integration/scoring).
    with pytest.raises(registry.RegistryError, match="its files changed since it was registered"):
        load_scoring_model(spark, trained_world, broken.version)


def test_backtest_rescores_history_as_of_a_table_version(trained_world, spark) -> None:
    from lakehouse.ml.backtest import backtest

    names = table_names(trained_world)
    champion = registry.champion_version(trained_world)
    features = spark.table(names.features)
    first, last = features.agg({"event_date": "min"}).first()[0], features.agg({"event_date": "max"}).first()[0]
    split = time_split(first, last, trained_world.training)
    before = int(spark.sql(f"DESCRIBE HISTORY {names.features} LIMIT 1").first().version)
    rows_before = features.where(f"event_date >= '{split.validation_from}'").count()

    spark.sql(f"DELETE FROM {names.features} WHERE event_date = '{split.validation_to}'")  # history moves on
    now = backtest(spark, trained_world, model="champion", date_from=split.validation_from, date_to=split.validation_to)
    then = backtest(
        spark,
        trained_world,
        model=str(champion),
        date_from=split.validation_from,
        date_to=split.validation_to,
        as_of_version=before,
    )
    again = backtest(
        spark,
        trained_world,
        model=str(champion),
        date_from=split.validation_from,
        date_to=split.validation_to,
        as_of_version=before,
    )

    assert then.rows == rows_before and now.rows < rows_before
    assert then.backtest_id == again.backtest_id and then.model_version == champion
    stored = spark.table(then.table).where(f"backtest_id = '{then.backtest_id}'")
    assert stored.count() == rows_before  # rerun replaced, not appended
    assert stored.where("alert").count() == round(
        then.evaluation.alerts_per_day * len({r.event_date for r in stored.select("event_date").distinct().collect()})
    )
    # Same model, same rows as its validation: the same average precision as at training time.
    assert then.evaluation.average_precision == pytest.approx(
        registry.versions(trained_world)[champion - 1].average_precision, rel=1e-9
    )


def test_training_as_of_a_cut_sees_only_the_labels_reported_before_it(trained_world, spark, tmp_path) -> None:
    """A chargeback file imported as label events, read with ``labels.source: stream``: a fraud
    reported after the cut is not known, a claim an analyst cleared is legitimate again, a false
    claim reported in time counts as fraud (a label is what was reported), and validation ends
    ``labels.maturity_days`` before the cut."""
    world = trained_world.model_copy(
        update={"labels": trained_world.labels.model_copy(update={"source": "stream", "maturity_days": 2})}
    )
    names = table_names(world)
    rows = spark.table(names.features).where("event_date <= '2026-09-10'").orderBy("transaction_id")
    frauds = rows.where("is_fraud").limit(2).collect()
    legit = rows.where("NOT is_fraud").limit(2).collect()
    cut = datetime(2026, 9, 25, tzinfo=UTC)
    events = [
        (frauds[0], "fraud", "chargeback", "2026-09-20T08:00:00Z"),  # known at the cut
        (frauds[1], "fraud", "chargeback", "2026-09-26T08:00:00Z"),  # reported after it
        (legit[0], "fraud", "customer_report", "2026-09-12T08:00:00Z"),
        (legit[0], "legitimate", "analyst", "2026-09-14T08:00:00Z"),  # the analyst cleared it
        (legit[1], "fraud", "customer_report", "2026-09-18T08:00:00+02:00"),  # a false claim, in time
    ]
    path = tmp_path / "chargebacks.csv"
    lines = ["transaction_id,user_id,label,source,reported_at"]
    lines += [f"{r.transaction_id},{r.user_id},{label},{source},{at}" for r, label, source, at in events]
    path.write_text("\n".join(lines) + "\n")
    (report,) = import_files(spark, world, labels=str(path), name="chargebacks")
    assert (report.stream, report.accepted, report.quarantined) == ("labels", 5, 0)

    split, train_rows, validation = pinned_split(spark, world, pin_versions(spark, world), as_of=cut)

    known = {r.transaction_id for r in train_rows.unionByName(validation).where("is_fraud").collect()}
    assert known == {frauds[0].transaction_id, legit[1].transaction_id}
    assert split.validation_to == date(2026, 9, 22)  # two days matured before the cut's day
    assert (split.validation_from - split.train_to).days == 1  # no gap: the cut stands for the delay
    # Inline labels as before (the import's own is_fraud) when the setting says so.
    _, inline_train, _ = pinned_split(
        spark,
        trained_world.model_copy(update={"labels": world.labels.model_copy(update={"source": "inline"})}),
        pin_versions(spark, world),
        as_of=cut,
    )
    assert inline_train.where("is_fraud").count() > 2

    # A backtest judges with the labels known when it runs: every event reported by now (both
    # chargebacks and the false claim), the cleared claim legitimate, nothing else fraud.
    from lakehouse.ml.backtest import backtest

    judged = backtest(spark, world, model="champion", date_from=date(2026, 9, 1), date_to=date(2026, 9, 10))
    assert judged.evaluation.frauds == 3
