"""A registered MLlib pipeline compiled to numpy arrays, so the scorer can evaluate it inside its
own Python step instead of calling MLlib's ``transform`` (a Spark plan per micro-batch).

MLlib stays the trainer and the registry the single source of models: a compiled model is derived
from a registered version (:func:`lakehouse.ml.compiler.compile_pipeline`), stored next to it as plain JSON (no pickle),
and trusted only after :func:`verify` has shown that it gives MLlib's own scores on a window of
the feature table within :data:`TOLERANCE`, with the same alert decisions.

What is reproduced, stage by stage, exactly as Spark computes it:

- the fill of :func:`lakehouse.ml.pipeline.make_pipeline`: ``coalesce(CAST(x AS DOUBLE), -1.0)``
  and the ``x IS NULL`` indicator (a NaN is a value, not a null: it stays NaN, as in Spark);
- ``StringIndexer`` (``handleInvalid="keep"``: unseen labels and nulls take the extra index) and
  ``OneHotEncoder`` (its own output size; an index past it is all zeros);
- the ``VectorAssembler`` order;
- the classifier: gradient-boosted trees (``1 / (1 + exp(-2 * margin))``, the log-loss link),
  random forests (the mean of each tree's leaf class share) or logistic regression behind a
  ``StandardScaler``. Tree splits go left when ``x <= threshold`` (continuous; NaN goes right) or
  when ``x`` is one of the split's categories (the one-hot columns are binary categoricals);
- the calibrator, when the model has one (:mod:`lakehouse.ml.calibration`): the raw output for
  fraud (``rawPrediction[1]``) through ``1 / (1 + exp(-(a * r + b)))``, MLlib's one-input
  logistic regression.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from lakehouse.errors import FraudlakeError

if TYPE_CHECKING:
    import pyarrow as pa
    from pyspark.ml import PipelineModel

FORMAT = 1
#: Largest allowed difference between a compiled score and MLlib's.
TOLERANCE = 1e-9
_MISSING_SENTINEL = -1.0


class NotCompilable(FraudlakeError):
    """The pipeline holds a stage this compiler does not reproduce (it then scores with MLlib only)."""


@dataclass(frozen=True)
class Categorical:
    column: str
    labels: tuple[str, ...]
    width: int  # the one-hot vector's size

    @cached_property
    def _index(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.labels)}

    def encode(self, values: np.ndarray) -> np.ndarray:
        """Object array of strings/None → (rows, width) one-hot block."""
        index, unknown = self._index, len(self.labels)
        codes = np.fromiter(
            (index.get(v, unknown) if v is not None else unknown for v in values), np.int64, len(values)
        )
        block = np.zeros((len(values), self.width))
        inside = codes < self.width
        block[np.flatnonzero(inside), codes[inside]] = 1.0
        return block


@dataclass(frozen=True)
class Forest:
    """Trees flattened into one set of node arrays (``left < 0``: a leaf holding ``value``)."""

    roots: np.ndarray  # int64, one per tree
    feature: np.ndarray  # int64
    threshold: np.ndarray  # float64 (continuous splits)
    categories: np.ndarray  # int64 bit mask of the left categories (categorical splits), 0 otherwise
    categorical: np.ndarray  # bool
    left: np.ndarray  # int64
    right: np.ndarray  # int64
    value: np.ndarray  # float64
    depth: int

    def leaves(self, x: np.ndarray) -> np.ndarray:
        """(rows, trees) leaf values for the feature matrix ``x``."""
        rows = np.arange(len(x))[:, None]
        node = np.broadcast_to(self.roots, (len(x), len(self.roots))).copy()
        for _ in range(self.depth):
            inner = self.left[node] >= 0
            if not inner.any():
                break
            values = x[rows, self.feature[node]]
            continuous = values <= self.threshold[node]
            codes = np.where(np.isfinite(values) & (np.abs(values) < 2**62), values, -1).astype(np.int64)
            member = (codes >= 0) & (codes < 63) & (((self.categories[node] >> np.clip(codes, 0, 62)) & 1) == 1)
            go_left = np.where(self.categorical[node], member, continuous)
            node = np.where(inner, np.where(go_left, self.left[node], self.right[node]), node)
        return self.value[node]


@dataclass(frozen=True)
class CompiledModel:
    """See the module doc. ``score`` takes the feature columns and returns P(fraud) per row."""

    algorithm: str
    numeric: tuple[str, ...]
    categorical: tuple[Categorical, ...]
    forest: Forest | None = None
    weights: np.ndarray | None = None  # gbt: the tree weights
    coefficients: np.ndarray | None = None  # logistic regression (after scaling)
    intercept: float = 0.0
    scale_mean: np.ndarray | None = None
    scale_std: np.ndarray | None = None
    calibration: tuple[float, float] | None = None  # Platt scaling (a, b) of the raw output
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def columns(self) -> tuple[str, ...]:
        return self.numeric + tuple(c.column for c in self.categorical)

    def matrix(self, numeric: Mapping[str, tuple[np.ndarray, np.ndarray]], categorical: Mapping[str, np.ndarray]):
        """The assembled feature matrix. ``numeric[c]`` is (values as float64, is-null mask);
        ``categorical[c]`` an object array of strings or None."""
        filled = [np.where(numeric[c][1], _MISSING_SENTINEL, numeric[c][0]) for c in self.numeric]
        missing = [numeric[c][1].astype(np.float64) for c in self.numeric]
        blocks = [np.column_stack(filled + missing)] if self.numeric else []
        blocks += [c.encode(categorical[c.column]) for c in self.categorical]
        return np.hstack(blocks) if blocks else np.empty((0, 0))

    def raw_matrix(self, x: np.ndarray) -> np.ndarray:
        """The classifier's raw output for fraud (MLlib's ``rawPrediction[1]``): the margin of
        gradient-boosted trees and of logistic regression, the summed leaf shares of a forest."""
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):  # as the JVM: inf and NaN, no error
            if self.algorithm == "gbt":
                return self.forest.leaves(x) @ self.weights
            if self.algorithm == "random_forest":
                return self.forest.leaves(x).sum(axis=1)
            scaled = np.where(self.scale_std > 0, (x - self.scale_mean) / self.scale_std, 0.0)
            return scaled @ self.coefficients + self.intercept

    def score_matrix(self, x: np.ndarray) -> np.ndarray:
        raw = self.raw_matrix(x)
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
            if self.calibration is not None:
                slope, intercept = self.calibration
                return 1.0 / (1.0 + np.exp(-(raw * slope + intercept)))
            if self.algorithm == "gbt":
                return 1.0 / (1.0 + np.exp(-2.0 * raw))
            if self.algorithm == "random_forest":
                return raw / len(self.forest.roots)
            return 1.0 / (1.0 + np.exp(-raw))

    def score(self, numeric, categorical) -> np.ndarray:
        return self.score_matrix(self.matrix(numeric, categorical))

    def score_arrow(self, table: pa.Table | pa.RecordBatch) -> np.ndarray:
        """Scores for the rows of an Arrow table or batch holding the feature columns (Arrow keeps
        nulls apart from NaN, which pandas would not)."""
        return self.score(*arrow_inputs(table, self))

    # ------------------------------------------------------------------ storage (plain JSON)

    def to_json(self) -> str:
        out: dict[str, Any] = {
            "format": FORMAT,
            "algorithm": self.algorithm,
            "numeric": list(self.numeric),
            "categorical": [{"column": c.column, "labels": list(c.labels), "width": c.width} for c in self.categorical],
            "intercept": self.intercept,
            "meta": self.meta,
        }
        if self.calibration is not None:
            out["calibration"] = list(self.calibration)
        if self.forest is not None:
            f = self.forest
            out["forest"] = {
                "roots": f.roots.tolist(),
                "feature": f.feature.tolist(),
                "threshold": [_float_json(v) for v in f.threshold.tolist()],
                "categories": f.categories.tolist(),
                "categorical": f.categorical.tolist(),
                "left": f.left.tolist(),
                "right": f.right.tolist(),
                "value": f.value.tolist(),
                "depth": f.depth,
            }
        for name in ("weights", "coefficients", "scale_mean", "scale_std"):
            array = getattr(self, name)
            if array is not None:
                out[name] = array.tolist()
        return json.dumps(out)

    @classmethod
    def from_json(cls, text: str) -> CompiledModel:
        raw = json.loads(text)
        if raw.get("format") != FORMAT:
            raise NotCompilable(f"compiled model format {raw.get('format')!r}, expected {FORMAT}")
        forest = None
        if "forest" in raw:
            f = raw["forest"]
            forest = Forest(
                roots=np.asarray(f["roots"], np.int64),
                feature=np.asarray(f["feature"], np.int64),
                threshold=np.asarray([float(v) for v in f["threshold"]], np.float64),
                categories=np.asarray(f["categories"], np.int64),
                categorical=np.asarray(f["categorical"], bool),
                left=np.asarray(f["left"], np.int64),
                right=np.asarray(f["right"], np.int64),
                value=np.asarray(f["value"], np.float64),
                depth=int(f["depth"]),
            )
        arrays = {
            k: np.asarray(raw[k], np.float64)
            for k in ("weights", "coefficients", "scale_mean", "scale_std")
            if k in raw
        }
        return cls(
            algorithm=raw["algorithm"],
            numeric=tuple(raw["numeric"]),
            categorical=tuple(
                Categorical(c["column"], tuple(c["labels"]), int(c["width"])) for c in raw["categorical"]
            ),
            forest=forest,
            intercept=float(raw.get("intercept", 0.0)),
            calibration=tuple(float(v) for v in raw["calibration"]) if "calibration" in raw else None,
            meta=raw.get("meta", {}),
            **arrays,
        )


def _float_json(value: float) -> float | str:
    return value if math.isfinite(value) else repr(value)


def arrow_inputs(table, model: CompiledModel) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, np.ndarray]]:
    """The ``score`` inputs from an Arrow table or batch (nulls from the validity masks)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    numeric = {}
    for name in model.numeric:
        column = table.column(name)
        nulls = column.is_null()
        as_double = pc.cast(column, pa.float64()).fill_null(0.0)
        numeric[name] = (np.asarray(as_double, np.float64), np.asarray(nulls, bool))
    categorical = {c.column: np.asarray(table.column(c.column).to_pylist(), dtype=object) for c in model.categorical}
    return numeric, categorical


# --------------------------------------------------------------------------- verification


@dataclass(frozen=True)
class Verification:
    """A compiled model against MLlib on the same rows."""

    rows: int
    max_difference: float
    decisions_differ: int  # rows on different sides of the threshold (not counting the ties below)
    at_threshold: int = 0  # rows whose MLlib score is within TOLERANCE of the threshold

    @property
    def passed(self) -> bool:
        return self.max_difference <= TOLERANCE and self.decisions_differ == 0

    def describe(self) -> str:
        return (
            f"{self.rows} rows, largest score difference {self.max_difference:.3g} (allowed {TOLERANCE:g}), "
            f"{self.decisions_differ} alert decisions differ, {self.at_threshold} within {TOLERANCE:g} of the threshold"
        )


def verify(model: PipelineModel, compiled: CompiledModel, frame, threshold: float) -> Verification:
    """Score ``frame`` (feature rows) with MLlib and with ``compiled``; compare every row's score and
    alert decision."""
    from lakehouse.ml.pipeline import scored

    table = scored(model, frame).select(*compiled.columns, "score").toArrow()
    theirs = np.asarray(table.column("score").to_numpy(zero_copy_only=False), np.float64)
    mine = compiled.score_arrow(table)
    if not len(theirs):
        return Verification(0, 0.0, 0)
    # NaN on both sides agrees; NaN on one side only is an infinite difference.
    difference = np.where(np.isnan(mine) & np.isnan(theirs), 0.0, np.abs(mine - theirs))
    worst = float(np.nan_to_num(difference, nan=np.inf).max())
    # A score on the threshold itself is decided by the last bit of two engines' arithmetic (their
    # sums and exp round differently): such ties are counted apart. Thresholds are chosen clear of
    # every validation score (lakehouse.ml.pipeline.clear_of_scores), so there are none there.
    tie = np.abs(theirs - threshold) <= TOLERANCE
    differ = int(np.count_nonzero(((mine >= threshold) != (theirs >= threshold)) & ~tie))
    return Verification(len(theirs), worst, differ, int(np.count_nonzero(tie)))
