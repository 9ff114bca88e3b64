"""Model selection by time-series cross-validation (``training.selection``).

Inside the training window, ``folds`` consecutive validation windows of ``fold_days`` each end the
window; each fold trains on every day before its validation window less the split's gap (labels of
the last days before it would not be known yet), never on anything after it. Every candidate (an
algorithm with changes to its settings) is fitted on each fold and judged by its average precision
there; the best mean wins, and only then is the model fitted on the whole training window. The
split's own validation window, after the training window, stays unseen until the final
evaluation, so the chosen model's figures are not the ones that chose it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING

import numpy as np

from lakehouse.ml.metrics import average_precision
from lakehouse.ml.pipeline import ScoredWindow, TimeSplit, make_pipeline, scored, split_frames
from lakehouse.settings import TrainingSettings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Fold:
    train_to: date  # inclusive; each fold trains from the split's first day
    validation_from: date
    validation_to: date  # inclusive

    def describe(self) -> str:
        return f"train ..{self.train_to}, validate {self.validation_from}..{self.validation_to}"


@dataclass(frozen=True)
class CandidateScore:
    name: str
    fold_ap: tuple[float, ...]

    @property
    def mean_ap(self) -> float:
        values = [ap for ap in self.fold_ap if not np.isnan(ap)]
        return float(np.mean(values)) if values else float("nan")


@dataclass(frozen=True)
class Selection:
    folds: tuple[Fold, ...]
    scores: tuple[CandidateScore, ...]
    chosen: str
    training: TrainingSettings  # the winner's settings, for the final fit

    def table(self) -> tuple[list[str], list[list[str]]]:
        """Columns and rows for a report: each candidate's AP per fold and its mean."""
        columns = ["candidate", *[f"fold {i + 1}: {f.describe()}" for i, f in enumerate(self.folds)], "mean AP"]
        rows = [
            [
                f"{s.name} (chosen)" if s.name == self.chosen else s.name,
                *[f"{ap:.4f}" for ap in s.fold_ap],
                f"{s.mean_ap:.4f}",
            ]
            for s in self.scores
        ]
        return columns, rows


def time_folds(split: TimeSplit, folds: int, fold_days: int, gap_days: int) -> list[Fold]:
    """The folds that fit in ``split``'s training window, oldest first; fewer than ``folds`` when
    the window is too short to leave each fold at least ``fold_days`` days to train on."""
    out = []
    for back in range(folds, 0, -1):
        validation_to = split.train_to - timedelta(days=(back - 1) * fold_days)
        validation_from = validation_to - timedelta(days=fold_days - 1)
        train_to = validation_from - timedelta(days=gap_days + 1)
        if (train_to - split.train_from).days + 1 >= fold_days:
            out.append(Fold(train_to, validation_from, validation_to))
    return out


def select(
    train_frame: DataFrame,
    split: TimeSplit,
    training: TrainingSettings,
    *,
    numeric: tuple[str, ...],
    categorical: tuple[str, ...],
) -> Selection | None:
    """Choose among ``training.selection.candidates`` on time folds of ``train_frame`` (labelled and
    weighted rows of the split's training window); None when selection is off or no fold fits."""
    chosen = training.selection
    folds = time_folds(split, chosen.folds, chosen.fold_days, training.gap_days) if chosen.candidates else []
    if not folds:
        if chosen.folds and chosen.candidates:
            log.warning("model selection skipped: the training window %s is too short for a fold", split.describe())
        return None
    scores = []
    for candidate in chosen.candidates:
        settings = training.with_candidate(candidate)
        fold_ap = []
        for fold in folds:
            fold_split = TimeSplit(split.train_from, fold.train_to, fold.validation_from, fold.validation_to)
            fitting, judging = split_frames(train_frame, fold_split)
            model = make_pipeline(settings, numeric=numeric, categorical=categorical).fit(fitting)
            window = ScoredWindow.collect(scored(model, judging))
            fold_ap.append(average_precision(window.y, window.score))
        scores.append(CandidateScore(candidate.describe(), tuple(fold_ap)))
        log.info("selection: %s mean AP %.4f over %s folds", scores[-1].name, scores[-1].mean_ap, len(folds))
    best = max(range(len(scores)), key=lambda i: np.nan_to_num(scores[i].mean_ap, nan=-1.0))
    winner = chosen.candidates[best]
    return Selection(tuple(folds), tuple(scores), scores[best].name, training.with_candidate(winner))
