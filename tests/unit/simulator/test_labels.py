"""The simulator's late labels: who reports what, and when (no Kafka, no Spark)."""

from __future__ import annotations

import numpy as np
import pytest

from lakehouse.contract.schemas import LABEL_SOURCES, LABEL_VALUES
from lakehouse.settings import load_settings
from lakehouse.simulator.labels import DAY_MS, MIN_DELAY_MS, LabelQueue, label_events, label_id
from lakehouse.simulator.traffic import TxBatch

N, FRAUD_SHARE = 100_000, 0.05


@pytest.fixture(scope="module")
def labels():
    return load_settings("local").simulator.labels


@pytest.fixture(scope="module")
def batch() -> TxBatch:
    rng = np.random.default_rng(3)
    fraud = rng.random(N) < FRAUD_SHARE
    return TxBatch(
        transaction_id=np.array([f"tx-{i}" for i in range(N)], dtype=object),
        ts_ms=np.sort(rng.integers(1_780_000_000_000, 1_780_000_000_000 + 30 * DAY_MS, N)),
        user=rng.integers(0, 2000, N),
        merchant=rng.integers(0, 400, N),
        amount=rng.uniform(1, 500, N),
        device_ip=np.full(N, "10.0.0.1", dtype=object),
        scenario=np.where(fraud, "card_testing", None).astype(object),
    )


def test_most_frauds_are_reported_late_some_never_and_a_few_legitimate_payments_are_claimed(batch, labels) -> None:
    events = label_events(batch, labels, np.random.default_rng(7))
    fraud_ids = set(batch.transaction_id[batch.is_fraud])
    reported = [t in fraud_ids for t in events.transaction_id]
    frauds = len(fraud_ids)
    assert abs(sum(reported) / frauds - labels.fraud_reported) < 0.03
    claims = len(events) - sum(reported)
    assert 0 < claims < 5 * labels.false_claim_rate * (N - frauds)
    assert set(events.label) <= set(LABEL_VALUES) and set(events.source) <= set(LABEL_SOURCES)
    assert len(set(events.transaction_id)) == len(events)  # one report per payment


def test_every_report_comes_after_its_payment_within_the_bounds_and_chargebacks_come_later(batch, labels) -> None:
    events = label_events(batch, labels, np.random.default_rng(7))
    delay = events.reported_ms - events.ts_ms
    assert delay.min() >= MIN_DELAY_MS and delay.max() <= labels.max_delay_days * DAY_MS
    assert np.all(np.diff(events.reported_ms) >= 0)
    days = {source: np.median(delay[events.source == source]) / DAY_MS for source in ("chargeback", "customer_report")}
    assert days["chargeback"] == pytest.approx(labels.chargeback_days_median, rel=0.1)
    assert days["customer_report"] == pytest.approx(labels.report_days_median, rel=0.1)


def test_what_is_known_at_a_time_is_what_was_reported_before_it(batch, labels) -> None:
    events = label_events(batch, labels, np.random.default_rng(7))
    cut = int(np.median(events.reported_ms))
    known, later = events.reported_by(cut)
    assert len(known) + len(later) == len(events)
    assert known.reported_ms.max() < cut <= later.reported_ms.min()


def test_the_same_seed_gives_the_same_labels_and_a_resend_the_same_id(batch, labels) -> None:
    first = label_events(batch, labels, np.random.default_rng(11))
    again = label_events(batch, labels, np.random.default_rng(11))
    assert list(first.transaction_id) == list(again.transaction_id)
    assert np.array_equal(first.reported_ms, again.reported_ms)
    assert label_id("tx-1", "chargeback", 5) == label_id("tx-1", "chargeback", 5) != label_id("tx-1", "analyst", 5)


def test_labels_not_reported_yet_wait_in_their_file_for_a_later_run(batch, labels, tmp_path) -> None:
    path = tmp_path / "pending-labels.json"
    queue = LabelQueue(path)
    queue.add(label_events(batch, labels, np.random.default_rng(7)))
    cut = int(batch.ts_ms[-1])
    due = queue.due(cut)
    assert len(due) and due.reported_ms.max() < cut <= queue.pending.reported_ms.min()
    queue.save()
    later = LabelQueue(path)
    assert list(later.pending.transaction_id) == list(queue.pending.transaction_id)
    assert np.array_equal(later.pending.reported_ms, queue.pending.reported_ms)
    assert len(LabelQueue(tmp_path / "none.json").pending) == 0
