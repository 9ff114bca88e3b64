"""Retraining steps on their own, on real Spark and Delta: after a promotion, a running scorer
(transactions scored recently) must show the new version before the deadline; no scorer running is
fine; a scorer still on the old model fails the step."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from lakehouse.contract.tables import create_tables
from lakehouse.platform.isolation import drop_schemas, isolated
from lakehouse.retraining.steps import RetrainingError, Run, await_scorer

pytestmark = pytest.mark.integration


@pytest.fixture
def world(settings, spark, tmp_path):
    own = isolated(settings, data_dir=tmp_path)
    names = create_tables(spark, own)
    yield own, names
    drop_schemas(spark, own)


def promoted_run(settings, at: datetime, version: int = 7) -> Run:
    run = Run.open(settings, datetime(2026, 11, 29, 3, tzinfo=UTC))
    run.state["promotion"] = {
        "promoted": True,
        "champion_before": version - 1,
        "champion_after": version,
        "reason": "test",
        "at": at.isoformat(),
    }
    return run


def score_rows(spark, table: str, *versions_and_times: tuple[int, datetime]) -> None:
    rows = ", ".join(
        f"('t{i}', {v}, TIMESTAMP '{at.astimezone(UTC):%Y-%m-%d %H:%M:%S}', DATE '2026-11-29')"
        for i, (v, at) in enumerate(versions_and_times)
    )
    spark.sql(f"INSERT INTO {table} (transaction_id, model_version, scored_at, event_date) VALUES {rows}")


def test_retraining_await_scorer_without_a_running_scorer_succeeds_at_once(world, spark) -> None:
    settings, _ = world
    outcome = await_scorer(spark, settings, promoted_run(settings, datetime.now(UTC)), timeout_s=60)
    assert outcome["status"] == "no scorer"


def test_retraining_await_scorer_sees_the_new_champion_in_scored_rows(world, spark) -> None:
    settings, names = world
    promoted = datetime.now(UTC) - timedelta(seconds=30)
    score_rows(
        spark,
        names.scored,
        (6, promoted - timedelta(seconds=10)),
        (6, promoted + timedelta(seconds=1)),
        (7, promoted + timedelta(seconds=2)),
    )
    run = promoted_run(settings, promoted)
    assert await_scorer(spark, settings, run, timeout_s=60)["status"] == "reloaded"
    assert Run.open(settings, run.interval_end).state["scorer"]["status"] == "reloaded"


def test_retraining_await_scorer_fails_when_the_scorer_keeps_the_old_model(world, spark) -> None:
    settings, names = world
    promoted = datetime.now(UTC) - timedelta(seconds=30)
    score_rows(spark, names.scored, (6, promoted - timedelta(seconds=10)), (6, promoted + timedelta(seconds=5)))
    with pytest.raises(RetrainingError, match=r"none with version 7 within 0\.5 s"):
        await_scorer(spark, settings, promoted_run(settings, promoted), timeout_s=0.5, poll_s=0.1)
