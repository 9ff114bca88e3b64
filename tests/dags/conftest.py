"""Airflow for the DAG tests: its own AIRFLOW_HOME with a SQLite metadata database, the project's
dags/ folder, no examples. Set before anything imports Airflow (it reads its config once)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from tests.helpers import AIRFLOW, PROJECT_DIR, environ_set


@pytest.fixture(scope="session")
def airflow_environ(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    home = tmp_path_factory.mktemp("airflow-home")
    values = {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_DIR / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
    }
    with environ_set(values):
        migrate = subprocess.run([AIRFLOW, "db", "migrate"], capture_output=True, text=True, timeout=300)
        assert migrate.returncode == 0, migrate.stdout[-3000:] + migrate.stderr[-3000:]
        yield values
