"""Promotion through a shadow period (``training.shadow_days`` > 0): a challenger that wins on
its validation window is not made champion at once; it first scores the live stream beside the
champion, with no alerts (the registry's ``shadow`` alias, :mod:`lakehouse.scoring.champion`).
A later retraining run promotes it once ``shadow_days`` days of its shadow scores have matured
labels and it beats the champion on them by ``training.promotion_margin``
(:func:`lakehouse.ml.shadow.compare_shadow`); otherwise it is dropped. One shadow runs at a
time: while its period runs, newer challengers wait (they are annotated, not shadowed).

:func:`decide` is pure (the tests walk every branch); :func:`apply` carries a decision out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lakehouse.ml import registry
from lakehouse.ml.shadow import ShadowComparison
from lakehouse.settings import Settings


@dataclass(frozen=True)
class ShadowDecision:
    promote: int | None  # the version to make champion
    shadow: int | None  # the version to shadow from now on (None: none)
    reason: str


def decide(
    *,
    shadow_days: int,
    margin: float,
    challenger: int,
    challenger_won: bool,
    shadow: int | None,
    comparison: ShadowComparison | None,
) -> ShadowDecision:
    """What a retraining run does with its ``challenger`` (``challenger_won``: it beat the champion
    on the validation window) and the running ``shadow`` version (``comparison``: its shadow
    scores judged on matured labels)."""
    if shadow is not None and shadow != challenger and comparison is not None:
        if comparison.days < shadow_days:
            return ShadowDecision(
                None,
                shadow,
                f"version {shadow} is in its shadow period ({comparison.days} of {shadow_days} days with matured "
                f"labels); challenger {challenger} waits",
            )
        shadow_ap, champion_ap = comparison.shadow_ap, comparison.champion_ap
        if shadow_ap is not None and champion_ap is not None and shadow_ap >= champion_ap + margin:
            return ShadowDecision(
                shadow,
                None,
                f"shadow version {shadow} beat the champion on {comparison.days} live days: average precision "
                f"{shadow_ap:.4f} vs {champion_ap:.4f}",
            )
        dropped = f"shadow version {shadow} dropped after {comparison.days} live days ({_aps(comparison)})"
        if challenger_won:
            return ShadowDecision(None, challenger, f"{dropped}; challenger {challenger} shadows now")
        return ShadowDecision(None, None, dropped)
    if shadow == challenger:
        return ShadowDecision(None, shadow, f"version {shadow} is shadowing already")
    if challenger_won:
        return ShadowDecision(None, challenger, f"challenger {challenger} won on validation: it shadows the champion")
    return ShadowDecision(None, shadow, "the challenger did not win on validation")


def _aps(comparison: ShadowComparison) -> str:
    def figure(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.4f}"

    return f"average precision {figure(comparison.shadow_ap)} vs {figure(comparison.champion_ap)}"


def run_shadow_step(
    settings: Settings, challenger: int, challenger_won: bool, compare: Callable[[int], ShadowComparison]
) -> ShadowDecision:
    """Decide with the registry's current shadow (compared by ``compare``) and carry it out."""
    shadow = registry.shadow_version(settings)
    comparison = compare(shadow) if shadow is not None and shadow != challenger else None
    decision = decide(
        shadow_days=settings.training.shadow_days,
        margin=settings.training.promotion_margin,
        challenger=challenger,
        challenger_won=challenger_won,
        shadow=shadow,
        comparison=comparison,
    )
    if decision.promote is not None:
        registry.set_champion(settings, decision.promote, reason=decision.reason)
    if decision.shadow != shadow:
        registry.set_shadow(settings, decision.shadow, reason=decision.reason)
    if decision.shadow != challenger and decision.promote != challenger:
        registry.annotate(settings, challenger, decision.reason)
    return decision
