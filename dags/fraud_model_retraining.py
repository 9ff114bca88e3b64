"""fraud_model_retraining: data-quality gates, then a challenger, promoted only when it is better.

validate silver ─┐
                 ├─> refresh features ─> pin training window ─> validate training set ─> train challenger
validate gold ───┘      ─> evaluate vs champion ─> promote if better ─> await scorer reload ─> record outcome

Every task is a ``fraudlake`` command keyed by the run's data interval (see
``lakehouse/retraining/steps.py``): re-running a task, or the whole run, repeats nothing that was done
and never trains a second challenger. A failed gate stops the run before training (the failed
expectations are in the gate's task log); the champion is untouched; ``record_outcome`` runs
whatever happened and fails the run when it did not complete. Schedule:
``orchestration.retraining_schedule``.
"""

from __future__ import annotations

from airflow.sdk import DAG

from lakehouse.cli.hosted import FraudlakeOperator
from lakehouse.platform.airflow import INTERVAL_END, INTERVAL_START_DAY, dag_arguments, settings
from lakehouse.retraining.steps import DATA_GATES, TRAINING_GATE

conf = settings()

with DAG(
    dag_id="fraud_model_retraining",
    description="GX gates → features → pinned training window → challenger → promote if better → hot reload",
    # one run at a time: each compares its challenger with the champion the previous one left
    **dag_arguments(conf, conf.orchestration.retraining_schedule, catchup=conf.orchestration.catchup, tags=["ml"]),
    doc_md=__doc__,
) as dag:
    validate_silver = FraudlakeOperator(
        task_id="validate_silver",
        retries=0,
        command=["validate", *DATA_GATES[:3], "--interval-end", INTERVAL_END],
    )
    validate_gold = FraudlakeOperator(
        task_id="validate_gold",
        retries=0,
        command=["validate", DATA_GATES[3], "--interval-end", INTERVAL_END],
    )
    refresh_features = FraudlakeOperator(
        task_id="refresh_features", command=["features", "build", "--since", INTERVAL_START_DAY]
    )
    pin_window = FraudlakeOperator(
        task_id="pin_training_window", command=["retrain", "pin", "--interval-end", INTERVAL_END]
    )
    validate_training_set = FraudlakeOperator(
        task_id="validate_training_set",
        retries=0,
        command=["validate", TRAINING_GATE, "--interval-end", INTERVAL_END],
    )
    train = FraudlakeOperator(task_id="train_challenger", command=["retrain", "train", "--interval-end", INTERVAL_END])
    evaluate = FraudlakeOperator(
        task_id="evaluate_challenger", command=["retrain", "evaluate", "--interval-end", INTERVAL_END]
    )
    promote = FraudlakeOperator(
        task_id="promote_if_better", command=["retrain", "promote", "--interval-end", INTERVAL_END]
    )
    reload = FraudlakeOperator(
        task_id="await_scorer_reload", command=["retrain", "await-scorer", "--interval-end", INTERVAL_END]
    )
    record = FraudlakeOperator(
        task_id="record_outcome",
        trigger_rule="all_done",
        # its failure is the verdict "this run did not complete", not a transient fault: a retry
        # five minutes later would only repeat it (and hold the run open)
        retries=0,
        command=["retrain", "record", "--interval-end", INTERVAL_END],
    )

    (
        [validate_silver, validate_gold]
        >> refresh_features
        >> pin_window
        >> validate_training_set
        >> train
        >> evaluate
        >> promote
        >> reload
        >> record
    )
