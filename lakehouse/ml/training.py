"""`fraudlake train`: gold.transaction_features (one pinned Delta version) → a model version in the
registry, evaluated on the validation window next to two baselines, and promoted only when it
beats the champion on that same window by ``training.promotion_margin``.
"""

from __future__ import annotations

import json
import logging
import shutil
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from lakehouse.contract.features import CATEGORICAL_FEATURES, FEATURE_NAMES, NUMERIC_FEATURES
from lakehouse.contract.tables import table_names
from lakehouse.features.labels import ORIGIN, known_labels
from lakehouse.ml import registry
from lakehouse.ml.calibration import Calibration, calibrate
from lakehouse.ml.explain import PROFILE_TAG, learn_profile
from lakehouse.ml.metrics import Evaluation, average_precision
from lakehouse.ml.pipeline import (
    ScoredWindow,
    TimeSplit,
    feature_importances,
    make_pipeline,
    scored,
    split_frames,
    time_split,
    with_class_weight,
    with_label,
)
from lakehouse.ml.report import write_report
from lakehouse.ml.selection import Selection, select
from lakehouse.platform.delta import latest_version, read_version
from lakehouse.settings import Settings

if TYPE_CHECKING:
    from pyspark.ml import PipelineModel
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)
RULE_MULTIPLE = 3.0  # the rule baseline alerts when amount > 3x the user's 30-day mean


@dataclass(frozen=True)
class Promotion:
    promoted: bool
    champion_before: int | None
    champion_after: int | None
    reason: str


@dataclass(frozen=True)
class TrainResult:
    version: int
    split: TimeSplit
    rows_train: int
    evaluation: Evaluation
    baselines: dict[str, float] = field(default_factory=dict)  # name → average precision
    table_versions: dict[str, int] = field(default_factory=dict)
    promotion: Promotion | None = None
    report_path: Path | None = None
    selection: Selection | None = None  # how the model was chosen (None: training.selection off)


def baseline_scores(train: DataFrame, validation: DataFrame, settings: Settings) -> dict[str, float]:
    """Average precision of the two baselines on the validation window: an amount-only logistic
    regression, and the rule "amount over the user's 30-day mean" used as a score."""
    y_and_ratio = validation.select("is_fraud", "user_amount_ratio_30d").toPandas()
    y = y_and_ratio["is_fraud"].fillna(False).to_numpy(bool)
    ratio = y_and_ratio["user_amount_ratio_30d"].astype(float).fillna(0.0).to_numpy()
    amount_model = make_pipeline(
        settings.training, numeric=("amount",), categorical=(), algorithm="logistic_regression"
    ).fit(train)
    amount_window = ScoredWindow.collect(scored(amount_model, with_label(validation)))
    return {
        "amount_only_logistic_regression": average_precision(amount_window.y, amount_window.score),
        f"rule_amount_over_{RULE_MULTIPLE:g}x_user_30d_mean": average_precision(y, ratio),
    }


def train(
    spark: SparkSession,
    settings: Settings,
    *,
    date_from: date | None = None,
    date_to: date | None = None,
    algorithm: str | None = None,
    promote: bool = True,
    table_versions: dict[str, int] | None = None,
    as_of: datetime | None = None,
    features: tuple[str, ...] = FEATURE_NAMES,
) -> TrainResult:
    """``table_versions`` pins the tables read (a retraining run's pin); default: their latest
    versions. ``as_of``: the cut whose known labels it learns from (see :func:`pinned_split`).
    ``features``: the model's inputs, a subset of the feature table's (all by default; a benchmark
    trains on an earlier release's set to compare)."""
    unknown = sorted(set(features) - set(FEATURE_NAMES))
    if unknown:
        raise ValueError(f"not features of the feature table: {', '.join(unknown)}")
    numeric = tuple(f for f in NUMERIC_FEATURES if f in features)
    categorical = tuple(f for f in CATEGORICAL_FEATURES if f in features)
    table_versions = table_versions or pin_versions(spark, settings)
    training = settings.training
    if algorithm:  # an algorithm asked for by name is trained as configured: no selection
        no_selection = training.selection.model_copy(update={"folds": 0})
        training = training.model_copy(update={"algorithm": algorithm, "selection": no_selection})
    split, train_frame, validation = pinned_split(
        spark, settings, table_versions, date_from=date_from, date_to=date_to, as_of=as_of
    )
    train_frame, weight = with_class_weight(with_label(train_frame), training.positive_weight)
    train_frame = train_frame.persist()
    validation = with_label(validation).persist()
    try:
        rows_train = train_frame.count()
        selection = select(train_frame, split, training, numeric=numeric, categorical=categorical)
        if selection is not None:
            training = selection.training
        log.info(
            "training %s on %s rows (%s), fraud weight %.1f", training.algorithm, rows_train, split.describe(), weight
        )
        platt = training.calibration == "platt"
        model = make_pipeline(training, numeric=numeric, categorical=categorical, calibrated=platt).fit(train_frame)
        model, calibration = calibrate(model, validation) if platt else (model, Calibration(False, reason="off"))
        validation_scored = scored(model, validation)
        window = ScoredWindow.collect(validation_scored)
        threshold = window.choose_threshold(training)
        evaluation = window.evaluate(threshold, training)
        baselines = baseline_scores(train_frame, validation, settings)
        params = {
            "algorithm": training.algorithm,
            "seed": training.seed,
            "positive_weight": weight,
            **{f"{training.algorithm}.{k}": v for k, v in getattr(training, training.algorithm).model_dump().items()},
            "train_from": split.train_from,
            "train_to": split.train_to,
            "validation_from": split.validation_from,
            "validation_to": split.validation_to,
            "rows_train": rows_train,
            "threshold_target": training.threshold.target,
            "selection": selection.chosen if selection else "off",
            "calibration": training.calibration,
        }
        metrics = {k: float(v) for k, v in evaluation.as_dict().items() if isinstance(v, int | float)}
        metrics |= {f"recall.{k}": v for k, v in evaluation.recall_by_scenario.items()}
        metrics |= {f"baseline_ap.{k}": v for k, v in baselines.items()}
        tags = {
            "threshold": repr(threshold),
            "algorithm": training.algorithm,
            "features": json.dumps([*numeric, *categorical]),
            "table_versions": json.dumps(table_versions),
            "selection": selection.chosen if selection else "off",
            "calibration": json.dumps(calibration.as_dict()),
            "split": split.describe(),
            # What is typical for each feature among the training window's legitimate rows: the
            # yardstick of the scorer's alert reasons (lakehouse.ml.explain).
            PROFILE_TAG: learn_profile(model, train_frame, rows=settings.scoring.profile_rows).to_json(),
        }
        pending = settings.paths.data_dir / "reports" / f"pending-{uuid.uuid4().hex[:8]}"
        write_report(
            pending,
            title=f"{settings.registry.model_name}: {training.algorithm}",
            window=window,
            evaluation=evaluation,
            baselines=baselines,
            importances=feature_importances(model, validation_scored),
            tables={"Model selection (time-series folds of the training window)": selection.table()}
            if selection
            else {},
            facts={
                "split": split.describe(),
                "training rows": f"{rows_train:,}",
                "fraud weight": f"{weight:.1f}",
                "calibration": calibration.describe(),
                **{f"table {k}": f"version {v}" for k, v in table_versions.items()},
            },
        )
        compiled, parity = compile_and_verify(model, validation, threshold)
        tags[registry.PARITY_TAG] = json.dumps(parity)
        version = registry.register(
            settings, model, params=params, metrics=metrics, tags=tags, report_dir=pending, compiled=compiled
        )
        report = pending.with_name(f"model-v{version}")
        shutil.rmtree(report, ignore_errors=True)
        pending.rename(report)
        log.info("training report: %s", report / "index.html")
        result = TrainResult(
            version,
            split,
            rows_train,
            evaluation,
            baselines,
            table_versions,
            report_path=report / "index.html",
            selection=selection,
        )
        if promote:
            result = TrainResult(
                **{**result.__dict__, "promotion": decide_promotion(settings, version, evaluation, validation)}
            )
        return result
    finally:
        train_frame.unpersist()
        validation.unpersist()


def pinned_split(
    spark: SparkSession,
    settings: Settings,
    table_versions: dict[str, int],
    *,
    date_from: date | None = None,
    date_to: date | None = None,
    as_of: datetime | None = None,
) -> tuple[TimeSplit, DataFrame, DataFrame]:
    """The time split of the feature table at its pinned version within [date_from, date_to], with
    the labels known at ``as_of`` (default: just after the window's last event, the lake's now):
    (split, training rows, validation rows).

    With label events (:mod:`lakehouse.features.labels`), validation ends ``labels.maturity_days``
    before the cut, where most labels are in, and training runs up to it with no gap: the labels
    as known at the cut stand for the feedback delay the gap imitates with inline labels."""
    from pyspark.sql import functions as F

    names = table_names(settings)
    features = read_version(spark, names.features, version=table_versions[names.features])
    if date_from:
        features = features.where(F.col("event_date") >= F.lit(date_from))
    if date_to:
        features = features.where(F.col("event_date") <= F.lit(date_to))
    first, last, last_event = features.agg(F.min("event_date"), F.max("event_date"), F.max("event_time")).first()
    if first is None:
        raise registry.RegistryError(
            f"{names.features} holds no transactions in that range: run `fraudlake features build` first"
        )
    cut = as_of or last_event + timedelta(microseconds=1)
    features = known_labels(spark, settings, features, F.lit(cut), versions=table_versions, keep_origin=True)
    training = settings.training
    streamed = bool(features.where(F.col(ORIGIN)).limit(1).count())
    if streamed:  # labels from the label stream: wait for them to mature
        last = min(last, (cut - timedelta(days=settings.labels.maturity_days)).date() - timedelta(days=1))
        training = training.model_copy(update={"gap_days": 0})
    log.info(
        "labels known at %s (labels.source %s): %s",
        cut,
        settings.labels.source,
        f"from the label stream, validation up to {last}" if streamed else "the transactions' own",
    )
    split = time_split(first, last, training)
    return (split, *split_frames(features.drop(ORIGIN), split))


def pin_versions(spark: SparkSession, settings: Settings) -> dict[str, int]:
    """The latest Delta versions of the tables a training reads: one consistent snapshot."""
    names = table_names(settings)
    tables = [names.features, names.silver("transactions"), names.versions("labels")]
    return {name: latest_version(spark, name) for name in tables if spark.catalog.tableExists(name)}


@dataclass(frozen=True)
class Comparison:
    """A challenger against the champion on one validation window (nothing changed yet)."""

    challenger: int
    champion: int | None
    challenger_ap: float | None
    champion_ap: float | None
    promote: bool
    reason: str


def compare(settings: Settings, version: int, validation: DataFrame) -> Comparison:
    """Should ``version`` replace the champion? Yes when it loads from the registry, scores (its
    compiled form exactly as MLlib, when it has one), and beats the champion's average precision on
    the same validation window by the margin (or there is no working champion)."""
    margin = settings.training.promotion_margin
    before = registry.champion_version(settings, required=False)
    try:
        challenger_ap = _registry_ap(settings, version, validation)
    except registry.RegistryError as error:
        return Comparison(version, before, None, None, False, f"refused: {error}")
    parity = json.loads(registry.version_info(settings, version).tags.get(registry.PARITY_TAG, "{}"))
    if parity.get("compiled") and not parity["passed"]:
        return Comparison(
            version,
            before,
            challenger_ap,
            None,
            False,
            f"refused: its compiled form differs from MLlib ({parity['detail']})",
        )
    if before is None:
        return Comparison(
            version, None, challenger_ap, None, True, f"first model: average precision {challenger_ap:.4f}"
        )
    if before == version:
        return Comparison(
            version, before, challenger_ap, challenger_ap, False, f"version {version} is already the champion"
        )
    try:
        champion_ap = _registry_ap(settings, before, validation)
    except registry.RegistryError as error:
        reason = f"champion {before} no longer loads ({error}); challenger average precision {challenger_ap:.4f}"
        return Comparison(version, before, challenger_ap, None, True, reason)
    if challenger_ap >= champion_ap + margin:
        reason = (
            f"average precision {challenger_ap:.4f} beats champion {before}'s {champion_ap:.4f} by at least {margin:g}"
        )
        return Comparison(version, before, challenger_ap, champion_ap, True, reason)
    reason = (
        f"kept champion {before}: challenger average precision {challenger_ap:.4f} vs {champion_ap:.4f} "
        f"(margin {margin:g})"
    )
    return Comparison(version, before, challenger_ap, champion_ap, False, reason)


def apply(settings: Settings, comparison: Comparison) -> Promotion:
    """Carry out a comparison: promote the challenger (only if the champion is still the one it was
    compared with), or note on the challenger why not. Safe to repeat."""
    current = registry.champion_version(settings, required=False)
    if comparison.promote and current == comparison.challenger:
        return Promotion(True, comparison.champion, current, comparison.reason)  # done before: a repeat
    if not comparison.promote:
        registry.annotate(settings, comparison.challenger, comparison.reason)
        return Promotion(False, current, current, comparison.reason)
    if current != comparison.champion:
        reason = f"not promoted: the champion changed from {comparison.champion} to {current} since the comparison"
        registry.annotate(settings, comparison.challenger, reason)
        return Promotion(False, current, current, reason)
    registry.set_champion(settings, comparison.challenger, reason=comparison.reason)
    return Promotion(True, current, comparison.challenger, comparison.reason)


def compile_and_verify(model: PipelineModel, validation: DataFrame, threshold: float) -> tuple[str | None, dict]:
    """The model's numpy form (JSON) and its check against MLlib on the validation window."""
    from lakehouse.ml.compiled import NotCompilable, verify
    from lakehouse.ml.compiler import compile_pipeline

    try:
        compiled = compile_pipeline(model)
    except NotCompilable as exc:
        log.warning("the model is not compiled (%s): it scores with MLlib only", exc)
        return None, {"compiled": False, "passed": False, "detail": f"not compiled: {exc}"}
    check = verify(model, compiled, validation, threshold)
    log.info("compiled model vs MLlib on the validation window: %s", check.describe())
    return compiled.to_json(), {"compiled": True, "passed": check.passed, "detail": check.describe()}


def decide_promotion(settings: Settings, version: int, evaluation: Evaluation, validation: DataFrame) -> Promotion:
    """Compare ``version`` with the champion on the validation window and act on it; the reason is
    recorded either way."""
    return apply(settings, compare(settings, version, validation))


def _registry_ap(settings: Settings, version: int, validation: DataFrame) -> float:
    model = registry.load(settings, version)
    try:
        window = ScoredWindow.collect(scored(model, validation))
    except Exception as exc:  # loads but cannot score these features: as broken as a missing folder
        raise registry.RegistryError(
            f"model version {version} cannot score the feature table: {str(exc).splitlines()[0]}"
        ) from exc
    return average_precision(window.y, window.score) if window.y.any() else float(np.nan)
