"""The real fraud_model_retraining DAG under ``airflow dags test`` on real data (Spark, Delta, GX,
MLflow; every task a real ``fraudlake`` command, run in the task's process as on a scheduler, the
tasks sharing a catalog server as deployed): clean data promotes a better challenger over a weak
champion and records the outcome; a re-run of the training step trains nothing new; an injected
quality problem fails the gate, training never runs, and the champion is unchanged."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from lakehouse.ml import registry
from lakehouse.settings import Settings, load_settings
from tests.helpers import AIRFLOW, PROJECT_DIR, free_port

#: Airflow infers the latest complete daily interval before the logical date: [D-2 03:00, D-1 03:00).
CLEAN_RUN, CLEAN_END = "2026-10-25", "2026-10-24T03:00:00+00:00"
BAD_RUN, BAD_END = "2026-10-26", "2026-10-25T03:00:00+00:00"
WORLD_VARIABLES = {
    "FRAUDLAKE_ENV": "test",
    "FRAUDLAKE_SIMULATOR__USERS": "300",
    "FRAUDLAKE_SIMULATOR__MERCHANTS": "90",
    "FRAUDLAKE_SIMULATOR__CITIES": "10",
    "FRAUDLAKE_SIMULATOR__DAYS": "24",
    "FRAUDLAKE_SIMULATOR__TRANSACTIONS": "9000",
    "FRAUDLAKE_SIMULATOR__FRAUD_RATE": "0.04",
    "FRAUDLAKE_TRAINING__GBT__MAX_ITER": "20",
    "FRAUDLAKE_LABELS__SOURCE": "stream",  # the imported label events, not the transactions' own labels
    "FRAUDLAKE_ORCHESTRATION__START_DATE": "2026-01-01",
    "FRAUDLAKE_ORCHESTRATION__SCORER_RELOAD_TIMEOUT_S": "5",
}


@dataclass(frozen=True)
class World:
    env: dict[str, str]
    settings: Settings

    def run(self, *command: str, timeout: float = 900) -> subprocess.CompletedProcess:
        return subprocess.run(command, env=self.env, cwd=PROJECT_DIR, capture_output=True, text=True, timeout=timeout)

    def fraudlake(self, *args: str) -> subprocess.CompletedProcess:
        return self.run(sys.executable, "-m", "lakehouse", *args)

    def dags_test(self, logical_date: str) -> subprocess.CompletedProcess:
        return self.run(AIRFLOW, "dags", "test", "fraud_model_retraining", logical_date, timeout=1800)

    def table_path(self, layer: str, table: str) -> str:
        """A table of the world by its folder: the test session's Spark has its own catalog."""
        return f"{self.settings.warehouse_dir}/{getattr(self.settings.lakehouse.schemas, layer)}.db/{table}"

    def table(self, spark, layer: str, table: str):
        return spark.read.format("delta").load(self.table_path(layer, table))

    def state(self, interval_end: str) -> dict:
        key = interval_end[:19].replace("-", "").replace(":", "") + "Z"
        return json.loads((self.settings.paths.data_dir / "retraining" / f"{key}.json").read_text())


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def world(airflow_environ, tmp_path_factory) -> Iterator[World]:
    """Its own data dir and catalog server (as deployed: the tasks share one Spark driver, and
    ``features build`` runs as its own job beside it), 24 simulated days from 2026-10-01,
    features, a weak first champion."""
    folder = tmp_path_factory.mktemp("dag-world")
    env = {
        **os.environ,
        **WORLD_VARIABLES,
        "FRAUDLAKE_PATHS__DATA_DIR": str(folder / "data"),
        "FRAUDLAKE_SPARK__CATALOG": "derby-server",
        "FRAUDLAKE_SPARK__CATALOG_SERVER__PORT": str(free_port()),
    }
    w = World(env, load_settings("test", environ=env))
    ok(w.fraudlake("catalog", "up"))
    try:
        ok(w.run(sys.executable, "-m", "tests.dags.world", "--out", str(folder / "batch"), "--start", "2026-10-01"))
        assert registry.champion_version(w.settings) == 1
        yield w
    finally:
        ok(w.fraudlake("catalog", "down"))


@pytest.mark.slow
def test_retraining_dag_on_clean_data_promotes_the_better_challenger_and_records_it(world: World, spark) -> None:
    result = world.dags_test(CLEAN_RUN)
    log = ok(result) + result.stderr

    state = world.state(CLEAN_END)
    assert {name: gate["success"] for name, gate in state["gates"].items()} == dict.fromkeys(
        ("silver_transactions", "silver_users", "silver_merchants", "gold_transaction_features", "training_set"), True
    )
    assert state["pin"]["date_to"] == "2026-10-23"  # the last whole day before the interval's end
    assert state["gates"]["training_set"]["table_version"] == state["pin"]["features_version"]
    challenger = state["challenger"]["version"]
    e = state["evaluation"]
    assert e["champion"] == 1 and e["challenger"] == challenger == 2
    # Labels as known at the interval's end: validation ends labels.maturity_days (7) before it,
    # where labels have matured, and training runs up to it.
    assert e["validation"] == "2026-10-10..2026-10-16"
    assert state["challenger"]["split"] == "train 2026-10-01..2026-10-09, validation 2026-10-10..2026-10-16"
    # Same validation window for both; the weak champion (a one-split tree) loses by far more than the margin.
    assert e["promote"] and e["challenger_ap"] >= e["champion_ap"] + world.settings.training.promotion_margin
    assert state["promotion"] == {**state["promotion"], "promoted": True, "champion_before": 1, "champion_after": 2}
    assert registry.champion_version(world.settings) == 2
    assert (
        state["scorer"]["status"] == "no scorer"
    )  # nothing running here; the hot reload itself: tests/integration/test_scoring.py
    assert state["recorded"] == "promoted"
    assert (
        log.index("task_id=validate_training_set")
        < log.index("task_id=train_challenger")
        < log.index("task_id=promote_if_better")
    )

    rows = world.table(spark, "gold", "retraining_runs").collect()
    assert [(r.run_key, r.status, r.challenger_version, r.champion_before, r.champion_after) for r in rows] == [
        ("20261024T030000Z", "promoted", 2, 1, 2)
    ]

    # Idempotent per data interval: the training step run again finds its challenger, trains
    # nothing, and starts no Spark driver for it.
    versions = len(registry.versions(world.settings))
    again = world.fraudlake("retrain", "train", "--interval-end", CLEAN_END)
    assert '"reused": true' in ok(again)
    assert "lakehouse.platform.spark" not in again.stderr  # the CLI logs each driver it starts
    assert len(registry.versions(world.settings)) == versions


@pytest.mark.slow
def test_retraining_dag_with_bad_data_fails_the_gate_never_trains_and_keeps_the_champion(world: World, spark) -> None:
    champion, versions = registry.champion_version(world.settings), len(registry.versions(world.settings))
    # An upstream bug lands in silver: 30% of user_ids lost, and half the transactions labelled fraud.
    from delta.tables import DeltaTable

    DeltaTable.forPath(spark, world.table_path("silver", "transactions")).update(
        set={
            "user_id": "CASE WHEN pmod(hash(transaction_id), 10) < 3 THEN NULL ELSE user_id END",
            "is_fraud": "is_fraud OR pmod(hash(transaction_id, 7), 2) = 0",
        }
    )

    result = world.dags_test(BAD_RUN)
    log = result.stdout + result.stderr

    assert result.returncode != 0, log[-3000:]
    state = world.state(BAD_END)
    gate = state["gates"]["silver_transactions"]
    failed = {(f["expectation"], f["column"]): f["observed"] for f in gate["failures"]}
    assert set(failed) == {
        ("expect_column_values_to_not_be_null", "user_id"),
        ("expect_column_mean_to_be_between", "fraud_flag"),
    }
    null_share = float(failed["expect_column_values_to_not_be_null", "user_id"].split("(")[1].split("%")[0])
    assert 25 < null_share < 35, failed
    assert 0.4 < float(failed["expect_column_mean_to_be_between", "fraud_flag"]) < 0.6, failed
    # The failed expectations, with what was observed, are in the gate's task log.
    assert "silver_transactions: expect_column_values_to_not_be_null (user_id) observed" in log
    assert "silver_transactions: expect_column_mean_to_be_between (fraud_flag) observed" in log
    # Stopped before anything changed: no features refresh, no pin, no training, same champion.
    for task in ("refresh_features", "pin_training_window", "train_challenger", "promote_if_better"):
        assert f"starting task_id={task}" not in log, task
    assert "pin" not in state and "challenger" not in state
    assert registry.champion_version(world.settings) == champion and len(registry.versions(world.settings)) == versions
    assert state["recorded"] == "gate_failed"  # record_outcome ran anyway, and failed the run
