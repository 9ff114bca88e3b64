"""The scorer's per-event work after the history step, in numpy and pandas: table features from
the in-memory dimension snapshot, the compiled champion, the alert decision, the reasons and the
output records. It runs inside the scorer's stateful step (on the executors), so a micro-batch
plans no Spark join and calls no MLlib ``transform``.

Every piece is the twin of a Spark expression that training and the offline path use, with a
parity test each: :func:`lakehouse.features.dimensions.table_features` (``enrich``), the compiled
model (MLlib's scores, verified per version within 1e-9), :func:`reasons` (the Spark SQL of
:func:`lakehouse.ml.explain.reasons`, text included) and :func:`alert_value` (``to_json`` of the
alert's fields, as :func:`lakehouse.scoring.scorer.alert_records` wrote it before).

Two records leave per scored transaction: one for the scored-rows topic (every column of
``gold.scored_transactions`` but the landing query's own ``run_id`` and ``batch_id``; times as
epoch microseconds, so nothing is lost to a text format) and, for an alert, one for
``fraud_alerts``.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np

from lakehouse.contract.alerts import ALERT_FIELDS, alert_id
from lakehouse.contract.features import FEATURES, NUMERIC_FEATURES
from lakehouse.features.dimensions import Snapshot, table_features
from lakehouse.ml.explain import PERCENTILES, RARE, VERY_RARE, Profile

if TYPE_CHECKING:
    import pandas as pd

    from lakehouse.ml.compiled import CompiledModel

_LABELS = {f.name: f.doc.split(";")[0].rstrip(".") for f in FEATURES}
_DECIMALS = {f.name: 0 if f.kind in ("long", "int") else 2 for f in FEATURES}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: The scored-rows record's time columns, sent as epoch microseconds (dates: days since the epoch).
MICROS_COLUMNS = ("event_time", "transaction_created_at", "scored_at")
DAYS_COLUMNS = ("event_date",)


@dataclass(frozen=True)
class ServingModel:
    """What a scorer task scores with: one registry version in its compiled form."""

    version: int
    threshold: float
    compiled: CompiledModel
    profile: Profile
    top_reasons: int


def model_inputs(frame: pd.DataFrame, compiled: CompiledModel):
    """The compiled model's inputs from feature columns in nullable pandas arrays (null = NA)."""
    numeric = {}
    for name in compiled.numeric:
        column = frame[name]
        missing = column.isna().to_numpy(bool)
        values = column.astype("Float64").to_numpy(np.float64, na_value=0.0)
        numeric[name] = (values, missing)
    categorical = {
        c.column: np.array([None if v is None or v != v else v for v in frame[c.column].tolist()], dtype=object)
        for c in compiled.categorical
    }
    return numeric, categorical


def _bounds(p01, p05, p95, p99) -> tuple:
    return ((RARE, p95, True), (VERY_RARE, p99, True), (RARE, p05, False), (VERY_RARE, p01, False))


def number_text(value: float, name: str) -> str:
    """Spark's ``format_number`` (Java's DecimalFormat: grouping, half-even on the exact binary value)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "∞" if value > 0 else "-∞"
    return f"{value:,.{_DECIMALS.get(name, 2)}f}"


def reasons(values: dict[str, float | None], profile: Profile, top: int) -> list[dict]:
    """One row's reasons: the twin of :func:`lakehouse.ml.explain.reasons` (same weights, order and words)."""
    candidates = []
    for name in NUMERIC_FEATURES:
        weight = profile.importance.get(name, 0.0)
        p01, p05, p50, p95, p99 = profile.percentiles.get(name, [None] * len(PERCENTILES))
        value = values.get(name)
        if weight <= 0 or p50 is None or value is None:
            continue
        rarity, words = 0, ""
        # Later bounds win, as in the Spark expression's chain of when(...).otherwise(...).
        for level, bound, higher in _bounds(p01, p05, p95, p99):
            spread = bound > p50 if higher else bound < p50  # a value equal to the usual one is never rare
            # Spark orders NaN above every number: a NaN value is beyond any upper bound.
            beyond = (math.isnan(value) or value > bound) if higher else (not math.isnan(value) and value < bound)
            if spread and beyond:
                share = {RARE: 95, VERY_RARE: 99}[level]
                rarity, words = level, f"; {'higher' if higher else 'lower'} than {share}% of legitimate payments"
        text = f"{_LABELS[name]}: {number_text(value, name)} (typical {number_text(p50, name)}{words})"
        candidates.append((weight * rarity + weight / 1000, name, value, text))
    candidates.sort(key=lambda c: (c[0], c[1]), reverse=True)
    return [{"feature": name, "value": value, "text": text} for _, name, value, text in candidates[:top]]


def iso_millis(micros: int | None) -> str | None:
    """Spark's JSON text of a timestamp in UTC: ``2026-11-30T08:12:03.120Z``."""
    if micros is None:
        return None
    moment = _EPOCH + timedelta(microseconds=int(micros))
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _json_number(value):
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")  # as Spark's to_json
    return value


def alert_value(row: dict) -> str:
    """The alert record's JSON (:data:`lakehouse.contract.alerts.ALERT_FIELDS`, in order)."""
    out = {}
    for name in ALERT_FIELDS:
        if name == "emitted_at":
            out[name] = iso_millis(row["scored_at"])
        elif name in MICROS_COLUMNS:
            out[name] = iso_millis(row[name])
        elif name == "reasons":
            out[name] = [{**r, "value": _json_number(r["value"])} for r in row[name]]
        else:
            out[name] = _json_number(row[name])
    return json.dumps(out, separators=(",", ":"), allow_nan=False)


def score_state_rows(
    state: pd.DataFrame,
    snapshot: Snapshot,
    model: ServingModel,
    *,
    feedback_delay_days: int,
    scored_at_us: int,
    timings: dict[str, float] | None = None,
) -> tuple[pd.DataFrame, np.ndarray, list[dict]]:
    """Accepted state rows (with ``kafka_timestamp``) → (their feature rows, their scores, the
    scored rows as dicts: the columns of ``gold.scored_transactions`` but ``run_id``/``batch_id``).
    ``timings`` (when given) gains the seconds spent on ``features``, ``model`` and ``reasons``."""
    clock = time.perf_counter
    began = clock()
    features = table_features(state, snapshot, feedback_delay_days=feedback_delay_days)
    featured = clock()
    score = model.compiled.score(*model_inputs(features, model.compiled))
    scored = clock()
    alert = score >= model.threshold
    time_us = state["time_us"].to_numpy(np.int64)
    created_us = _micros(state["kafka_timestamp"])
    alerts = np.flatnonzero(alert)
    numeric = {
        name: features[name].iloc[alerts].astype("Float64").to_numpy(object, na_value=None) for name in NUMERIC_FEATURES
    }
    explained = {
        int(row): reasons({n: numeric[n][i] for n in NUMERIC_FEATURES}, model.profile, model.top_reasons)
        for i, row in enumerate(alerts)
    }
    reasoned = clock()
    rows = []
    columns = {c: features[c].tolist() for c in ("transaction_id", "user_id", "merchant_id", "currency")}
    amounts = features["amount"].astype("Float64").to_numpy(object, na_value=None)
    partitions = features["kafka_partition"].to_numpy(np.int64)
    offsets = features["kafka_offset"].to_numpy(np.int64)
    for i in range(len(state)):
        tx = columns["transaction_id"][i]
        is_alert = bool(alert[i])
        rows.append(
            {
                "transaction_id": tx,
                "user_id": columns["user_id"][i],
                "merchant_id": columns["merchant_id"][i],
                "amount": amounts[i],
                "currency": columns["currency"][i],
                "event_time": int(time_us[i]),
                "event_date": int(time_us[i] // 86_400_000_000),
                "transaction_created_at": created_us[i],
                "kafka_partition": int(partitions[i]),
                "kafka_offset": int(offsets[i]),
                "score": float(score[i]),
                "threshold": model.threshold,
                "model_version": model.version,
                "is_alert": is_alert,
                "alert_id": alert_id(tx) if is_alert else None,
                "reasons": explained.get(i),
                "scored_at": scored_at_us,
            }
        )
    if timings is not None:
        timings["features"] = timings.get("features", 0.0) + featured - began
        timings["model"] = timings.get("model", 0.0) + scored - featured
        timings["reasons"] = timings.get("reasons", 0.0) + reasoned - scored
    return features, score, rows


def _micros(times: pd.Series) -> list[int | None]:
    """Timestamps (tz-aware or naive UTC) → epoch microseconds, None where missing."""
    import pandas as pd

    out: list[int | None] = []
    for value in times.tolist():
        if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
            out.append(None)
            continue
        stamp = pd.Timestamp(value)
        stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
        out.append(stamp.value // 1000)
    return out


def scored_value(row: dict) -> str:
    """The scored-rows record's JSON (times as epoch microseconds, dates as days)."""
    out = dict(row)
    if out["reasons"] is not None:
        out["reasons"] = [{**r, "value": _json_number(r["value"])} for r in out["reasons"]]
    out["amount"] = _json_number(out["amount"])
    out["score"] = _json_number(out["score"])
    return json.dumps(out, separators=(",", ":"), allow_nan=False)
