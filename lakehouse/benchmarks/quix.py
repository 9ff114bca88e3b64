"""The Quix Streams pipeline's side in ``fraudlake bench score``: its virtualenv, its process, its
figures. The app itself is :mod:`lakehouse.benchmarks.quix_app`.

quixstreams 3.28 requires confluent-kafka < 2.13 and pydantic < 2.14, below the versions the
product pins (its producer and Airflow need them), so it cannot share the product's environment.
It gets its own virtualenv under ``<paths.data_dir>/venvs/``, made on first use with pip and then
reused, holding quixstreams and the numpy, pandas and pyarrow versions of the product's own
environment (the kernel must compute the same numbers in both). The app runs in it with the
project folder on ``PYTHONPATH``, like a job, in its own process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from lakehouse.settings import Settings

QUIXSTREAMS = "quixstreams==3.28.1"
#: Shared with the product's environment at the same versions (see the module doc).
SAME_AS_PRODUCT = ("numpy", "pandas", "pyarrow")
STOP_TIMEOUT_S = 60.0


class QuixUnavailable(RuntimeError):
    """The Quix Streams environment could not be made (no PyPI, a failed install)."""


def requirements() -> list[str]:
    return [QUIXSTREAMS, *(f"{name}=={metadata.version(name)}" for name in SAME_AS_PRODUCT)]


def quix_python(settings: Settings) -> Path:
    """The interpreter of the Quix Streams virtualenv, made (or remade, when the requirements
    changed) on first use."""
    wanted = requirements()
    folder = Path(settings.paths.data_dir) / "venvs" / QUIXSTREAMS.replace("==", "-")
    python = folder / "bin" / "python"
    marker = folder / "requirements.json"
    if python.exists() and marker.exists() and json.loads(marker.read_text()) == wanted:
        return python
    steps = [
        [sys.executable, "-m", "venv", "--clear", str(folder)],
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *wanted],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise QuixUnavailable(
                f"could not make the Quix Streams environment in {folder} ({' '.join(step[:4])} ...): "
                + " | ".join(tail)
            )
    marker.write_text(json.dumps(wanted))
    return python


@dataclass
class QuixRun:
    """A running Quix app, shaped like the Spark queries the benchmark drives."""

    process: subprocess.Popen
    result: Path
    log: Path
    consumer_group: str

    @property
    def isActive(self) -> bool:
        return self.process.poll() is None

    def exception(self) -> str | None:
        if self.process.poll() in (None, 0):
            return None
        tail = self.log.read_text(errors="replace").strip().splitlines()[-5:]
        return f"the Quix app exited with {self.process.returncode}: " + " | ".join(tail)

    def stop(self) -> None:
        if self.isActive:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def awaitTermination(self) -> None:
        self.process.wait()

    def figures(self) -> dict[str, Any]:
        """What the app wrote when it stopped: ``processed`` input messages, ``seconds`` from the
        first message to the end of the run (outputs flushed), ``skipped`` records, ``steps``
        (seconds in each of :data:`lakehouse.scoring.event.STEPS`, summed over messages)."""
        if not self.result.exists():
            raise RuntimeError(self.exception() or "the Quix app wrote no figures")
        return json.loads(self.result.read_text())


def start_quix(
    settings: Settings,
    *,
    source: str,
    scored_topic: str,
    alerts_topic: str,
    serving_dir: Path,
    folder: Path,
    stop_after: int = 0,
) -> QuixRun:
    """Start the Quix scorer on ``source`` (from its earliest offsets, a new consumer group and
    state), with the model and snapshot of ``serving_dir``; with ``stop_after``, it stops after
    that many input messages."""
    from lakehouse.features.history import history_settings

    if settings.kafka.security_protocol != "PLAINTEXT":
        raise QuixUnavailable("the Quix pipeline of bench score runs against a PLAINTEXT broker only")
    history = history_settings(settings)
    run_dir = folder / f"quix-{uuid.uuid4().hex[:10]}"
    run_dir.mkdir(parents=True)
    group = f"bench-quix-{run_dir.name}"
    config = {
        "bootstrap_servers": settings.kafka.bootstrap,
        "consumer_group": group,
        "source": source,
        "state_dir": str(run_dir / "state"),
        "result": str(run_dir / "result.json"),
        "stop_after": stop_after,
        "scorer": {
            "serving_dir": str(serving_dir),
            "feedback_delay_days": settings.features.feedback_delay_days,
            "lateness_us": history["lateness_us"],
            "max_events": history["max_events"],
            "scored_topic": scored_topic,
            "alerts_topic": alerts_topic,
        },
    }
    (run_dir / "config.json").write_text(json.dumps(config))
    log = run_dir / "app.log"
    env = {**os.environ, "PYTHONPATH": str(settings.project_dir)}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(quix_python(settings)), "-m", "lakehouse.benchmarks.quix_app", str(run_dir / "config.json")],
            cwd=settings.project_dir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return QuixRun(process, run_dir / "result.json", log, group)
