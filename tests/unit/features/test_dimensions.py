"""The numpy twin of the table-based features (:mod:`lakehouse.features.dimensions`) gives what
Spark's :func:`~lakehouse.features.offline.enrich` gives, column by column, on static frames
built to hit every rule: versions that take effect exactly at an event, two records at the same
instant, a null ``updated_at``, a profile only in the future, unknown and online merchants, no
previous transaction, back-to-back payments (the one-minute floor), nights, weekends, and labels
on both sides of the feedback cutoff. (Event dates outside pandas' nanosecond range, year 1 or
9999, cannot reach the feature path's pandas steps at all: silver must quarantine them, issue 17.)"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta

import pytest

from lakehouse.contract.features import feature_table_columns, feature_table_types
from lakehouse.features.columns import frame
from lakehouse.features.dimensions import snapshot_from_frames, table_features
from lakehouse.features.offline import enrich, merchant_daily_stats, user_state_features
from tests.helpers import MERCHANTS, TX, USERS

DELAY = 7
START = datetime(2026, 10, 2, 23, 30)  # a Friday, late
PAIRS = [("u1", "m1"), ("u2", "m2"), ("u1", "m3"), ("u3", "m1"), ("u2", "m1"), ("u4", "m2"), ("u1", "m1")]


LANDED = datetime(2026, 12, 1)  # when silver landed the rows (one batch)


def transactions() -> list[tuple]:
    rows = []
    for day in range(45):
        for k, (user, merchant) in enumerate(PAIRS):
            at = START + timedelta(days=day, hours=5 * k, seconds=20 * (k % 2))  # some 20 s apart
            i = len(rows)
            fraud = i % 6 == 0
            rows.append((f"t{i:04d}", user, merchant, at, at.date(), 5.0 + i, "EUR", None, fraud, None, 0, i, LANDED))
    return rows


USER_ROWS = [
    ("u1", 30, date(2025, 1, 1), 48.85, 2.35, datetime(2025, 1, 1), 0, 0),
    ("u1", 31, date(2025, 1, 1), 45.76, 4.83, START + timedelta(days=3, hours=5), 0, 5),  # at an event
    ("u1", 32, date(2025, 1, 1), 43.30, 5.37, START + timedelta(days=3, hours=5), 0, 7),  # same instant, later
    ("u2", 40, date(2024, 6, 1), 52.52, 13.40, None, 0, 1),  # never in effect
    ("u2", 41, date(2024, 6, 1), 52.52, 13.40, datetime(2024, 6, 1), 0, 2),
    ("u4", 22, date(2026, 11, 1), 40.41, -3.70, datetime(2026, 11, 1), 0, 3),  # only later
]
MERCHANT_ROWS = [
    ("m1", "grocery", 48.86, 2.34, datetime(2024, 1, 1), 0, 0),
    ("m1", "travel", 41.90, 12.49, START + timedelta(days=10), 0, 4),
    ("m2", "online_retail", None, None, datetime(2024, 1, 1), 0, 1),
]


def compare(spark_rows: list, frame) -> list[str]:
    types = feature_table_types()
    mine = {r["transaction_id"]: r for r in frame.astype(object).where(frame.notna(), None).to_dict("records")}
    problems = []
    for row in spark_rows:
        other = mine[row.transaction_id]
        for column in feature_table_columns():
            a, b = row[column], other[column]
            if types[column] == "DOUBLE" and a is not None and b is not None:
                same = math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
            elif types[column] in ("TIMESTAMP", "DATE"):
                continue  # carried through unchanged from the same input
            else:
                same = a == b
            if not same:
                problems.append(f"{row.transaction_id} {column}: spark {a!r}, numpy {b!r}")
    return problems


@pytest.mark.parametrize("delay", [DELAY, 0])
def test_numpy_table_features_equal_sparks_enrich_on_every_row_and_column(spark, delay) -> None:
    silver = spark.createDataFrame(transactions(), TX)
    users = spark.createDataFrame(USER_ROWS, USERS)
    merchants = spark.createDataFrame(MERCHANT_ROWS, MERCHANTS)
    daily = merchant_daily_stats(silver)
    state = user_state_features(silver, max_events=100).cache()

    expected = enrich(
        state, user_versions=users, merchant_versions=merchants, merchant_daily=daily, feedback_delay_days=delay
    ).collect()
    snapshot = snapshot_from_frames(users, merchants, daily, {})
    got = frame(table_features(state.toPandas(), snapshot, feedback_delay_days=delay))

    assert len(expected) == len(got) == len(transactions())
    assert list(got.columns) == feature_table_columns()
    assert compare(expected, got) == []
    # The rules were exercised: an unknown merchant, a user with no profile yet, a known fraud rate.
    by_id = {r.transaction_id: r for r in expected}
    assert by_id["t0002"].merchant_category is None and by_id["t0005"].user_age_years is None
    assert any(r.merchant_fraud_rate_30d not in (None, 0.0) for r in expected)
    state.unpersist()


def test_numpy_table_features_equal_sparks_on_a_fresh_lake_without_dimension_rows(spark) -> None:
    """No user or merchant versions and no merchant daily counts yet (before the first ingest of
    profiles and the first features build): no exception, and the same nulls and zeros as Spark."""
    silver = spark.createDataFrame(transactions(), TX)
    users, merchants = spark.createDataFrame([], USERS), spark.createDataFrame([], MERCHANTS)
    daily = merchant_daily_stats(silver.limit(0))
    state = user_state_features(silver, max_events=100).cache()

    expected = enrich(
        state, user_versions=users, merchant_versions=merchants, merchant_daily=daily, feedback_delay_days=7
    ).collect()
    got = frame(
        table_features(state.toPandas(), snapshot_from_frames(users, merchants, daily, {}), feedback_delay_days=7)
    )

    assert len(expected) == len(got) == len(transactions())
    assert compare(expected, got) == []
    assert {r.merchant_tx_count_1d for r in expected} == {0} and all(r.user_age_years is None for r in expected)
    state.unpersist()
