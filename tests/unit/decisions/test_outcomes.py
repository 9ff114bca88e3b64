"""The outcome thresholds: approve below the version's alert threshold, review from it, decline
from ``decisions.decline_score``, which never falls below the alert threshold (an alert is never
approved)."""

from __future__ import annotations

import pytest

from lakehouse.decisions.service import APPROVE, DECLINE, REVIEW, thresholds

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("score", "expected"),
    [(0.0, APPROVE), (0.2999, APPROVE), (0.3, REVIEW), (0.8999, REVIEW), (0.9, DECLINE), (1.0, DECLINE)],
)
def test_each_score_gets_the_outcome_of_its_band(score: float, expected: str) -> None:
    assert thresholds(0.3, 0.9).outcome(score) == expected


def test_a_decline_score_below_the_alert_threshold_declines_every_alert_and_approves_the_rest() -> None:
    levels = thresholds(0.6, 0.4)
    assert (levels.review, levels.decline) == (0.6, 0.6)
    assert levels.outcome(0.59) == APPROVE and levels.outcome(0.6) == DECLINE
