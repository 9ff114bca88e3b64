"""The local catalog server: several Spark processes share one persistent catalog at once (an
embedded Derby catalog admits one), `fraudlake catalog up` is idempotent, and only its user may
connect."""

from __future__ import annotations

import subprocess

import pytest

from lakehouse.platform.spark import class_archive_path, spark_conf
from lakehouse.settings import load_settings
from tests.helpers import FRAUDLAKE, fraudlake, free_port

pytestmark = pytest.mark.integration


@pytest.mark.slow
def test_catalog_server_shared_by_concurrent_spark_processes(cli_env, spark, tmp_path) -> None:
    port = free_port()
    env = {
        **cli_env,
        "FRAUDLAKE_PATHS__DATA_DIR": str(tmp_path / "data"),
        "FRAUDLAKE_SPARK__CATALOG": "derby-server",
        "FRAUDLAKE_SPARK__CATALOG_SERVER__PORT": str(port),
    }
    down = fraudlake("sql", "SHOW DATABASES", env=env)
    assert down.returncode == 4 and "fraudlake catalog up" in down.stderr and "Traceback" not in down.stderr

    first = fraudlake("catalog", "up", env=env)
    try:
        assert first.returncode == 0 and "started" in first.stdout, first.stderr
        assert "already running" in fraudlake("catalog", "up", env=env).stdout
        # The first Spark driver alone: it creates the metastore's tables (two drivers doing that
        # at once on a fresh catalog wait on each other's locks for up to Derby's 60 s).
        created = fraudlake("sql", "--write", "CREATE TABLE default.probe_1 USING DELTA AS SELECT 1 AS id", env=env)
        assert created.returncode == 0, created.stderr[-2000:]
        # Defect: any local user could connect and rewrite table locations. Only its user may now.
        properties = tmp_path / "data" / "metastore" / "derby.properties"
        assert properties.stat().st_mode & 0o077 == 0
        for credentials in ((), ("APP", "guess")):
            with pytest.raises(Exception, match=r"(?i)connection authentication failure|userid or password"):
                spark._jvm.java.sql.DriverManager.getConnection(
                    f"jdbc:derby://127.0.0.1:{port}/metastore_db", *credentials
                )

        # Then two drivers at the same time, each with the catalog open: one writes a table, the
        # other reads the first process's table. The reader's class-data archive is damaged: it
        # starts without it, its output unchanged (the JVM's warnings go to stderr).
        stale = {**env, "FRAUDLAKE_SPARK__CLASS_ARCHIVE_DIR": str(tmp_path / "archive")}
        settings = load_settings(environ=stale)
        archive = class_archive_path(settings, spark_conf(settings))
        archive.parent.mkdir()
        archive.write_bytes(b"not an archive")
        both = [
            subprocess.Popen(
                [*_cli(), "sql", *statement, "--format", "csv"],
                env=environ,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for statement, environ in (
                (("--write", "CREATE TABLE default.probe_2 USING DELTA AS SELECT 2 AS id"), env),
                (("SELECT count(*) AS n FROM default.probe_1",), stale),
            )
        ]
        outputs = [p.communicate(timeout=300) for p in both]
        assert [p.returncode for p in both] == [0, 0], [err[-2000:] for _, err in outputs]
        assert outputs[1][0].strip().splitlines() == ["n", "1"], outputs[1][1][-2000:]
    finally:
        stopped = fraudlake("catalog", "down", env=env)
    assert "stopped" in stopped.stdout
    assert fraudlake("catalog", "status", env=env).returncode == 3


def _cli() -> list[str]:

    return [FRAUDLAKE]
