"""The local Airflow's environment (no Airflow started)."""

from __future__ import annotations

from lakehouse.platform.airflow import airflow_environ


def test_local_airflow_listens_on_loopback_unless_configured(settings) -> None:
    """Defect: Airflow's API server bound to every interface (its own default)."""
    assert airflow_environ(settings)["AIRFLOW__API__HOST"] == "127.0.0.1"
    wide = settings.model_copy(
        update={"orchestration": settings.orchestration.model_copy(update={"airflow_host": "0.0.0.0"})}
    )
    assert airflow_environ(wide)["AIRFLOW__API__HOST"] == "0.0.0.0"
