"""Training building blocks: the time split (never random, with a feedback gap), class weights,
and each configured MLlib pipeline on a small static DataFrame of feature rows."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
import pytest

from lakehouse.contract.features import FEATURES
from lakehouse.ml.metrics import average_precision
from lakehouse.ml.pipeline import (
    ScoredWindow,
    make_pipeline,
    scored,
    split_frames,
    time_split,
    with_class_weight,
    with_label,
)


def test_time_split_keeps_the_gap_and_the_validation_window(settings) -> None:
    split = time_split(date(2026, 10, 1), date(2026, 10, 30), settings.training)
    assert split.validation_to == date(2026, 10, 30)
    assert (split.validation_to - split.validation_from).days + 1 == settings.training.validation_days
    assert (split.validation_from - split.train_to).days - 1 == settings.training.gap_days
    with pytest.raises(ValueError, match="not enough days"):
        time_split(date(2026, 10, 25), date(2026, 10, 30), settings.training)


def test_training_on_a_feature_the_table_lacks_is_refused_before_any_work(settings) -> None:
    from lakehouse.ml.training import train

    with pytest.raises(ValueError, match="not features of the feature table: is_fraud"):
        train(None, settings, features=("amount", "is_fraud"))  # no Spark needed to refuse


def feature_rows(n: int, seed: int) -> list[dict]:
    """Rows shaped like gold.transaction_features: fraud has a high amount ratio and a new IP."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        fraud = bool(rng.random() < 0.08)
        row = {f.name: None for f in FEATURES}
        row.update(
            {
                "user_amount_ratio_30d": float(rng.gamma(2, 4) if fraud else rng.gamma(2, 0.5)),
                "is_new_device_ip": int(fraud or rng.random() < 0.1),
                "user_tx_count_24h": int(rng.integers(0, 5)),
                "merchant_category": ["grocery", "electronics", "travel"][int(rng.integers(0, 3))],
            }
        )
        day = datetime(2026, 10, 1) + timedelta(days=int(i * 30 / n))
        row.update(
            {
                "transaction_id": f"t{i}",
                "user_id": f"u{i % 40}",
                "event_date": day.date(),
                "amount": float(rng.gamma(2, 20)),
                "is_fraud": fraud,
                "fraud_scenario": "amount_anomaly" if fraud else None,
            }
        )
        rows.append(row)
    return rows


@dataclass(frozen=True)
class Fitted:
    algorithm: str
    training: object
    model: object
    validation: object
    weight: float


def feature_frame(spark, rows: list[dict]):
    from pyspark.sql import types as T

    kinds = {"double": T.DoubleType(), "long": T.LongType(), "int": T.IntegerType(), "string": T.StringType()}
    schema = T.StructType(
        [T.StructField(f.name, kinds[f.kind]) for f in FEATURES]  # amount among them
        + [
            T.StructField("transaction_id", T.StringType()),
            T.StructField("user_id", T.StringType()),
            T.StructField("event_date", T.DateType()),
            T.StructField("is_fraud", T.BooleanType()),
            T.StructField("fraud_scenario", T.StringType()),
        ]
    )
    return spark.createDataFrame(rows, schema)


@pytest.fixture(scope="module", params=["gbt", "random_forest", "logistic_regression", "gbt-uncalibrated"])
def fitted(request, spark, settings) -> Fitted:
    """Each configured pipeline fitted once on the same small static frame, with its Platt
    calibrator fitted on the validation days (as training does); and a GBT without one (as
    versions registered before calibration, or with ``training.calibration: none``)."""
    from lakehouse.ml.calibration import calibrate

    algorithm, _, plain = request.param.partition("-")
    frame = feature_frame(spark, feature_rows(1200, seed=5))
    split = time_split(date(2026, 10, 1), date(2026, 10, 30), settings.training)
    train, validation = split_frames(frame, split)
    train, weight = with_class_weight(with_label(train), "balanced")
    small = settings.training.model_copy(
        update={
            "gbt": settings.training.gbt.model_copy(update={"max_iter": 5}),
            "random_forest": settings.training.random_forest.model_copy(update={"num_trees": 10}),
        }
    )
    model = make_pipeline(small, algorithm=algorithm, calibrated=not plain).fit(train)
    if not plain:
        model, calibration = calibrate(model, with_label(validation))
        assert calibration.applied, calibration.reason
    return Fitted(algorithm, small, model, validation, weight)


def test_pipeline_learns_a_separable_signal_with_class_weights(fitted: Fitted) -> None:
    assert fitted.weight > 5  # about 92/8
    window = ScoredWindow.collect(scored(fitted.model, with_label(fitted.validation)))

    assert window.y.any() and window.score.min() >= 0 and window.score.max() <= 1
    assert average_precision(window.y, window.score) > 0.8
    threshold = window.choose_threshold(fitted.training)
    evaluation = window.evaluate(threshold, fitted.training)
    assert evaluation.alerts_per_day <= fitted.training.threshold.daily_alerts
    assert set(evaluation.recall_by_scenario) == {"amount_anomaly"}


def hostile_rows() -> list[dict]:
    """Rows no training set holds: nulls everywhere, NaN, infinities, extremes, unseen categories."""
    rows = []
    specials = [None, float("nan"), float("inf"), -float("inf"), 1e308, -1e308, 0.0, -1.0]
    for i, value in enumerate(specials):
        row = {f.name: None for f in FEATURES}
        for f in FEATURES:
            if f.kind == "double":
                row[f.name] = value
            elif f.kind in ("long", "int"):
                row[f.name] = None if value is None else [0, 2**31 - 1, -(2**31), 1][i % 4]
            else:
                row[f.name] = [
                    None,
                    "grocery",
                    "never-seen",
                    "",
                    "\ufffd\x00",
                ][i % 5]
        row.update(transaction_id=f"h{i}", user_id="u", event_date=date(2026, 10, 30), amount=1.0, is_fraud=False)
        row["fraud_scenario"] = None
        rows.append(row)
    return rows


def test_compiled_model_gives_mllibs_scores_and_decisions_on_every_row(fitted: Fitted, spark) -> None:
    from lakehouse.ml.compiled import CompiledModel, verify
    from lakehouse.ml.compiler import compile_pipeline

    compiled = CompiledModel.from_json(compile_pipeline(fitted.model).to_json())  # what the registry stores
    validation = with_label(fitted.validation)
    window = ScoredWindow.collect(scored(fitted.model, validation))
    threshold = window.choose_threshold(fitted.training)
    on_validation = verify(fitted.model, compiled, validation, threshold)
    assert on_validation.rows == window.y.size > 100
    assert on_validation.passed and on_validation.at_threshold == 0, on_validation.describe()

    hostile = verify(fitted.model, compiled, with_label(feature_frame(spark, hostile_rows())), threshold)
    assert hostile.rows == len(hostile_rows())
    assert hostile.passed, hostile.describe()

    # The check can fail: the same model with its output nudged by 1e-6 is refused.
    nudged = dataclasses.replace(compiled, intercept=compiled.intercept + 1e-6)
    if compiled.calibration is not None:
        slope, intercept = compiled.calibration
        nudged = dataclasses.replace(compiled, calibration=(slope, intercept + 1e-6))
    elif compiled.algorithm != "logistic_regression":
        nudged = dataclasses.replace(
            compiled, forest=dataclasses.replace(compiled.forest, value=compiled.forest.value + 1e-6)
        )
    assert not verify(fitted.model, nudged, validation, threshold).passed


def test_calibrated_scores_keep_the_order_and_read_as_probabilities(spark, settings) -> None:
    """Class weights make the classifier's probabilities overstate fraud; Platt scaling on the
    validation days brings the mean score to the fraud rate there, lowers the Brier score and
    keeps the order of the classifier's raw output (so its AP). A window with one class only is
    not calibrated."""
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F

    from lakehouse.ml.calibration import BASE_PROBABILITY, CALIBRATION_INPUT, calibrate

    frame = feature_frame(spark, feature_rows(1200, seed=5))
    train, validation = split_frames(frame, time_split(date(2026, 10, 1), date(2026, 10, 30), settings.training))
    train, _ = with_class_weight(with_label(train), "balanced")
    small = settings.training.model_copy(update={"gbt": settings.training.gbt.model_copy(update={"max_iter": 5})})
    model = make_pipeline(small, algorithm="gbt", calibrated=True).fit(train)
    validation = with_label(validation)

    calibrated, calibration = calibrate(model, validation)
    rows = scored(calibrated, validation).select(
        "label",
        "score",
        vector_to_array(F.col(BASE_PROBABILITY)).getItem(1).alias("before"),
        vector_to_array(F.col(CALIBRATION_INPUT)).getItem(0).alias("raw"),
    )
    got = rows.toPandas()
    y, after, before = got["label"].to_numpy(), got["score"].to_numpy(), got["before"].to_numpy()
    assert calibration.applied and calibration.slope > 0
    assert before.mean() > 2 * y.mean()  # what the class weight does
    assert abs(after.mean() - y.mean()) < 0.01  # the fit (on Platt's smoothed targets): mean score ≈ fraud rate
    assert calibration.brier_after < calibration.brier_before
    # The raw output's order: rows whose raw outputs are apart (more than rounding) stay apart,
    # in the same order. (This toy model has 11 distinct outputs, some apart by rounding only.)
    raw = got["raw"].to_numpy()
    order = np.argsort(raw, kind="stable")
    apart = np.diff(raw[order]) > 1e-9
    assert apart.sum() >= 5 and np.all(np.diff(after[order])[apart] > 0)

    legit_only = validation.where("label = 0")
    kept, refused = calibrate(make_pipeline(small, algorithm="gbt", calibrated=True).fit(train), legit_only)
    assert not refused.applied and "one of the classes" in refused.reason
    assert scored(kept, legit_only).count() == legit_only.count()  # the classifier's own probability
