"""A ``fraudlake`` command as an Airflow task: :class:`FraudlakeOperator` runs the command line's own
``main`` inside the task's process, with the task's ``FRAUDLAKE_*`` variables.

Why in-process rather than a shell running ``python -m lakehouse``: the command is the same (the
same arguments, settings, output and exit code), but the task's process starts one Spark driver
and imports Great Expectations once, where a shell command paid both again (about 15 s on 2
cores) for each task. On a scheduler every task still runs in its own process (Airflow's task
runner); where several tasks share one process (``airflow dags test``), they share one driver.
Commands that launch a job (``features build``) still start it as its own process.

Parsing a DAG that uses it imports Airflow and the command line's modules, nothing heavier.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator


class FraudlakeCommandFailed(Exception):
    """The command ended with an exit code other than 0 (its own message is already in the log)."""


def run_fraudlake(argv: Sequence[str]) -> None:
    """Run ``fraudlake <argv>`` in this process; raise :class:`FraudlakeCommandFailed` on a non-zero exit."""
    from lakehouse.cli.root import main

    try:
        main(list(argv), hosted=True)
    except SystemExit as done:
        if done.code not in (0, None):
            raise FraudlakeCommandFailed(f"fraudlake {shlex.join(argv)} exited with code {done.code}") from None


class FraudlakeOperator(BaseOperator):
    """One ``fraudlake`` command (its arguments may hold Jinja, e.g. the data interval)."""

    template_fields: Sequence[str] = ("command",)
    ui_color = "#e8f1fb"

    def __init__(self, *, command: Sequence[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.command = list(command)

    def execute(self, context: Any) -> None:
        self.log.info("fraudlake %s", shlex.join(self.command))
        run_fraudlake(self.command)
