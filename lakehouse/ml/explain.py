"""Reasons for an alert: the features that drove its score, with their values, in words.

MLlib gives no per-row attributions for trees, so the reasons combine two things the model and
the data do give:

- how much the model relies on a feature: its importance (trees) or |coefficient| on
  standardised inputs (logistic regression), the value slot and the missing indicator together;
- how unusual the transaction's value is among legitimate payments: its place against the
  feature's 1st, 5th, 50th, 95th and 99th percentiles (the *profile*, learnt once per model
  version from a sample of the feature table and kept as a registry tag).

A feature's weight is importance x rarity (3 beyond the 1st/99th percentile, 2 beyond the
5th/95th, else 0), plus a thousandth of its importance so that, when nothing is unusual, the
most important features are named. The top ``scoring.top_reasons`` come out as
``{feature, value, text}``, e.g. *"Amount / the user's 30-day mean amount: 14.20 (typical 0.98;
higher than 99% of legitimate payments)"*. Computed in Spark SQL, for alert rows only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lakehouse.contract.features import FEATURES, NUMERIC_FEATURES

if TYPE_CHECKING:
    from pyspark.ml import PipelineModel
    from pyspark.sql import Column, DataFrame

PROFILE_TAG = "explain_profile"  # the registry tag holding a version's profile
PERCENTILES = (0.01, 0.05, 0.5, 0.95, 0.99)
RARE, VERY_RARE = 2, 3
_LABELS = {f.name: f.doc.split(";")[0].rstrip(".") for f in FEATURES}
_DECIMALS = {f.name: 0 if f.kind in ("long", "int") else 2 for f in FEATURES}


@dataclass(frozen=True)
class Profile:
    """Per numeric feature: the model's reliance on it and its percentiles among legitimate rows."""

    importance: dict[str, float]
    percentiles: dict[str, list[float | None]]  # feature → values at PERCENTILES

    def to_json(self) -> str:
        return json.dumps({"importance": self.importance, "percentiles": self.percentiles}, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Profile:
        data = json.loads(text)
        return cls(data["importance"], data["percentiles"])


def feature_reliance(model: PipelineModel, sample: DataFrame) -> dict[str, float]:
    """The model's importance per numeric feature (value slot + missing indicator), summing to 1."""
    from lakehouse.ml.pipeline import feature_importances

    slots = feature_importances(model, model.transform(sample), top=10_000)
    reliance = dict.fromkeys(NUMERIC_FEATURES, 0.0)
    for name, weight in slots:
        base = name.removesuffix(" (missing)")
        if base in reliance:
            reliance[base] += weight
    total = sum(reliance.values()) or 1.0
    return {name: weight / total for name, weight in reliance.items()}


def learn_profile(model: PipelineModel, features: DataFrame, *, rows: int, seed: int = 7) -> Profile:
    """The profile of a model over a feature table (legitimate rows; every row when unlabelled)."""
    from pyspark.sql import functions as F

    legitimate = (
        features.where(~F.coalesce(F.col("is_fraud"), F.lit(False))) if "is_fraud" in features.columns else features
    )
    total = legitimate.count()
    sample = legitimate.sample(fraction=min(1.0, rows / total), seed=seed) if total > rows else legitimate
    numeric = sample.select(*[F.col(c).cast("double").alias(c) for c in NUMERIC_FEATURES])
    quantiles = numeric.approxQuantile(list(NUMERIC_FEATURES), list(PERCENTILES), 0.001)
    return Profile(
        importance=feature_reliance(model, features.limit(1)),
        percentiles={
            name: [float(v) for v in q] if q else [None] * len(PERCENTILES)
            for name, q in zip(NUMERIC_FEATURES, quantiles, strict=True)
        },
    )


def _number(value: Column, name: str) -> Column:
    from pyspark.sql import functions as F

    return F.format_number(value, _DECIMALS.get(name, 2))


def reasons(profile: Profile, top: int) -> Column:
    """ARRAY<STRUCT<feature, value, text>>: the ``top`` reasons of each row (see the module doc)."""
    from pyspark.sql import functions as F

    candidates = []
    for name in NUMERIC_FEATURES:
        weight = profile.importance.get(name, 0.0)
        p01, p05, p50, p95, p99 = profile.percentiles.get(name, [None] * 5)
        if weight <= 0 or p50 is None:
            continue
        value = F.col(name).cast("double")
        rarity = F.lit(0)
        words = F.lit("")
        # Strict comparisons against a spread that exists: a value equal to the usual one is never rare.
        for level, bound, higher in (
            (RARE, p95, True),
            (VERY_RARE, p99, True),
            (RARE, p05, False),
            (VERY_RARE, p01, False),
        ):
            if (higher and bound > p50) or (not higher and bound < p50):
                beyond = value > F.lit(bound) if higher else value < F.lit(bound)
                share = {RARE: 95, VERY_RARE: 99}[level]
                rarity = F.when(beyond, F.lit(level)).otherwise(rarity)
                words = F.when(
                    beyond, F.lit(f"; {'higher' if higher else 'lower'} than {share}% of legitimate payments")
                ).otherwise(words)
        text = F.concat(
            F.lit(f"{_LABELS[name]}: "),
            _number(value, name),
            F.lit(" (typical "),
            _number(F.lit(p50), name),
            words,
            F.lit(")"),
        )
        candidates.append(
            F.when(
                value.isNotNull(),
                F.struct(
                    (F.lit(weight) * rarity + F.lit(weight / 1000)).alias("weight"),
                    F.lit(name).alias("feature"),
                    value.alias("value"),
                    text.alias("text"),
                ),
            )
        )
    if not candidates:
        return F.array().cast("array<struct<feature:string,value:double,text:string>>")
    ranked = F.sort_array(F.filter(F.array(*candidates), lambda c: c.isNotNull()), asc=False)
    return F.transform(
        F.slice(ranked, 1, top),
        lambda c: F.struct(c["feature"].alias("feature"), c["value"].alias("value"), c["text"].alias("text")),
    )
