"""Model selection's folds and candidates (pure): folds end the training window, never reach past
it, and leave each fold days to train on; a candidate changes only its own algorithm's settings,
and a setting it does not have is refused by name."""

from __future__ import annotations

from datetime import date

import pytest
from pydantic import ValidationError

from lakehouse.ml.pipeline import TimeSplit
from lakehouse.ml.selection import time_folds
from lakehouse.settings.schema import CandidateSettings

SPLIT = TimeSplit(date(2026, 9, 1), date(2026, 10, 20), date(2026, 10, 28), date(2026, 11, 3))


def test_folds_are_consecutive_weeks_ending_the_training_window_each_after_its_gap() -> None:
    folds = time_folds(SPLIT, folds=3, fold_days=7, gap_days=7)
    assert [(f.validation_from, f.validation_to) for f in folds] == [
        (date(2026, 9, 30), date(2026, 10, 6)),
        (date(2026, 10, 7), date(2026, 10, 13)),
        (date(2026, 10, 14), date(2026, 10, 20)),
    ]
    assert all((f.validation_from - f.train_to).days == 8 for f in folds)  # a 7-day gap between
    assert folds[-1].validation_to == SPLIT.train_to < SPLIT.validation_from  # the split's validation unseen


def test_a_short_window_keeps_only_the_folds_that_leave_days_to_train_on() -> None:
    short = TimeSplit(date(2026, 10, 1), date(2026, 10, 28), date(2026, 10, 29), date(2026, 11, 4))
    folds = time_folds(short, folds=3, fold_days=7, gap_days=7)
    assert [f.validation_to for f in folds] == [date(2026, 10, 21), date(2026, 10, 28)]
    assert folds[0].train_to == date(2026, 10, 7)  # a week to train on; the fold before would have none
    assert time_folds(short, folds=3, fold_days=14, gap_days=7) == []


def test_a_candidate_changes_its_algorithms_settings_and_an_unknown_setting_is_named(settings) -> None:
    candidate = CandidateSettings(algorithm="random_forest", params={"num_trees": 7})
    training = settings.training.with_candidate(candidate)
    assert training.algorithm == "random_forest" and training.random_forest.num_trees == 7
    assert training.gbt == settings.training.gbt
    assert candidate.describe() == "random_forest num_trees=7"
    with pytest.raises(ValidationError, match="random_forest has no setting step_size"):
        CandidateSettings(algorithm="random_forest", params={"step_size": 0.1})
    with pytest.raises(ValidationError, match="num_trees"):
        settings.training.with_candidate(CandidateSettings(algorithm="random_forest", params={"num_trees": 0}))
