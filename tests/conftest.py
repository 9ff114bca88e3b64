"""Session fixtures: one broker, one Redis and one SparkSession for the whole run, each test its
own topics and folders. Settings come from the ``test`` overlay; the session points
``paths.data_dir`` at a temporary folder and picks free ports through FRAUDLAKE_* variables, which
subprocesses (the real ``fraudlake`` CLI) inherit.
"""

from __future__ import annotations

import io
import logging
import os
import subprocess
import tarfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lakehouse.settings import Settings, TopicSettings, load_settings
from tests.helpers import PREVIOUS_RELEASE, PROJECT_DIR, environ_set, free_port

pytest_plugins = ["tests.faults_lane"]

# The test session is an entry point: quiet the client libraries that narrate every connection
# attempt (a failing test's captured log should show our messages, not kafka-python's retries).
for _name in ("kafka", "librdkafka", "py4j"):
    logging.getLogger(_name).setLevel(logging.CRITICAL)


LANES = ("unit", "integration", "dags", "e2e")


@pytest.fixture(autouse=True)
def _root_log_handlers() -> Iterator[None]:
    """An in-process CLI run configures logging onto the stderr that pytest captures for that test
    and closes after it; the root logger gets its handlers back, so later tests do not log into a
    closed stream."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The lane of a test is its folder (so `-m unit` is the fast lane); `spark` marks every test
    that uses the session's SparkSession, directly or through a fixture. (The faults lane's tests
    run only with ``--faults``, and then alone: tests/faults_lane.py.)"""
    for item in items:
        parts = Path(str(item.fspath)).relative_to(PROJECT_DIR / "tests").parts
        if parts and parts[0] in LANES:
            item.add_marker(parts[0])
        if "spark" in getattr(item, "fixturenames", ()):
            item.add_marker("spark")


@pytest.fixture(scope="session")
def test_environ(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """FRAUDLAKE_* variables of this test session (also exported to os.environ for subprocesses)."""
    data_dir = tmp_path_factory.mktemp("fraudlake-data")
    ports: list[int] = []
    while len(ports) < 4:  # the broker's two, the decision service's and its Redis's: all distinct
        if (port := free_port()) not in ports:
            ports.append(port)
    values = {
        "FRAUDLAKE_ENV": "test",
        "FRAUDLAKE_PATHS__DATA_DIR": str(data_dir),
        "FRAUDLAKE_KAFKA__BROKER__PORT": str(ports[0]),
        "FRAUDLAKE_KAFKA__BROKER__CONTROLLER_PORT": str(ports[1]),
        "FRAUDLAKE_DECISIONS__PORT": str(ports[2]),
        "FRAUDLAKE_DECISIONS__REDIS__SERVER__PORT": str(ports[3]),
    }
    with environ_set(values):
        yield values


@pytest.fixture(scope="session")
def settings(test_environ: dict[str, str]) -> Settings:
    return load_settings("test")


@pytest.fixture(scope="session")
def kafka_broker(settings: Settings) -> Iterator[Settings]:
    """A real single-node KRaft broker for the session; stopped at the end."""
    from lakehouse.platform.kafka.broker import LocalBroker

    broker = LocalBroker(settings)
    broker.up()
    yield settings
    broker.down()


@pytest.fixture(scope="session")
def redis_server(settings: Settings) -> Iterator[Settings]:
    """The local Redis of the decision service for the session (on the session's free port, data in
    its data dir); stopped at the end. A test reaches it with
    ``lakehouse.platform.redis.redis_client(redis_server)``."""
    from lakehouse.platform.redis import LocalRedis

    server = LocalRedis(settings)
    server.up()
    yield settings
    server.down()


@pytest.fixture(scope="session")
def spark(settings: Settings):
    """The one SparkSession of the test run (local[2], 2 shuffle partitions, UI off)."""
    from lakehouse.platform.spark import build_spark

    session = build_spark(settings, app_name="fraudlake-tests")
    yield session
    session.stop()


@pytest.fixture
def make_topic(kafka_broker: Settings) -> Iterator[Callable[..., str]]:
    """Create uuid-named topics owned by one test; deleted afterwards."""
    from lakehouse.platform.kafka.topics import delete_topics, ensure_topics

    created: list[str] = []

    def factory(prefix: str = "test", partitions: int = 2) -> str:
        topic = TopicSettings(
            name=f"{prefix}_{uuid.uuid4().hex[:10]}", partitions=partitions, replication_factor=1, retention_ms=-1
        )
        ensure_topics(kafka_broker.kafka, [topic])
        created.append(topic.name)
        return topic.name

    yield factory
    if created:
        delete_topics(kafka_broker.kafka, created)


@pytest.fixture
def cli_env(test_environ: dict[str, str]) -> dict[str, str]:
    """The environment for running the real ``fraudlake`` CLI against this session's platform."""
    return {**os.environ, **test_environ}


@pytest.fixture(scope="session")
def previous_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The previous release's code and config (``PREVIOUS_RELEASE``), unpacked from git."""
    folder = tmp_path_factory.mktemp("previous-release")
    archive = subprocess.run(
        ["git", "archive", "--format=tar", PREVIOUS_RELEASE, "lakehouse", "jobs", "conf"],
        cwd=PROJECT_DIR,
        capture_output=True,
    )
    assert archive.returncode == 0, f"the previous release {PREVIOUS_RELEASE} is not in git: {archive.stderr!r}"
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(folder, filter="data")
    return folder
