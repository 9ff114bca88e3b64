"""fraud_lakehouse_maintenance: keep the lakehouse healthy and say when it is not.

- ``streaming_health``: ``fraudlake stream status``: fails when a streaming job (ingest, scorer)
  has fallen behind its Kafka topic and stopped committing (see docs/operations.md for restarts);
- ``optimize_and_vacuum``: ``fraudlake maintain``: OPTIMIZE every table, then VACUUM files older
  than ``lakehouse.history_retention_hours`` (time travel and pinned training windows stay intact);
- ``reconcile``: ``fraudlake reconcile``: bronze = silver + quarantine, record by record.

Schedule: ``orchestration.maintenance_schedule``.
"""

from __future__ import annotations

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG

from lakehouse.platform.airflow import dag_arguments, fraudlake, settings

conf = settings()

with DAG(
    dag_id="fraud_lakehouse_maintenance",
    description="streaming health, OPTIMIZE + VACUUM, bronze = silver + quarantine",
    # no catch-up: the maintenance of missed weeks is the same as this week's
    **dag_arguments(conf, conf.orchestration.maintenance_schedule, catchup=False, tags=["maintenance"]),
    doc_md=__doc__,
) as dag:
    streaming_health = BashOperator(task_id="streaming_health", retries=0, bash_command=fraudlake("stream", "status"))
    optimize_and_vacuum = BashOperator(task_id="optimize_and_vacuum", bash_command=fraudlake("maintain"))
    reconcile = BashOperator(task_id="reconcile", bash_command=fraudlake("reconcile"))

    optimize_and_vacuum >> reconcile
