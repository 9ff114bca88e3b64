"""Calibrated scores: Platt scaling of a fitted classifier, fitted on the validation window.

The classifiers are trained with a class weight on fraud rows, so their probabilities overstate
fraud; trees' probabilities are not calibrated to begin with. A score that reads as a probability
is what an analyst, a review threshold and a decision API expect. Platt scaling (with Platt's
smoothed targets) fits ``P(fraud) = 1 / (1 + exp(-(a * r + b)))`` on the classifier's raw output ``r`` (the margin of
gradient-boosted trees and of logistic regression; the summed leaf shares of a random forest)
over a window the classifier never saw. With ``a > 0`` the order of the raw outputs is kept, so
AP, ROC AUC and precision at k are the classifier's own (or better, where the classifier's own
probability had saturated to equal values); only the scale moves.

The calibrator is two MLlib stages appended to the fitted pipeline (``VectorSlicer`` takes
``rawPrediction[1]``, a one-input ``LogisticRegression`` gives ``probability``), so the model is
still saved by Spark's own writer and ``transform`` gives calibrated scores; the base classifier's
own columns are renamed (:data:`BASE_PROBABILITY`). The compiled form carries ``(a, b)``
(:mod:`lakehouse.ml.compiled`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from pyspark.ml import PipelineModel
    from pyspark.sql import DataFrame

log = logging.getLogger(__name__)

#: The base classifier's output columns when a calibrator follows it.
BASE_PROBABILITY, BASE_PREDICTION, BASE_RAW = "base_probability", "base_prediction", "rawPrediction"
#: The calibrator's input: the base classifier's raw output for the fraud class, as a 1-vector.
CALIBRATION_INPUT = "calibration_input"


@dataclass(frozen=True)
class Calibration:
    """What calibration did on the validation window (``applied`` False: the scores stay the
    classifier's own, for ``reason``)."""

    applied: bool
    slope: float = 1.0
    intercept: float = 0.0
    brier_before: float = float("nan")
    brier_after: float = float("nan")
    mean_before: float = float("nan")
    mean_after: float = float("nan")
    fraud_rate: float = float("nan")
    reason: str = ""

    def as_dict(self) -> dict[str, float | str | bool]:
        return dict(self.__dict__)

    def describe(self) -> str:
        if not self.applied:
            return f"not calibrated: {self.reason}"
        return (
            f"Platt scaling a={self.slope:.4g}, b={self.intercept:.4g}: mean score {self.mean_before:.4f} → "
            f"{self.mean_after:.4f} (fraud rate {self.fraud_rate:.4f}), Brier {self.brier_before:.5f} → "
            f"{self.brier_after:.5f} on the validation window it was fitted on"
        )


def split_calibration(model: PipelineModel) -> tuple[list, tuple[float, float] | None]:
    """The stages of a fitted pipeline up to and including its classifier, and the calibrator's
    ``(a, b)`` when one follows it (``[..., classifier, VectorSlicer, LogisticRegressionModel]``,
    as :func:`calibrate` builds it), else None."""
    stages = list(model.stages)
    last = stages[-1]
    if not (last.hasParam("featuresCol") and last.getOrDefault("featuresCol") == CALIBRATION_INPUT):
        return stages, None
    return stages[:-2], (float(last.coefficients[0]), float(last.intercept))


def base_classifier(model: PipelineModel):
    """The fitted classifier of a pipeline, calibrated or not."""
    return split_calibration(model)[0][-1]


def calibrate(model: PipelineModel, validation: DataFrame) -> tuple[PipelineModel, Calibration]:
    """``model`` (a fitted :func:`lakehouse.ml.pipeline.make_pipeline`, whose classifier writes
    :data:`BASE_PROBABILITY`) with a Platt calibrator fitted on ``validation`` (rows with
    ``label``), or ``model`` with its classifier writing ``probability`` itself when calibration
    cannot be trusted there (the returned :class:`Calibration` says why)."""
    from pyspark.ml import PipelineModel
    from pyspark.ml.classification import LogisticRegression
    from pyspark.ml.feature import VectorSlicer
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F

    slicer = VectorSlicer(inputCol=BASE_RAW, outputCol=CALIBRATION_INPUT, indices=[1])
    sliced = slicer.transform(model.transform(validation)).select(
        CALIBRATION_INPUT,
        "label",
        vector_to_array(F.col(BASE_PROBABILITY)).getItem(1).alias("before"),
        vector_to_array(F.col(CALIBRATION_INPUT)).getItem(0).alias("raw"),
    )
    sliced = sliced.persist()
    try:
        rows = sliced.select("label", "before", "raw").toPandas()
        y, before = rows["label"].to_numpy(np.float64), rows["before"].to_numpy(np.float64)
        raw = rows["raw"].to_numpy(np.float64)
        if not len(y) or y.min() == y.max():
            return uncalibrated(model), Calibration(False, reason="the validation window lacks one of the classes")
        # Platt's targets: (N+ + 1) / (N+ + 2) for a fraud, 1 / (N- + 2) for the rest, so that a
        # window the classifier separates perfectly still gives a finite slope (plain 0/1 labels
        # would push it to infinity and every score to exactly 0 or 1). MLlib's logistic regression
        # takes no soft label: each row enters twice, as fraud with weight t and as not with 1 - t.
        positives = float(y.sum())
        negatives = len(y) - positives
        target = F.when(F.col("label") > 0, (positives + 1) / (positives + 2)).otherwise(1 / (negatives + 2))
        soft = sliced.select(CALIBRATION_INPUT, F.lit(1.0).alias("label"), target.alias("weight")).unionByName(
            sliced.select(CALIBRATION_INPUT, F.lit(0.0).alias("label"), (1 - target).alias("weight"))
        )
        fitted = LogisticRegression(
            featuresCol=CALIBRATION_INPUT,
            labelCol="label",
            weightCol="weight",
            regParam=0.0,
            standardization=False,
            maxIter=100,
            tol=1e-10,
            probabilityCol="probability",
            rawPredictionCol="calibrated_raw",
            predictionCol="prediction",
        ).fit(soft)
        slope, intercept = float(fitted.coefficients[0]), float(fitted.intercept)
    finally:
        sliced.unpersist()
    with np.errstate(over="ignore"):
        after = 1.0 / (1.0 + np.exp(-(raw * slope + intercept)))  # the calibrator's own formula
    if not slope > 0:
        return uncalibrated(model), Calibration(False, reason=f"the fitted slope {slope:.4g} would reverse the order")
    # The order is the raw output's; a saturated sigmoid would make clearly different raw outputs
    # equal (outputs apart by rounding only, a tree sum taken in another order, may tie).
    order = np.argsort(raw, kind="stable")
    apart = np.diff(raw[order]) > 1e-9 * max(1.0, float(np.abs(raw).max()))
    tied = int(np.count_nonzero(apart & (np.diff(after[order]) <= 0)))
    if tied:
        return uncalibrated(model), Calibration(False, reason=f"it would make {tied} distinct scores equal")
    result = Calibration(
        True,
        slope,
        intercept,
        brier_before=float(np.mean((before - y) ** 2)),
        brier_after=float(np.mean((after - y) ** 2)),
        mean_before=float(before.mean()),
        mean_after=float(after.mean()),
        fraud_rate=float(y.mean()),
    )
    calibrated = PipelineModel([*model.stages, slicer, fitted])
    log.info("calibration: %s", result.describe())
    return calibrated, result


def uncalibrated(model: PipelineModel) -> PipelineModel:
    """The fitted pipeline with its classifier writing ``probability`` and ``prediction`` again."""
    from pyspark.ml import PipelineModel

    stages, _ = split_calibration(model)
    stages[-1].setProbabilityCol("probability").setPredictionCol("prediction")
    return PipelineModel(stages)
