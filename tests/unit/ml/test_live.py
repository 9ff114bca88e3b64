"""Live precision per model version (pure counts on a static DataFrame)."""

from __future__ import annotations

from datetime import date

from lakehouse.ml.live import LiveMetrics, by_version


def test_live_counts_take_an_unlabelled_payment_as_legitimate_and_keep_versions_apart(spark) -> None:
    day = date(2026, 11, 1)
    rows = spark.createDataFrame(
        [
            (1, True, True, day),
            (1, True, False, day),
            (1, True, None, date(2026, 11, 3)),  # no label known: legitimate
            (1, False, True, day),  # a fraud it missed
            (2, False, False, day),
        ],
        "model_version INT, is_alert BOOLEAN, is_fraud BOOLEAN, event_date DATE",
    )
    found = {r.model_version: LiveMetrics(**r.asDict()) for r in by_version(rows).collect()}
    one, two = found[1], found[2]
    assert (one.scored, one.alerts, one.frauds, one.caught) == (4, 3, 2, 1)
    assert one.precision == 1 / 3 and one.recall == 1 / 2 and one.last_day == date(2026, 11, 3)
    assert two.precision is None and two.recall is None and two.scored == 1
