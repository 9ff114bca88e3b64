"""fraud_lakehouse_maintenance: keep the lakehouse healthy and say when it is not.

- ``streaming_health``: ``fraudlake stream status``: fails when a streaming job (ingest, scorer)
  has fallen behind its Kafka topic and stopped committing (see docs/operations.md for restarts);
- ``optimize_and_vacuum``: ``fraudlake maintain``: OPTIMIZE every table, then VACUUM files older
  than ``lakehouse.history_retention_hours`` (time travel and pinned training windows stay intact);
- ``reconcile``: ``fraudlake reconcile``: bronze = silver + quarantine, record by record.

Schedule: ``orchestration.maintenance_schedule``.
"""

from __future__ import annotations

from airflow.sdk import DAG

from lakehouse.cli.hosted import FraudlakeOperator
from lakehouse.platform.airflow import dag_arguments, settings

conf = settings()

with DAG(
    dag_id="fraud_lakehouse_maintenance",
    description="streaming health, OPTIMIZE + VACUUM, bronze = silver + quarantine",
    # no catch-up: the maintenance of missed weeks is the same as this week's
    **dag_arguments(conf, conf.orchestration.maintenance_schedule, catchup=False, tags=["maintenance"]),
    doc_md=__doc__,
) as dag:
    streaming_health = FraudlakeOperator(task_id="streaming_health", retries=0, command=["stream", "status"])
    optimize_and_vacuum = FraudlakeOperator(task_id="optimize_and_vacuum", command=["maintain"])
    reconcile = FraudlakeOperator(task_id="reconcile", command=["reconcile"])

    optimize_and_vacuum >> reconcile
