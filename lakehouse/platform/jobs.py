"""Job launching: each ``jobs.<module>`` entry point runs in its own Python process, started here.

The child runs with this interpreter, in the project folder, with ``--env`` of the caller's
settings and the caller's environment (``FRAUDLAKE_*`` variables included), so it loads the same
settings; a config folder chosen on the command line is passed as ``FRAUDLAKE_CONF_DIR``.
Variables meant for one command only (:data:`COMMAND_VARIABLES`) are left out.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import IO

from lakehouse.settings import Settings

#: Read by one command only: the webhook URL may hold a token, so job processes never see it.
COMMAND_VARIABLES = frozenset({"FRAUDLAKE_ALERTS_WEBHOOK"})

#: A job that runs several steps prints a line per finished step, with this prefix, for its caller
#: (the demo) to show: ``step: <name>: <seconds> s``.
STEP_PREFIX = "step: "


def step_line(name: str, seconds: float) -> str:
    return f"{STEP_PREFIX}{name}: {seconds:,.0f} s"


def step_lines(output: str) -> list[str]:
    """A job's finished steps, ``<name>: <seconds> s``, from its output."""
    return [line.removeprefix(STEP_PREFIX) for line in output.splitlines() if line.startswith(STEP_PREFIX)]


#: Where a child's output goes: a file, ``subprocess.STDOUT`` (stderr only), or None (inherited).
Stream = IO[str] | IO[bytes] | int | None


def job_command(settings: Settings, module: str, *args: str) -> list[str]:
    """The command line of ``jobs.<module>`` with the caller's interpreter and environment name."""
    return [sys.executable, "-m", f"jobs.{module}", "--env", settings.env, *args]


def job_environ(conf_dir: Path | str | None = None) -> dict[str, str]:
    """The environment of a job: this process's, minus :data:`COMMAND_VARIABLES`, plus the config
    folder when one was chosen."""
    env = {k: v for k, v in os.environ.items() if k not in COMMAND_VARIABLES}
    if conf_dir:
        env["FRAUDLAKE_CONF_DIR"] = str(Path(conf_dir).resolve())
    return env


def start_job(
    settings: Settings,
    module: str,
    *args: str,
    conf_dir: Path | str | None = None,
    stdout: Stream = None,
    stderr: Stream = None,
) -> subprocess.Popen:
    """Start ``jobs.<module>`` and return at once (the caller waits for it or stops it)."""
    return subprocess.Popen(
        job_command(settings, module, *args),
        cwd=settings.project_dir,
        env=job_environ(conf_dir),
        stdout=stdout,
        stderr=stderr,
    )


def run_job(
    settings: Settings,
    module: str,
    *args: str,
    conf_dir: Path | str | None = None,
    stdout: Stream = None,
    stderr: Stream = None,
    wait_through_ctrl_c: bool = False,
) -> int:
    """Run ``jobs.<module>`` to its end and return its exit code.

    ``wait_through_ctrl_c``: for a streaming job run from a terminal. The terminal sends SIGINT to
    the job as well, which then stops its queries cleanly; this process keeps waiting for it
    (left to itself, the wait would be interrupted and kill the job mid-stop).
    """
    if not wait_through_ctrl_c:
        return _wait(start_job(settings, module, *args, conf_dir=conf_dir, stdout=stdout, stderr=stderr))
    # A handler that does nothing, not SIG_IGN: an ignored SIGINT would be inherited by the job.
    previous = signal.signal(signal.SIGINT, lambda _signum, _frame: None)
    try:
        return _wait(start_job(settings, module, *args, conf_dir=conf_dir, stdout=stdout, stderr=stderr))
    finally:
        signal.signal(signal.SIGINT, previous)


def _wait(process: subprocess.Popen) -> int:
    """The exit code of ``process``; like :func:`subprocess.call`, it never outlives an interrupted wait."""
    with process:
        try:
            return process.wait()
        except BaseException:
            process.kill()
            raise
