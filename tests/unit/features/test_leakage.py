"""No leakage, on static DataFrames through the offline path: changing anything later than a
transaction (later transactions, their labels, later profile versions) or any label after the
feedback cutoff leaves its features unchanged; a label old enough does reach the merchant fraud
rate (so these tests can fail)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from pyspark.sql import functions as F

from lakehouse.contract.features import FEATURE_NAMES, MERCHANT_RISK_WINDOWS
from lakehouse.features.labels import feedback_cut, labels_as_of
from lakehouse.features.offline import merchant_daily_stats, transaction_features
from tests.helpers import MERCHANTS, TX, USERS

DELAY = 7
START = datetime(2026, 10, 1, 9, 0)


LANDED = datetime(2026, 12, 1)  # when silver landed the rows (one batch)


def transactions() -> list[tuple]:
    """Two users paying two merchants twice a day for 20 days; every fifth payment is fraud."""
    rows = []
    for day in range(20):
        for k, (user, merchant) in enumerate([("u1", "m1"), ("u2", "m1"), ("u1", "m2"), ("u2", "m2")]):
            at = START + timedelta(days=day, hours=3 * k)
            i = len(rows)
            fraud = i % 5 == 0
            rows.append(
                (
                    f"t{i:03d}",
                    user,
                    merchant,
                    at,
                    at.date(),
                    10.0 + i,
                    "EUR",
                    f"10.0.0.{i % 3}",
                    fraud,
                    "card_testing" if fraud else None,
                    0,
                    i,
                    LANDED,
                )
            )
    return rows


USER_ROWS = [
    ("u1", 30, date(2025, 1, 1), 48.85, 2.35, datetime(2025, 1, 1), 0, 0),
    ("u2", 40, date(2024, 6, 1), 52.52, 13.40, datetime(2024, 6, 1), 0, 1),
]
MERCHANT_ROWS = [
    ("m1", "grocery", 48.86, 2.34, datetime(2024, 1, 1), 0, 0),
    ("m2", "electronics", 51.50, -0.12, datetime(2024, 1, 1), 0, 1),
]


def features(spark, tx_rows, user_rows=USER_ROWS, events=None) -> dict[str, dict]:
    """The offline features; ``events``: label events (transaction, reported at) that label the
    frauds instead of their inline labels, as ``features build`` does with the label stream."""
    silver = spark.createDataFrame(tx_rows, TX)
    labelled = silver
    if events is not None:
        events = spark.createDataFrame(
            [(t, "fraud", at, 0, i) for i, (t, at) in enumerate(events)],
            "transaction_id STRING, label STRING, reported_at TIMESTAMP, _partition INT, _offset BIGINT",
        )
        labelled = labels_as_of(silver, events, feedback_cut(DELAY), F.lit(False))
    out = transaction_features(
        silver,
        user_versions=spark.createDataFrame(user_rows, USERS),
        merchant_versions=spark.createDataFrame(MERCHANT_ROWS, MERCHANTS),
        merchant_daily=merchant_daily_stats(labelled),
        max_events=100,
        feedback_delay_days=DELAY,
    )
    return {r.transaction_id: {name: r[name] for name in FEATURE_NAMES} for r in out.collect()}


@pytest.fixture(scope="module")
def baseline(spark):
    return features(spark, transactions())


def test_features_ignore_later_transactions_and_their_labels(spark, baseline) -> None:
    cut = START + timedelta(days=12)
    changed = [
        (
            t,
            u,
            "m2" if m == "m1" else "m1",
            at,
            d,
            amount * 50,
            c,
            "192.168.9.9",
            not fraud,
            None if fraud else "account_takeover",
            p,
            o,
            g,
        )
        if at >= cut
        else (t, u, m, at, d, amount, c, ip, fraud, s, p, o, g)
        for t, u, m, at, d, amount, c, ip, fraud, s, p, o, g in transactions()
    ]
    changed.append(
        (
            "late_extra",
            "u1",
            "m1",
            cut + timedelta(minutes=1),
            cut.date(),
            999.0,
            "EUR",
            "1.1.1.1",
            True,
            "x",
            0,
            10_000,
            LANDED,
        )
    )
    after = features(spark, changed)
    earlier = [t for t, *_rest in transactions() if _rest[2] < cut]
    assert earlier and all(after[t] == baseline[t] for t in earlier)
    assert any(after[t] != baseline[t] for t in baseline if t not in earlier)  # the change was real


def test_labels_after_the_feedback_cutoff_never_reach_a_transaction(spark, baseline) -> None:
    target = next(
        t for t, _u, m, at, *_ in transactions() if at.date() == (START + timedelta(days=15)).date() and m == "m1"
    )
    target_day = (START + timedelta(days=15)).date()
    cutoff = target_day - timedelta(days=DELAY)  # labels of this day and later are not known yet
    flipped = [
        (t, u, m, at, d, a, c, ip, not fraud, s, p, o, g)
        if d >= cutoff
        else (t, u, m, at, d, a, c, ip, fraud, s, p, o, g)
        for t, u, m, at, d, a, c, ip, fraud, s, p, o, g in transactions()
    ]
    assert features(spark, flipped)[target] == baseline[target]

    old_enough = [
        (t, u, m, at, d, a, c, ip, not fraud, s, p, o, g)
        if d == cutoff - timedelta(days=1) and m == "m1"
        else (t, u, m, at, d, a, c, ip, fraud, s, p, o, g)
        for t, u, m, at, d, a, c, ip, fraud, s, p, o, g in transactions()
    ]
    # The day just old enough is in every risk window (1, 7 and 30 days behind the delay).
    after = features(spark, old_enough)[target]
    for name in (f"merchant_fraud_rate_{w}" for w in MERCHANT_RISK_WINDOWS):
        assert after[name] != baseline[target][name], name


def test_a_reported_fraud_reaches_the_merchant_fraud_rate_only_if_reported_within_the_feedback_delay(
    spark, baseline
) -> None:
    frauds = [(t, at) for t, _u, _m, at, *_rest in transactions() if _rest[4]]
    in_time = features(spark, transactions(), events=[(t, at + timedelta(days=1)) for t, at in frauds])
    assert in_time == baseline  # every fraud reported within the delay: as if labels were inline

    target_day = (START + timedelta(days=15)).date()
    target = next(t for t, _u, m, at, *_ in transactions() if at.date() == target_day and m == "m1")
    day = target_day - timedelta(days=DELAY + 1)  # old enough for the target's fraud rate
    late = next(t for t, _u, m, at, *_rest in transactions() if at.date() <= day and m == "m1" and _rest[4])
    # Reported after the target's day: unknown when it was scored, so it must not count.
    reported = [(t, at + timedelta(days=DELAY + 3 if t == late else 1)) for t, at in frauds]
    rate = features(spark, transactions(), events=reported)[target]["merchant_fraud_rate_30d"]
    assert rate < baseline[target]["merchant_fraud_rate_30d"]


def test_a_later_profile_version_does_not_reach_back(spark, baseline) -> None:
    moved_at = START + timedelta(days=10)
    moved = [*USER_ROWS, ("u1", 30, date(2025, 1, 1), 35.68, 139.69, moved_at, 0, 2)]  # u1 moves to Tokyo
    after = features(spark, transactions(), moved)
    for t, u, _m, at, *_ in transactions():
        if u == "u1":
            assert (after[t] == baseline[t]) == (at < moved_at), t


def test_features_hold_no_label_column() -> None:
    assert not {"is_fraud", "fraud_scenario"} & set(FEATURE_NAMES)
