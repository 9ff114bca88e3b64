"""Labels that arrive late, as they do in life: which payments get a label event on
``fraud_labels``, from whom, and when.

A fraud is reported with probability ``labels.fraud_reported``, by chargeback
(``chargeback_share``: weeks later) or by the customer (days later); the delays are lognormal
around their medians with spread ``delay_sigma``, at least a minute and at most
``max_delay_days``. The frauds left are never known. A few legitimate payments
(``false_claim_rate``) are claimed as fraud all the same: a label is a report, not the truth,
which stays in the transaction's ``is_fraud`` for evaluation only. Analysts' decisions come
from the console, not from here.

Pure: the caller passes the random generator, so a simulation's seed fixes its labels.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lakehouse.settings import LabelsSettings
from lakehouse.simulator.entities import DAY_MS
from lakehouse.simulator.simulation import iso_ms
from lakehouse.simulator.traffic import TxBatch

MIN_DELAY_MS = 60_000


@dataclass(frozen=True)
class LabelEvents:
    """Label events as columns, sorted by ``reported_ms``."""

    transaction_id: np.ndarray  # object: str
    user: np.ndarray  # int: index of the user in the population
    ts_ms: np.ndarray  # the payment's event time
    reported_ms: np.ndarray
    label: np.ndarray  # object: "fraud" | "legitimate"
    source: np.ndarray  # object: "chargeback" | "customer_report"

    def __len__(self) -> int:
        return len(self.reported_ms)

    def take(self, index: np.ndarray) -> LabelEvents:
        return LabelEvents(*(getattr(self, f)[index] for f in self.__dataclass_fields__))

    def reported_by(self, until_ms: int) -> tuple[LabelEvents, LabelEvents]:
        """(the events reported before ``until_ms``, the rest): what is known at a time, and later."""
        cut = int(np.searchsorted(self.reported_ms, until_ms, side="left"))
        return self.take(np.arange(cut)), self.take(np.arange(cut, len(self)))


def label_events(batch: TxBatch, labels: LabelsSettings, rng: np.random.Generator) -> LabelEvents:
    """The label events that ``batch``'s payments will get (see module doc)."""
    n = len(batch)
    fraud = np.asarray(batch.is_fraud, dtype=bool)
    reported = fraud & (rng.random(n) < labels.fraud_reported)
    claimed = ~fraud & (rng.random(n) < labels.false_claim_rate)
    chargeback = rng.random(n) < labels.chargeback_share
    median_days = np.where(chargeback, labels.chargeback_days_median, labels.report_days_median)
    days = median_days * np.exp(labels.delay_sigma * rng.standard_normal(n))
    delay_ms = np.clip(days * DAY_MS, MIN_DELAY_MS, labels.max_delay_days * DAY_MS).astype(np.int64)
    chosen = np.flatnonzero(reported | claimed)
    reported_ms = batch.ts_ms[chosen].astype(np.int64) + delay_ms[chosen]
    order = np.argsort(reported_ms, kind="stable")
    chosen = chosen[order]
    return LabelEvents(
        transaction_id=batch.transaction_id[chosen],
        user=batch.user[chosen],
        ts_ms=batch.ts_ms[chosen].astype(np.int64),
        reported_ms=reported_ms[order],
        label=np.full(len(chosen), "fraud", dtype=object),
        source=np.where(chargeback[chosen], "chargeback", "customer_report").astype(object),
    )


def label_rng(traffic_seed: int, position: int) -> np.random.Generator:
    """The random generator of the labels of the payments from ``position`` on: a simulation's
    traffic seed fixes its labels, whoever draws them (the producer, the offline files)."""
    return np.random.default_rng([traffic_seed, position, 0x1ABE1])


def label_id(transaction_id: str, source: str, reported_ms: int) -> str:
    """A label event's id: the same report of the same payment gets the same id (a resend is a duplicate)."""
    return f"lbl-{transaction_id}-{source}-{reported_ms}"


def label_json(events: LabelEvents, user_ids: np.ndarray) -> list[bytes]:
    """One ``fraud_labels`` record per event (fields of
    :data:`lakehouse.contract.schemas.LABEL_EVENT_FIELDS`); ``user_ids`` by population index."""
    stamps = iso_ms(events.reported_ms).tolist()
    return [
        json.dumps(
            {
                "label_id": label_id(t, s, r),
                "transaction_id": t,
                "user_id": u,
                "label": lab,
                "source": s,
                "reported_at": at,
                "analyst": None,
                "note": None,
            },
            separators=(",", ":"),
        ).encode()
        for t, u, lab, s, r, at in zip(
            events.transaction_id.tolist(),
            user_ids[events.user].tolist(),
            events.label.tolist(),
            events.source.tolist(),
            events.reported_ms.tolist(),
            stamps,
            strict=True,
        )
    ]


class LabelQueue:
    """Label events made but not reported yet (their time is after the traffic sent so far). Kept
    in a file between runs when given one, so that a payment's chargeback comes in a later run."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self.pending = _empty()
        if path is not None and path.is_file():
            columns = json.loads(path.read_text())
            self.pending = LabelEvents(
                **{name: np.array(columns[name], dtype=_DTYPES[name]) for name in LabelEvents.__dataclass_fields__}
            )

    def add(self, events: LabelEvents) -> None:
        merged = LabelEvents(
            *(np.concatenate([getattr(self.pending, f), getattr(events, f)]) for f in LabelEvents.__dataclass_fields__)
        )
        self.pending = merged.take(np.argsort(merged.reported_ms, kind="stable"))

    def due(self, until_ms: int) -> LabelEvents:
        """Take the events reported before ``until_ms`` off the queue."""
        known, self.pending = self.pending.reported_by(until_ms)
        return known

    def save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        columns = {name: getattr(self.pending, name).tolist() for name in LabelEvents.__dataclass_fields__}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(columns))
        os.replace(tmp, self.path)


_DTYPES = {
    "transaction_id": object,
    "user": np.int64,
    "ts_ms": np.int64,
    "reported_ms": np.int64,
    "label": object,
    "source": object,
}


def _empty() -> LabelEvents:
    return LabelEvents(**{name: np.array([], dtype=kind) for name, kind in _DTYPES.items()})


def pending_labels_file(data_dir: Path) -> Path:
    """Where ``fraudlake produce`` keeps the labels not reported yet."""
    return data_dir / "producer" / "pending-labels.json"
