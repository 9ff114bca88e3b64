"""Training building blocks: the time split (never random, with a feedback gap), class weights,
and each configured MLlib pipeline on a small static DataFrame of feature rows."""

from __future__ import annotations

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


@pytest.mark.parametrize("algorithm", ["gbt", "random_forest", "logistic_regression"])
def test_pipeline_learns_a_separable_signal_with_class_weights(spark, settings, algorithm) -> None:
    from pyspark.sql import types as T

    kinds = {"double": T.DoubleType(), "long": T.LongType(), "int": T.IntegerType(), "string": T.StringType()}
    schema = T.StructType(
        [T.StructField(f.name, kinds[f.kind]) for f in FEATURES]
        + [
            T.StructField("transaction_id", T.StringType()),
            T.StructField("user_id", T.StringType()),
            T.StructField("event_date", T.DateType()),
            T.StructField("amount", T.DoubleType()),
            T.StructField("is_fraud", T.BooleanType()),
            T.StructField("fraud_scenario", T.StringType()),
        ]
    )
    frame = spark.createDataFrame(feature_rows(1200, seed=5), schema)
    split = time_split(date(2026, 10, 1), date(2026, 10, 30), settings.training)
    train, validation = split_frames(frame, split)
    train, weight = with_class_weight(with_label(train), "balanced")
    assert weight > 5  # about 92/8

    small = settings.training.model_copy(
        update={
            "gbt": settings.training.gbt.model_copy(update={"max_iter": 5}),
            "random_forest": settings.training.random_forest.model_copy(update={"num_trees": 10}),
        }
    )
    model = make_pipeline(small, algorithm=algorithm).fit(train)
    window = ScoredWindow.collect(scored(model, with_label(validation)))

    assert window.y.any() and window.score.min() >= 0 and window.score.max() <= 1
    assert average_precision(window.y, window.score) > 0.8
    threshold = window.choose_threshold(small)
    evaluation = window.evaluate(threshold, small)
    assert evaluation.alerts_per_day <= small.threshold.daily_alerts
    assert set(evaluation.recall_by_scenario) == {"amount_anomaly"}
