"""Training on ``gold.transaction_features``: a time split, class weights, an MLlib pipeline, and the
fraud evaluation of :mod:`lakehouse.ml.metrics` on the validation window.

The split is by event day, never random: train on the days up to ``train_to``, skip
``gap_days`` (labels of the last days before validation would not be known yet in production),
validate on the ``validation_days`` after the gap. Every choice and seed is in ``training:``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING

import numpy as np

from lakehouse.contract.features import CATEGORICAL_FEATURES, NUMERIC_FEATURES
from lakehouse.ml.calibration import BASE_PREDICTION, BASE_PROBABILITY, base_classifier
from lakehouse.ml.metrics import Evaluation, evaluate, threshold_for_budget, threshold_for_precision
from lakehouse.settings import TrainingSettings

if TYPE_CHECKING:
    from pyspark.ml import Pipeline, PipelineModel
    from pyspark.sql import DataFrame

LABEL = "is_fraud"
MISSING_SENTINEL = -1.0
#: The columns evaluation reads besides the score (never features).
EVALUATION_COLUMNS = ("transaction_id", "user_id", "event_date", "amount", "is_fraud", "fraud_scenario")


@dataclass(frozen=True)
class TimeSplit:
    train_from: date
    train_to: date  # inclusive
    validation_from: date
    validation_to: date  # inclusive

    def describe(self) -> str:
        return f"train {self.train_from}..{self.train_to}, validation {self.validation_from}..{self.validation_to}"


def time_split(first: date, last: date, training: TrainingSettings) -> TimeSplit:
    """Validation = the last ``validation_days`` up to ``last``; a ``gap_days`` gap before it;
    training = everything from ``first`` up to the gap."""
    validation_from = last - timedelta(days=training.validation_days - 1)
    train_to = validation_from - timedelta(days=training.gap_days + 1)
    if train_to < first:
        raise ValueError(
            f"not enough days between {first} and {last} for a training window, a {training.gap_days}-day gap "
            f"and {training.validation_days} validation days"
        )
    return TimeSplit(first, train_to, validation_from, last)


def split_frames(features: DataFrame, split: TimeSplit) -> tuple[DataFrame, DataFrame]:
    from pyspark.sql import functions as F

    day = F.col("event_date")
    train = features.where((day >= F.lit(split.train_from)) & (day <= F.lit(split.train_to)))
    validation = features.where((day >= F.lit(split.validation_from)) & (day <= F.lit(split.validation_to)))
    return train, validation


def with_class_weight(train: DataFrame, positive_weight: float | str) -> tuple[DataFrame, float]:
    """Adds ``weight``: 1 for legitimate rows, the positive weight for frauds ("balanced": the
    negative/positive ratio, so both classes weigh the same in total)."""
    from pyspark.sql import functions as F

    if positive_weight == "balanced":
        counts = {row[LABEL]: row["count"] for row in train.groupBy(LABEL).count().collect()}
        positives, negatives = counts.get(True, 0), counts.get(False, 0)
        if positives == 0:
            raise ValueError("the training window holds no fraud: nothing to learn from")
        weight = negatives / positives
    else:
        weight = float(positive_weight)
    return train.withColumn("weight", F.when(F.col(LABEL), F.lit(weight)).otherwise(F.lit(1.0))), weight


def make_pipeline(
    training: TrainingSettings,
    *,
    numeric: tuple[str, ...] = NUMERIC_FEATURES,
    categorical: tuple[str, ...] = CATEGORICAL_FEATURES,
    algorithm: str | None = None,
    calibrated: bool = False,
) -> Pipeline:
    """Fill nulls (sentinel + indicator) → index and one-hot the categories → assemble → (scale, for
    logistic regression) → the configured classifier. ``calibrated``: the classifier writes its
    probability under :data:`~lakehouse.ml.calibration.BASE_PROBABILITY`, for the calibrator that
    :func:`~lakehouse.ml.calibration.calibrate` appends once the pipeline is fitted."""
    from pyspark.ml import Pipeline
    from pyspark.ml.classification import GBTClassifier, LogisticRegression, RandomForestClassifier
    from pyspark.ml.feature import OneHotEncoder, SQLTransformer, StandardScaler, StringIndexer, VectorAssembler

    algorithm = algorithm or training.algorithm
    # A missing value means something here (no history yet, an online merchant): keep it as an
    # indicator next to a sentinel rather than imputing a typical value. SQLTransformer is saved
    # with the model by Spark's own writer, so scoring fills exactly as training did.
    filled = [f"{c}__filled" for c in numeric]
    missing = [f"{c}__missing" for c in numeric]
    fill_sql = ", ".join(
        f"coalesce(CAST(`{c}` AS DOUBLE), {MISSING_SENTINEL}) AS `{c}__filled`, "
        f"CAST(`{c}` IS NULL AS DOUBLE) AS `{c}__missing`"
        for c in numeric
    )
    stages = [SQLTransformer(statement=f"SELECT *, {fill_sql} FROM __THIS__")]
    encoded = []
    for column in categorical:
        stages += [
            StringIndexer(inputCol=column, outputCol=f"{column}__index", handleInvalid="keep"),
            OneHotEncoder(inputCol=f"{column}__index", outputCol=f"{column}__onehot", handleInvalid="keep"),
        ]
        encoded.append(f"{column}__onehot")
    scaled = algorithm == "logistic_regression"  # trees need no scaling
    stages.append(
        VectorAssembler(
            inputCols=filled + missing + encoded,
            outputCol="features_raw" if scaled else "features",
            handleInvalid="keep",
        )
    )
    common = {"labelCol": "label", "featuresCol": "features", "weightCol": "weight"}
    if scaled:
        stages.append(StandardScaler(inputCol="features_raw", outputCol="features", withMean=True, withStd=True))
        p = training.logistic_regression
        classifier = LogisticRegression(
            maxIter=p.max_iter, regParam=p.reg_param, elasticNetParam=p.elastic_net_param, **common
        )
    else:
        if algorithm == "gbt":
            p = training.gbt
            classifier = GBTClassifier(
                maxIter=p.max_iter,
                maxDepth=p.max_depth,
                stepSize=p.step_size,
                subsamplingRate=p.subsampling_rate,
                seed=training.seed,
                **common,
            )
        elif algorithm == "random_forest":
            p = training.random_forest
            classifier = RandomForestClassifier(
                numTrees=p.num_trees,
                maxDepth=p.max_depth,
                subsamplingRate=p.subsampling_rate,
                seed=training.seed,
                **common,
            )
        else:
            raise ValueError(f"training.algorithm: unknown {algorithm!r} (gbt, random_forest, logistic_regression)")
    if calibrated:  # (GBTClassifier takes no probabilityCol argument: the setters serve all three)
        classifier.setProbabilityCol(BASE_PROBABILITY).setPredictionCol(BASE_PREDICTION)
    stages.append(classifier)
    return Pipeline(stages=stages)


def with_label(df: DataFrame) -> DataFrame:
    from pyspark.sql import functions as F

    return df.withColumn("label", F.col(LABEL).cast("double"))


def scored(model: PipelineModel, df: DataFrame) -> DataFrame:
    """The model's fraud probability as ``score`` (a double in [0, 1])."""
    from pyspark.ml.functions import vector_to_array
    from pyspark.sql import functions as F

    return model.transform(df).withColumn("score", vector_to_array(F.col("probability")).getItem(1))


def clear_of_scores(score: np.ndarray, threshold: float) -> float:
    """The same alerts on this window, with the threshold half-way between the scores on either side
    of it: no score sits on it, so a rounding difference of 1e-16 between two ways of computing a
    score (MLlib's and the compiled model's, :mod:`lakehouse.ml.compiled`) cannot flip a decision."""
    score = np.asarray(score, float)
    above, below = score[score >= threshold], score[score < threshold]
    if not len(above):
        return threshold  # nothing alerts here: no score on it either
    if not len(below):
        return float(max(0.0, above.min() - 1e-6))  # everything alerts: stay just under the lowest score
    return float((above.min() + below.max()) / 2)


@dataclass(frozen=True)
class ScoredWindow:
    """One window's labels, scores and evaluation columns, on the driver (a validation window is
    small: it is only read to compute metrics)."""

    y: np.ndarray
    score: np.ndarray
    day: np.ndarray
    user: np.ndarray
    amount: np.ndarray
    scenario: np.ndarray

    @classmethod
    def collect(cls, scored_df: DataFrame) -> ScoredWindow:
        frame = scored_df.select(*EVALUATION_COLUMNS, "score").toPandas()
        return cls(
            y=frame["is_fraud"].fillna(False).to_numpy(bool),
            score=frame["score"].to_numpy(float),
            day=frame["event_date"].astype(str).to_numpy(),
            user=frame["user_id"].to_numpy(),
            amount=frame["amount"].to_numpy(float),
            scenario=frame["fraud_scenario"].to_numpy(object),
        )

    def days(self) -> int:
        return max(1, len(np.unique(self.day)))

    def choose_threshold(self, training: TrainingSettings) -> float:
        target = training.threshold
        if target.target == "precision":
            chosen = threshold_for_precision(self.y, self.score, target.precision)
        else:
            chosen = threshold_for_budget(self.score, self.days(), target.daily_alerts)
        return clear_of_scores(self.score, chosen)

    def evaluate(self, threshold: float, training: TrainingSettings) -> Evaluation:
        return evaluate(
            self.y,
            self.score,
            threshold=threshold,
            day=self.day,
            user=self.user,
            amount=self.amount,
            scenario=self.scenario,
            k=training.threshold.daily_alerts,
        )


def feature_importances(model: PipelineModel, scored_df: DataFrame, top: int = 20) -> list[tuple[str, float]]:
    """Importance per assembled slot (trees: featureImportances; logistic regression: |coefficient|
    on standardised inputs), named from the assembler's metadata, largest first."""
    classifier = base_classifier(model)
    if hasattr(classifier, "featureImportances"):
        weights = classifier.featureImportances.toArray()
    else:
        weights = np.abs(classifier.coefficients.toArray())
    column = "features_raw" if "features_raw" in scored_df.columns else "features"
    attrs = scored_df.schema[column].metadata.get("ml_attr", {}).get("attrs", {})
    names = {a["idx"]: a["name"] for group in attrs.values() for a in group}
    pairs = [
        (names.get(i, f"slot {i}").replace("__filled", "").replace("__missing", " (missing)"), float(w))
        for i, w in enumerate(weights)
    ]
    return sorted(pairs, key=lambda p: -p[1])[:top]
