"""Helpers shared by test modules (test modules never import each other)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from lakehouse.platform import isolation
from lakehouse.platform.isolation import environ_of as environ_of  # moved there: production code uses it too

#: A valid transaction record (the contract's fields), for tests of the record rules.
GOOD_TRANSACTION = {
    "transaction_id": "T1",
    "user_id": "U1",
    "merchant_id": "M1",
    "timestamp": "2026-10-01T12:00:00.000Z",
    "amount": 12.5,
    "currency": "EUR",
    "device_ip": "81.2.3.4",
    "is_fraud": False,
    "fraud_scenario": None,
}
#: The checkout under test (the folder holding conf/, jobs/ and lakehouse/).
PROJECT_DIR = Path(__file__).resolve().parent.parent


def still_running(process: subprocess.Popen, name: str, log: Path | None = None) -> Callable[[], None]:
    """A ``check`` for :func:`lakehouse.platform.waits.wait_until`: give up as soon as the job died
    (with the end of its ``log``, when it writes one, so the failure says why)."""

    def check() -> None:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log is not None and log.exists() else ""
            raise AssertionError(f"{name} exited early ({process.returncode})\n{tail}")

    return check


#: The real CLI and Airflow of this virtualenv (tests run them as their own processes).
FRAUDLAKE = str(Path(sys.executable).parent / "fraudlake")
AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def fraudlake(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FRAUDLAKE, *args], env=env, capture_output=True, text=True, timeout=timeout)


class DeltaCount:
    """A Delta table's row count for a wait to poll: counted again (a Spark job on the test
    session's driver) only when the table's log has a new commit, so a wait polling every 0.25 s
    does not keep the session's JVM busy beside the job under test on 2 cores. ``where`` filters
    the rows; a table that does not exist yet counts 0."""

    def __init__(self, spark, path: str | Path, where: str | None = None) -> None:
        # A folder, or a catalog location (``file:/...``) of a table on the local disk.
        self.spark, self.path, self.where = spark, Path(str(path).removeprefix("file:")), where
        self.version: str | None = None
        self.rows = 0

    def __call__(self) -> int:
        log = self.path / "_delta_log"
        commits = sorted(log.glob("*.json")) if log.is_dir() else []
        version = commits[-1].name if commits else None
        if version is not None and version != self.version:
            rows = self.spark.read.format("delta").load(str(self.path))
            self.rows = (rows.where(self.where) if self.where else rows).count()
            self.version = version
        return self.rows


def free_port() -> int:
    from lakehouse.platform.jvm import free_port as pick

    return pick()


@contextlib.contextmanager
def environ_set(values: dict[str, str]) -> Iterator[None]:
    """``values`` in os.environ (subprocesses inherit them) until the block ends, then as before."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def ingest_world(settings, tmp_path, **simulator_changes):
    """The session settings with this test's own topics, catalog schemas, checkpoints, small world."""
    return isolation.isolated(
        settings,
        topics=True,
        checkpoint_dir=tmp_path / "checkpoints",
        simulator={
            "users": 300,
            "merchants": 90,
            "cities": 10,
            "days": 3,
            "transactions": 6000,
            "fraud_rate": 0.03,
            "bad_records": {"late_by_hours": 3},
            **simulator_changes,
        },
        streaming={"max_records_per_trigger": 1500},
    )


#: The last commit before the restructuring (issue 14): the release whose checkpoints must resume.
PREVIOUS_RELEASE = "3c5cf6c52c158bf9a8ef0409036058cb81596ea7"


def release_environ(code: Path, env: dict[str, str]) -> dict[str, str]:
    """``env`` for running the release unpacked in ``code`` (``python -m jobs.<name>`` with
    ``cwd=code``): its own code and conf/, this checkout's jars."""
    jars = {
        "FRAUDLAKE_SPARK__JARS_DIR": PROJECT_DIR / ".jars" / "spark",
        "FRAUDLAKE_KAFKA__BROKER__JARS_DIR": PROJECT_DIR / ".jars" / "kafka",
        "FRAUDLAKE_SPARK__CATALOG_SERVER__JARS_DIR": PROJECT_DIR / ".jars" / "catalog",
    }
    own = {**env, "PYTHONPATH": str(code), "FRAUDLAKE_CONF_DIR": str(code / "conf")}
    own.update({name: str(folder) for name, folder in jars.items()})
    return own


#: Static-frame schemas of silver transactions and the profile versions (feature transform tests).
TX = (
    "transaction_id string, user_id string, merchant_id string, event_time timestamp, event_date date, "
    "amount double, currency string, device_ip string, is_fraud boolean, fraud_scenario string, "
    "_partition int, _offset bigint, _ingested_at timestamp"
)
USERS = (
    "user_id string, age int, signup_date date, latitude double, longitude double, updated_at timestamp, "
    "_partition int, _offset bigint"
)
MERCHANTS = (
    "merchant_id string, category string, latitude double, longitude double, updated_at timestamp, "
    "_partition int, _offset bigint"
)


def write_checkpoint(folder, batches: dict[int, dict], committed: list[int], metadata: dict | None = None) -> None:
    """A streaming checkpoint as Spark writes it: offsets/<batch> (per source, its offsets) and commits/<batch>."""
    (folder / "offsets").mkdir(parents=True)
    (folder / "commits").mkdir()
    for batch, source in batches.items():
        (folder / "offsets" / str(batch)).write_text(
            "v1\n" + json.dumps(metadata or {"batchWatermarkMs": 0}) + "\n" + json.dumps(source) + "\n"
        )
    for batch in committed:
        (folder / "commits" / str(batch)).write_text('v1\n{"nextBatchWatermarkMs":0}\n')
        (folder / "commits" / f".{batch}.crc").write_text("")


def read_alerts(settings, done: Callable[[list[dict]], bool], timeout_s: float = 120) -> list[tuple[str, dict]]:
    """Every record of the alert topic (key, parsed value): reads until the topic is idle for a
    second and ``done(values)`` holds."""
    from lakehouse.platform.kafka.clients import consumer

    reader = consumer(settings.kafka, settings.kafka.topics.alerts.name, group_id=None, consumer_timeout_ms=1000)
    records: list[tuple[str, dict]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            for message in reader:
                records.append((message.key.decode(), json.loads(message.value)))
            if done([value for _, value in records]):
                return records
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{len(records)} alerts on {settings.kafka.topics.alerts.name}: not what was expected"
                )
    finally:
        reader.close()


def ids_seen(expected: set[str]) -> Callable[[list[dict]], bool]:
    return lambda values: expected <= {v["alert_id"] for v in values}
