"""Fraud metrics against scikit-learn's reference implementations and hand-checked cases."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from lakehouse.ml.metrics import (
    amount_recall,
    average_precision,
    daily_top_k_precision,
    precision_recall_at,
    recall_per_scenario,
    roc_auc,
    threshold_for_budget,
    threshold_for_precision,
)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_average_precision_and_auc_match_scikit_learn_with_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.random(3000) < 0.02
    score = np.round(rng.random(3000) * 0.6 + y * rng.random(3000) * 0.5, 2)  # rounded: many ties
    assert average_precision(y, score) == pytest.approx(average_precision_score(y, score), abs=1e-12)
    assert roc_auc(y, score) == pytest.approx(roc_auc_score(y, score), abs=1e-12)


def test_average_precision_is_not_the_trapezoid() -> None:
    # Two positives ranked 1st and 3rd: AP = (1/2)*1 + (1/2)*(2/3).
    assert average_precision(np.array([1, 0, 1, 0]), np.array([0.9, 0.8, 0.7, 0.1])) == pytest.approx(5 / 6)


def test_thresholds_respect_the_alert_budget_and_the_precision_target() -> None:
    score = np.array([0.9, 0.8, 0.8, 0.5, 0.4, 0.1])
    y = np.array([1, 1, 0, 0, 1, 0])
    budget = threshold_for_budget(score, days=1, daily_alerts=2)
    assert (score >= budget).sum() <= 2  # the tie at 0.8 stays quiet rather than exceed the budget
    assert precision_recall_at(y, score, threshold_for_precision(y, score, 1.0)) == (1.0, pytest.approx(1 / 3))
    assert precision_recall_at(y, score, threshold_for_precision(y, score, 0.6))[0] >= 0.6


def test_daily_top_k_amount_and_scenario_recall() -> None:
    y = np.array([1, 0, 0, 1, 0, 1])
    score = np.array([0.9, 0.8, 0.1, 0.2, 0.7, 0.95])
    day = np.array([1, 1, 1, 2, 2, 2])
    user = np.array(["a", "b", "c", "a", "b", "c"])
    assert daily_top_k_precision(y, score, day, user, k=1) == 1.0  # a on day 1, c on day 2
    assert daily_top_k_precision(y, score, day, user, k=2) == 0.5
    amount = np.array([100.0, 1, 1, 300.0, 1, 600.0])
    assert amount_recall(y, score, amount, threshold=0.5) == pytest.approx(700 / 1000)
    scenario = np.array(["card_testing", None, None, "card_testing", None, "account_takeover"], object)
    assert recall_per_scenario(scenario, score, 0.5) == {"account_takeover": 1.0, "card_testing": 0.5}
