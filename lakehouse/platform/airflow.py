"""What the Airflow DAGs in ``dags/`` share: the schedule from the settings, the task defaults, the
templated data interval, and a local Airflow's variables. Cheap to import (no Spark, no Kafka): DAG
files are parsed often.

Each task is one ``fraudlake`` command (:class:`lakehouse.cli.hosted.FraudlakeOperator`), run in
the task's process with the worker's ``FRAUDLAKE_*`` variables, like every other entry point; the
DAGs need the project installed in Airflow's environment (``make airflow`` does that).
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from lakehouse.settings import Settings, load_settings

#: The end of the run's data interval, as rendered by Airflow (the key of a retraining run).
INTERVAL_END = "{{ data_interval_end.isoformat() }}"
#: The first day of the run's data interval (features are refreshed from there on).
INTERVAL_START_DAY = "{{ data_interval_start.strftime('%Y-%m-%d') }}"


def settings() -> Settings:
    """The settings the scheduler parses DAGs with (``FRAUDLAKE_ENV`` and friends apply)."""
    return load_settings()


def dag_arguments(conf: Settings, cron: str, *, catchup: bool, tags: list[str]) -> dict[str, Any]:
    """What every Fraudlake DAG passes to ``DAG``: a cron schedule with real data intervals (Airflow
    3's plain cron strings have none), the configured start date, one run at a time, one retry after
    five minutes for transient failures (a broker restart, a busy cluster)."""
    from airflow.timetables.interval import CronDataIntervalTimetable

    day = conf.orchestration.start_date
    return {
        "schedule": CronDataIntervalTimetable(cron, timezone="UTC"),
        "start_date": datetime(day.year, day.month, day.day, tzinfo=UTC),
        "catchup": catchup,
        "max_active_runs": 1,
        "default_args": {"owner": "fraudlake", "retries": 1, "retry_delay": timedelta(minutes=5)},
        "tags": ["fraudlake", *tags],
    }


def airflow_environ(settings: Settings) -> dict[str, str]:
    """The variables of a local Airflow for Fraudlake: its home and SQLite database under the data
    folder, the project's dags/, no example DAGs, the UI's address and port from the settings."""
    home = settings.airflow_home
    home.mkdir(parents=True, exist_ok=True)
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(settings.project_dir / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__API__PORT": str(settings.orchestration.airflow_port),
        "AIRFLOW__API__HOST": settings.orchestration.airflow_host,  # Airflow's default is every interface
        "FRAUDLAKE_ENV": settings.env,
        # `airflow standalone` starts its components as `airflow ...`: the project's interpreter first.
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]),
    }
