"""Evaluation that suits fraud, on numpy arrays (the validation window's labels and scores).

Average precision is the step-wise sum over distinct thresholds, AP = sum_n (R_n - R_{n-1}) P_n
(what scikit-learn computes), not the trapezoidal area under the PR curve that MLlib's
``areaUnderPR`` reports, which interpolates linearly between points and overstates AP when positives
are rare. ROC AUC is the Mann-Whitney statistic with ties counted half.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


def _curve(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative true and false positives at each distinct score, highest first."""
    order = np.argsort(-score, kind="mergesort")
    y, score = y[order].astype(np.int64), score[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(score) != 0), len(score) - 1]
    tp = np.cumsum(y)[last_of_tie]
    fp = (last_of_tie + 1) - tp
    return tp, fp, score[last_of_tie]


def average_precision(y: np.ndarray, score: np.ndarray) -> float:
    y, score = np.asarray(y, bool), np.asarray(score, float)
    positives = int(y.sum())
    if positives == 0:
        return float("nan")
    tp, fp, _ = _curve(y, score)
    precision = tp / (tp + fp)
    recall = tp / positives
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    y, score = np.asarray(y, bool), np.asarray(score, float)
    positives, negatives = int(y.sum()), int((~y).sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score))
    sorted_scores = score[order]
    # Average ranks over ties.
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_scores) != 0) + 1]
    ends = np.r_[starts[1:], len(score)]
    for start, end in zip(starts, ends, strict=True):
        ranks[order[start:end]] = (start + end + 1) / 2.0
    return float((ranks[y].sum() - positives * (positives + 1) / 2.0) / (positives * negatives))


def precision_recall_at(y: np.ndarray, score: np.ndarray, threshold: float) -> tuple[float, float]:
    y, alerted = np.asarray(y, bool), np.asarray(score, float) >= threshold
    tp = int((alerted & y).sum())
    precision = tp / int(alerted.sum()) if alerted.any() else float("nan")
    recall = tp / int(y.sum()) if y.any() else float("nan")
    return precision, recall


def threshold_for_budget(score: np.ndarray, days: int, daily_alerts: int) -> float:
    """The lowest threshold at which the window raises at most ``daily_alerts`` per day on average."""
    allowed = max(1, daily_alerts * max(1, days))
    ranked = np.sort(np.asarray(score, float))[::-1]
    if allowed >= len(ranked):
        return float(ranked[-1]) if len(ranked) else 1.0
    # Strictly above the first score that must stay quiet, so ties never exceed the budget.
    return float(np.nextafter(ranked[allowed], np.inf))


def threshold_for_precision(y: np.ndarray, score: np.ndarray, target: float) -> float:
    """The lowest threshold whose precision is at least ``target`` (highest recall at that
    precision); the top score when none reaches it."""
    tp, fp, thresholds = _curve(np.asarray(y, bool), np.asarray(score, float))
    precision = tp / (tp + fp)
    meeting = np.flatnonzero(precision >= target)
    return float(thresholds[meeting[-1]]) if len(meeting) else float(thresholds[0]) if len(thresholds) else 1.0


def daily_top_k_precision(y: np.ndarray, score: np.ndarray, day: np.ndarray, user: np.ndarray, k: int) -> float:
    """Investigators review the k users with the highest score each day: the share of them who had
    a fraud that day, averaged over days."""
    y, score, day, user = (np.asarray(a) for a in (y, score, day, user))
    shares = []
    for d in np.unique(day):
        on_day = day == d
        users, inverse = np.unique(user[on_day], return_inverse=True)
        best = np.full(len(users), -np.inf)
        np.maximum.at(best, inverse, score[on_day])
        fraud = np.zeros(len(users), bool)
        np.logical_or.at(fraud, inverse, y[on_day].astype(bool))
        top = np.argsort(-best, kind="mergesort")[:k]
        if len(top):
            shares.append(fraud[top].mean())
    return float(np.mean(shares)) if shares else float("nan")


def amount_recall(y: np.ndarray, score: np.ndarray, amount: np.ndarray, threshold: float) -> float:
    y, amount = np.asarray(y, bool), np.asarray(amount, float)
    total = amount[y].sum()
    return float(amount[y & (np.asarray(score, float) >= threshold)].sum() / total) if total > 0 else float("nan")


def recall_per_scenario(scenario: np.ndarray, score: np.ndarray, threshold: float) -> dict[str, float]:
    scenario = np.asarray(scenario, object)
    alerted = np.asarray(score, float) >= threshold
    out = {}
    for name in sorted({s for s in scenario.tolist() if s is not None}):
        mine = scenario == name
        out[name] = float(alerted[mine].mean())
    return out


@dataclass(frozen=True)
class Evaluation:
    rows: int
    frauds: int
    average_precision: float
    roc_auc: float
    threshold: float
    precision: float
    recall: float
    daily_top_k_precision: float
    amount_recall: float
    alerts_per_day: float
    recall_by_scenario: dict[str, float]

    def as_dict(self) -> dict:
        return asdict(self)


def evaluate(
    y: np.ndarray,
    score: np.ndarray,
    *,
    threshold: float,
    day: np.ndarray,
    user: np.ndarray,
    amount: np.ndarray,
    scenario: np.ndarray,
    k: int,
) -> Evaluation:
    y = np.asarray(y, bool)
    precision, recall = precision_recall_at(y, score, threshold)
    days = max(1, len(np.unique(day)))
    return Evaluation(
        rows=len(y),
        frauds=int(y.sum()),
        average_precision=average_precision(y, score),
        roc_auc=roc_auc(y, score),
        threshold=float(threshold),
        precision=precision,
        recall=recall,
        daily_top_k_precision=daily_top_k_precision(y, score, day, user, k),
        amount_recall=amount_recall(y, score, amount, threshold),
        alerts_per_day=float((np.asarray(score, float) >= threshold).sum() / days),
        recall_by_scenario=recall_per_scenario(scenario, score, threshold),
    )
