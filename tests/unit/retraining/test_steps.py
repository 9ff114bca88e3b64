"""A retraining run's state: keyed by its interval's end, saved atomically, and summed up in one
outcome row whatever happened (gate failed, incomplete, promoted, kept)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from lakehouse.retraining.steps import RetrainingError, Run, outcome, parse_interval_end

END = datetime(2026, 11, 29, 3, tzinfo=UTC)


@pytest.fixture
def run(settings, tmp_path) -> Run:
    own = settings.model_copy(update={"paths": settings.paths.model_copy(update={"data_dir": tmp_path})})
    return Run.open(own, END)


def gate(success: bool) -> dict:
    failures = (
        []
        if success
        else [
            {
                "expectation": "expect_column_values_to_not_be_null",
                "column": "user_id",
                "observed": "3 of 10 unexpected (30.00%)",
                "notes": None,
            }
        ]
    )
    return {"suite": "x", "success": success, "failures": failures}


@pytest.mark.parametrize(
    "text",
    ["2026-11-29T03:00:00+00:00", "2026-11-29 03:00:00+00:00", "2026-11-29T04:00:00+01:00", "2026-11-29T03:00:00"],
)
def test_retraining_run_interval_end_parses_airflow_renderings(text) -> None:
    assert parse_interval_end(text) == END


def test_retraining_run_bad_interval_end_is_a_clear_error() -> None:
    with pytest.raises(RetrainingError, match="not an ISO 8601 time"):
        parse_interval_end("yesterday")


def test_retraining_run_state_persists_and_reopens(settings, tmp_path) -> None:
    own = settings.model_copy(update={"paths": settings.paths.model_copy(update={"data_dir": tmp_path})})
    run = Run.open(own, END)
    assert run.key == "20261129T030000Z" and not run.path.exists()
    run.state["gates"]["silver_transactions"] = gate(True)
    run.save()
    assert Run.open(own, END).state == run.state
    assert not list(run.path.parent.glob("*.tmp"))  # written aside, then renamed into place
    with pytest.raises(RetrainingError, match="needs `pin` to have run first"):
        run.require("pin", "retrain train")


def test_retraining_run_outcome_names_where_it_stopped(run) -> None:
    run.state["gates"] = {"silver_transactions": gate(False), "silver_users": gate(True)}
    row = outcome(run)
    assert (row["status"], row["stopped_at"]) == ("gate_failed", "silver_transactions")
    assert row["failed_expectations"] == [
        "silver_transactions: expect_column_values_to_not_be_null (user_id) observed 3 of 10 unexpected (30.00%)"
    ]
    assert row["challenger_version"] is None

    run.state["gates"] = {"silver_transactions": gate(True)}
    run.state["pin"] = {"features_version": 4, "date_from": "2026-09-01", "date_to": "2026-11-28", "table_versions": {}}
    assert (outcome(run)["status"], outcome(run)["stopped_at"]) == ("incomplete", "challenger")

    run.state["challenger"] = {"version": 5}
    run.state["evaluation"] = {
        "challenger": 5,
        "champion": 4,
        "challenger_ap": 0.5,
        "champion_ap": 0.6,
        "promote": False,
        "reason": "kept",
    }
    run.state["promotion"] = {"promoted": False, "champion_before": 4, "champion_after": 4, "reason": "kept champion 4"}
    row = outcome(run)
    assert (row["status"], row["champion_after"], row["features_version"], str(row["window_to"])) == (
        "kept_champion",
        4,
        4,
        "2026-11-28",
    )
