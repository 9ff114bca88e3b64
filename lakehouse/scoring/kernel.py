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
from typing import TYPE_CHECKING, Any

import numpy as np

from lakehouse.contract.alerts import ALERT_FIELDS, alert_id
from lakehouse.contract.features import FEATURES, NUMERIC_FEATURES
from lakehouse.features.columns import Columns, array, ints, objects
from lakehouse.features.dimensions import Snapshot, table_features
from lakehouse.ml.explain import PERCENTILES, RARE, VERY_RARE, Profile

if TYPE_CHECKING:
    from collections.abc import Sequence

    import pandas as pd

    from lakehouse.ml.compiled import CompiledModel

_LABELS = {f.name: f.doc.split(";")[0].rstrip(".") for f in FEATURES}
_DECIMALS = {f.name: 0 if f.kind in ("long", "int") else 2 for f in FEATURES}
#: The shadow version's fields of a scored-rows record (only with a shadow version).
SHADOW_FIELDS = ("shadow_model_version", "shadow_score", "shadow_threshold", "shadow_is_alert")
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


def model_inputs(features: Columns, compiled: CompiledModel, numbers: dict[str, tuple[np.ndarray, np.ndarray]]):
    """The compiled model's inputs: its numeric columns from ``numbers`` (:func:`numbers_of`), its
    categorical ones from the feature columns."""
    numeric = {name: numbers[name] for name in compiled.numeric}
    categorical = {
        c.column: np.array(
            [None if v is None or v != v else v for v in array(features[c.column]).tolist()], dtype=object
        )
        for c in compiled.categorical
    }
    return numeric, categorical


def numbers_of(features: Columns, names) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Numeric feature columns (nullable pandas arrays, as :func:`table_features` makes them) as
    (float64 values, 0.0 where null; the null mask), converted once for the model, a shadow model
    and the reasons."""
    out = {}
    for name in names:
        column = array(features[name])
        out[name] = (column.to_numpy(np.float64, na_value=0.0), np.asarray(column.isna(), bool))
    return out


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
    return reasons_of_rows({name: [values.get(name)] for name in NUMERIC_FEATURES}, profile, top)[0]


def reasons_of_rows(values: dict[str, Sequence[float | None]], profile: Profile, top: int) -> list[list[dict]]:
    """The reasons of many rows at once (``values``: per numeric feature, one value or None per
    row). Rarity and ranking are array operations over rows x features; only each row's ``top``
    reasons are put in words."""
    rows = len(next(iter(values.values()), []))
    names, keys, words_at, columns = [], [], [], []
    for name in sorted(NUMERIC_FEATURES, reverse=True):  # ties rank by name, descending, as in Spark
        weight = profile.importance.get(name, 0.0)
        p01, p05, p50, p95, p99 = profile.percentiles.get(name, [None] * len(PERCENTILES))
        if weight <= 0 or p50 is None:
            continue
        column = values[name]
        present = np.fromiter((v is not None for v in column), bool, rows)
        number = np.fromiter((np.nan if v is None else v for v in column), np.float64, rows)
        nan = np.isnan(number) & present
        rarity, words = np.zeros(rows), np.zeros(rows, np.int8)
        # Later bounds win, as in the Spark expression's chain of when(...).otherwise(...).
        for at, (level, bound, higher) in enumerate(_bounds(p01, p05, p95, p99), start=1):
            if not (bound > p50 if higher else bound < p50):  # a value equal to the usual one is never rare
                continue
            with np.errstate(invalid="ignore"):
                # Spark orders NaN above every number: a NaN value is beyond any upper bound.
                beyond = (nan | (number > bound)) if higher else (~nan & (number < bound))
            beyond &= present
            rarity, words = np.where(beyond, level, rarity), np.where(beyond, at, words)
        names.append((name, p50))
        keys.append(np.where(present, weight * rarity + weight / 1000, -np.inf))
        words_at.append(words)
        columns.append(column)
    if not names:
        return [[] for _ in range(rows)]
    key = np.column_stack(keys)
    order = np.argsort(-key, axis=1, kind="stable")[:, :top]
    chosen = np.take_along_axis(key, order, axis=1) > -np.inf
    out = []
    for row in range(rows):
        found = []
        for j in order[row][chosen[row]]:
            name, p50 = names[j]
            value = columns[j][row]
            words = _WORDS[words_at[j][row]]
            text = f"{_LABELS[name]}: {number_text(value, name)} (typical {number_text(p50, name)}{words})"
            found.append({"feature": name, "value": value, "text": text})
        out.append(found)
    return out


#: The words of each bound in :func:`_bounds` order (index 0: not rare).
_WORDS = (
    "",
    "; higher than 95% of legitimate payments",
    "; higher than 99% of legitimate payments",
    "; lower than 95% of legitimate payments",
    "; lower than 99% of legitimate payments",
)


def iso_millis(micros: Sequence[int | None]) -> list[str | None]:
    """Spark's JSON text of timestamps in UTC (``2026-11-30T08:12:03.120Z``) from epoch microseconds."""
    missing = np.fromiter((m is None for m in micros), bool, len(micros))
    stamps = np.array([0 if m is None else m for m in micros], np.int64).astype("datetime64[us]")
    text = np.char.add(np.datetime_as_string(stamps.astype("datetime64[ms]"), unit="ms"), "Z").tolist()
    return [None if gone else t for gone, t in zip(missing.tolist(), text, strict=True)]


def _json_number(value):
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")  # as Spark's to_json
    return value


def _json_reasons(found: list[dict] | None) -> list[dict] | None:
    return None if found is None else [{**r, "value": _json_number(r["value"])} for r in found]


def alert_values(rows: Sequence[dict]) -> list[str]:
    """The alert records' JSON (:data:`lakehouse.contract.alerts.ALERT_FIELDS`, in order); times
    are put in words for all the rows at once."""
    times = {name: iso_millis([row[name] for row in rows]) for name in (*MICROS_COLUMNS[:2], "scored_at")}
    times["emitted_at"] = times.pop("scored_at")
    out = []
    for i, row in enumerate(rows):
        value = {}
        for name in ALERT_FIELDS:
            if name in times:
                value[name] = times[name][i]
            elif name == "reasons":
                value[name] = _json_reasons(row[name])
            else:
                value[name] = _json_number(row[name])
        out.append(json.dumps(value, separators=(",", ":"), allow_nan=False))
    return out


def alert_value(row: dict) -> str:
    """One alert record's JSON (see :func:`alert_values`)."""
    return alert_values([row])[0]


def kafka_records(rows: list[dict], scored_topic: str, alerts_topic: str) -> tuple[list[str], list[str], list[str]]:
    """Scored rows → Kafka records (topics, keys, values): one on the scored-rows topic per row
    (keyed by transaction) and one on the alert topic per alert (keyed by user)."""
    topics, keys = [scored_topic] * len(rows), [row["transaction_id"] for row in rows]
    values = [scored_value(row) for row in rows]
    alerted = [row for row in rows if row["is_alert"]]
    topics += [alerts_topic] * len(alerted)
    keys += [row["user_id"] for row in alerted]
    values += alert_values(alerted)
    return topics, keys, values


def score_state_rows(
    state: Columns,
    snapshot: Snapshot,
    model: ServingModel,
    *,
    feedback_delay_days: int,
    scored_at_us: int,
    timings: dict[str, float] | None = None,
    shadow: ServingModel | None = None,
) -> tuple[dict[str, Any], np.ndarray, list[dict]]:
    """Accepted state rows (with ``kafka_timestamp``) → (their feature rows, their scores, the
    scored rows as dicts: the columns of ``gold.scored_transactions`` but ``run_id``/``batch_id``,
    and with a ``shadow`` model its score and decision, :data:`SHADOW_FIELDS`, which never alert).
    ``timings`` (when given) gains the seconds spent on ``features``, ``model`` and ``reasons``."""
    clock = time.perf_counter
    began = clock()
    features = table_features(state, snapshot, feedback_delay_days=feedback_delay_days)
    featured = clock()
    used = {*model.compiled.numeric, *(shadow.compiled.numeric if shadow is not None else ())}
    numbers = numbers_of(features, used)
    score = model.compiled.score(*model_inputs(features, model.compiled, numbers))
    shadowed = {}
    if shadow is not None:
        shadow_score = shadow.compiled.score(*model_inputs(features, shadow.compiled, numbers))
        shadowed = {
            "shadow_model_version": [shadow.version] * len(shadow_score),
            "shadow_score": shadow_score.tolist(),
            "shadow_threshold": [shadow.threshold] * len(shadow_score),
            "shadow_is_alert": (shadow_score >= shadow.threshold).tolist(),
        }
    scored = clock()
    alert = score >= model.threshold
    time_us = ints(state["time_us"])
    alerts = np.flatnonzero(alert)
    explained = {}
    if len(alerts):  # most calls of a per-event caller have none
        numbers |= numbers_of(features, [name for name in NUMERIC_FEATURES if name not in numbers])
        numeric = {}
        for name in NUMERIC_FEATURES:
            values, missing = numbers[name]
            numeric[name] = [
                None if gone else v for v, gone in zip(values[alerts].tolist(), missing[alerts].tolist(), strict=True)
            ]
        explained = dict(zip(alerts.tolist(), reasons_of_rows(numeric, model.profile, model.top_reasons), strict=True))
    reasoned = clock()
    columns = {
        "transaction_id": objects(features["transaction_id"]).tolist(),
        "user_id": objects(features["user_id"]).tolist(),
        "merchant_id": objects(features["merchant_id"]).tolist(),
        "amount": array(features["amount"]).to_numpy(object, na_value=None).tolist(),
        "currency": objects(features["currency"]).tolist(),
        "event_time": time_us.tolist(),
        "event_date": (time_us // 86_400_000_000).tolist(),
        "transaction_created_at": _micros(state["kafka_timestamp"]),
        "kafka_partition": ints(features["kafka_partition"]).tolist(),
        "kafka_offset": ints(features["kafka_offset"]).tolist(),
        "score": score.tolist(),
        **shadowed,
    }
    fixed = {"threshold": model.threshold, "model_version": model.version, "scored_at": scored_at_us}
    rows = []
    for i, values in enumerate(zip(*columns.values(), strict=True)):
        row = dict(zip(columns, values, strict=True))
        is_alert = i in explained
        row |= {"is_alert": is_alert, "alert_id": alert_id(row["transaction_id"]) if is_alert else None}
        rows.append(row | {"reasons": explained.get(i)} | fixed)
    if timings is not None:
        timings["features"] = timings.get("features", 0.0) + featured - began
        timings["model"] = timings.get("model", 0.0) + scored - featured
        timings["reasons"] = timings.get("reasons", 0.0) + reasoned - scored
    return features, score, rows


def _micros(times) -> list[int | None]:
    """Timestamps (a Series, tz-aware or naive UTC, or numpy ``datetime64``) → epoch
    microseconds, None where missing."""
    import pandas as pd

    if isinstance(times, np.ndarray) and times.dtype.kind == "M":
        stamps = times.astype("datetime64[us]")
        return [
            None if gone else m
            for gone, m in zip(np.isnat(stamps).tolist(), stamps.astype(np.int64).tolist(), strict=True)
        ]
    stamps = pd.to_datetime(times, utc=True)
    micros = stamps.dt.as_unit("us").array.asi8.tolist()
    return [None if gone else m for gone, m in zip(stamps.isna().tolist(), micros, strict=True)]


def poison_value(row: pd.Series, reason: str) -> str:
    """The scored-rows record of a transaction the scorer set aside (a poison record): its
    ``quarantine_reason`` and the row as the scorer saw it (for ``silver.quarantine``)."""
    import pandas as pd

    def plain(value):
        if value is None or (not isinstance(value, (list, np.ndarray)) and pd.isna(value)):
            return None
        if isinstance(value, pd.Timestamp):
            return value.isoformat()
        value = value.item() if isinstance(value, np.generic) else value
        return value if not isinstance(value, float) or np.isfinite(value) else str(value)

    record = {str(name): plain(value) for name, value in row.items()}
    return json.dumps({"quarantine_reason": reason, "record": record}, default=str, allow_nan=False)


def scored_value(row: dict) -> str:
    """The scored-rows record's JSON (times as epoch microseconds, dates as days)."""
    out = row | {
        "reasons": _json_reasons(row["reasons"]),
        "amount": _json_number(row["amount"]),
        "score": _json_number(row["score"]),
    }
    if "shadow_score" in row:
        out["shadow_score"] = _json_number(row["shadow_score"])
    return json.dumps(out, separators=(",", ":"), allow_nan=False)
