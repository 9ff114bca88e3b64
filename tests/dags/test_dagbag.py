"""The DAG files import cleanly (DagBag, zero errors), are wired as documented, schedule from the
settings, and do no work at parse time (no Spark, GX, MLflow or Kafka client imported)."""

from __future__ import annotations

import itertools
import subprocess
import sys

from lakehouse.platform.airflow import INTERVAL_END, INTERVAL_START_DAY
from tests.helpers import PROJECT_DIR

RETRAINING_ORDER = [
    "refresh_features",
    "pin_training_window",
    "validate_training_set",
    "train_challenger",
    "evaluate_challenger",
    "promote_if_better",
    "await_scorer_reload",
    "record_outcome",
]


def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(PROJECT_DIR / "dags"))


def test_dagbag_imports_both_dags_with_zero_errors(airflow_environ) -> None:
    bag = dagbag()
    assert bag.import_errors == {}
    assert set(bag.dag_ids) == {"fraud_model_retraining", "fraud_lakehouse_maintenance"}


def test_dagbag_retraining_dag_gates_before_training_and_always_records(airflow_environ, settings) -> None:
    from lakehouse.cli.hosted import FraudlakeOperator  # imports Airflow: only once its variables are set

    dag = dagbag().get_dag("fraud_model_retraining")
    tasks = {t.task_id: t for t in dag.tasks}
    assert set(tasks) == {"validate_silver", "validate_gold", *RETRAINING_ORDER}
    assert tasks["refresh_features"].upstream_task_ids == {"validate_silver", "validate_gold"}
    for before, after in itertools.pairwise(RETRAINING_ORDER):
        assert tasks[after].upstream_task_ids == {before}, after
    assert tasks["record_outcome"].trigger_rule == "all_done"
    for gate in ("validate_silver", "validate_gold", "validate_training_set"):
        assert tasks[gate].retries == 0, gate  # bad data is not transient
    assert tasks["record_outcome"].retries == 0  # its failure is the run's verdict, not a fault to retry
    for task in dag.tasks:  # no logic in the DAG: each task is one fraudlake command
        assert isinstance(task, FraudlakeOperator), task.task_id
    assert tasks["train_challenger"].command == ["retrain", "train", "--interval-end", INTERVAL_END]
    assert tasks["refresh_features"].command == ["features", "build", "--since", INTERVAL_START_DAY]
    assert dag.timetable.summary == settings.orchestration.retraining_schedule
    assert dag.max_active_runs == 1


def test_dagbag_maintenance_dag_checks_streams_optimizes_and_reconciles(airflow_environ, settings) -> None:
    dag = dagbag().get_dag("fraud_lakehouse_maintenance")
    commands = {t.task_id: t.command for t in dag.tasks}
    assert commands == {
        "streaming_health": ["stream", "status"],
        "optimize_and_vacuum": ["maintain"],
        "reconcile": ["reconcile"],
    }
    assert dag.get_task("reconcile").upstream_task_ids == {"optimize_and_vacuum"}
    assert dag.timetable.summary == settings.orchestration.maintenance_schedule


def test_dagbag_parsing_does_no_heavy_work() -> None:
    code = (
        "import runpy, sys\n"
        "for f in ('fraud_model_retraining', 'fraud_lakehouse_maintenance'):\n"
        f"    runpy.run_path({str(PROJECT_DIR / 'dags')!r} + '/' + f + '.py')\n"
        "heavy = ('pyspark', 'great_expectations', 'mlflow', 'delta', 'kafka', 'confluent_kafka')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=PROJECT_DIR)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
