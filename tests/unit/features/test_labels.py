"""Labels as known at a time, on static DataFrames: a label reported after the cut is unknown, a
later report supersedes an earlier one, an unreported payment is legitimate, inline rows keep
their own label."""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import functions as F

from lakehouse.features.labels import labels_as_of

CUT = datetime(2026, 10, 20)
EVENTS = [
    # transaction, label, reported at, partition, offset
    ("T-known", "fraud", datetime(2026, 10, 10), 0, 1),
    ("T-after", "fraud", datetime(2026, 10, 20), 0, 2),  # reported at the cut itself: not before it
    ("T-cleared", "fraud", datetime(2026, 10, 5), 0, 3),
    ("T-cleared", "legitimate", datetime(2026, 10, 8), 0, 4),  # the analyst's correction wins
    ("T-reopened", "legitimate", datetime(2026, 10, 2), 1, 1),
    ("T-reopened", "fraud", datetime(2026, 10, 2), 1, 2),  # same time: the later record wins
    ("T-inline", "legitimate", datetime(2026, 10, 3), 1, 3),
]


def known(spark, cut=None) -> dict[str, bool | None]:
    rows = spark.createDataFrame(
        [
            ("T-known", False),
            ("T-after", True),
            ("T-cleared", True),
            ("T-reopened", False),
            ("T-unreported", True),
            ("T-inline", True),
        ],
        "transaction_id STRING, is_fraud BOOLEAN",
    )
    events = spark.createDataFrame(
        EVENTS, "transaction_id STRING, label STRING, reported_at TIMESTAMP, _partition INT, _offset BIGINT"
    )
    out = labels_as_of(rows, events, F.lit(CUT) if cut is None else cut, F.col("transaction_id") == "T-inline")
    assert out.columns == ["transaction_id", "is_fraud"]
    return {r.transaction_id: r.is_fraud for r in out.collect()}


def test_only_labels_reported_before_the_cut_count_and_the_latest_wins(spark) -> None:
    assert known(spark) == {
        "T-known": True,
        "T-after": False,
        "T-cleared": False,
        "T-reopened": True,
        "T-unreported": False,  # a fraud nobody reported is not known
        "T-inline": True,  # an inline row keeps its own label whatever the stream says
    }


def test_the_cut_can_differ_per_row(spark) -> None:
    early = F.when(F.col("transaction_id") == "T-cleared", F.lit(datetime(2026, 10, 6))).otherwise(F.lit(CUT))
    assert known(spark, early)["T-cleared"] is True  # before the correction, it was fraud
