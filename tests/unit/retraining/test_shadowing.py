"""Promotion through a shadow period, decision by decision (pure)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from lakehouse.ml.shadow import ShadowComparison
from lakehouse.retraining.shadowing import decide


def comparison(days: int, shadow_ap: float | None, champion_ap: float | None) -> ShadowComparison:
    first = date(2026, 11, 1)
    return ShadowComparison(
        shadow_version=4,
        champion_versions=(2,),
        matured_before=datetime(2026, 12, 1, tzinfo=UTC),
        rows=1000,
        frauds=12,
        first_day=first,
        last_day=first + timedelta(days=days - 1),
        champion_ap=champion_ap,
        shadow_ap=shadow_ap,
        champion_precision_at_budget=None,
        shadow_precision_at_budget=None,
    )


@pytest.mark.parametrize(
    ("won", "shadow", "compared", "promote", "shadows", "says"),
    [
        (True, None, None, None, 5, "shadows the champion"),  # a winner starts its shadow period
        (False, None, None, None, None, "did not win"),
        (True, 4, comparison(3, 0.9, 0.5), None, 4, "3 of 7 days"),  # the period runs: the newer one waits
        (True, 4, comparison(7, 0.60, 0.50), 4, None, "beat the champion"),  # served its period and won
        (True, 4, comparison(8, 0.50, 0.50), None, 5, "dropped"),  # lost: the newer winner shadows now
        (False, 4, comparison(7, 0.50, 0.52), None, None, "dropped"),
        (True, 4, comparison(7, None, None), None, 5, "n/a"),  # no fraud known yet: no proof, dropped
        (True, 5, None, None, 5, "shadowing already"),  # a re-run with the same challenger
    ],
)
def test_a_shadow_is_promoted_only_after_its_period_and_only_if_it_beat_the_champion(
    won, shadow, compared, promote, shadows, says
) -> None:
    decision = decide(shadow_days=7, margin=0.005, challenger=5, challenger_won=won, shadow=shadow, comparison=compared)
    assert (decision.promote, decision.shadow) == (promote, shadows)
    assert says in decision.reason
