"""What the command modules share: the console, the settings of this invocation (loaded once by the
root callback, :mod:`lakehouse.cli.root`), a Spark session built from them, and job launching with
the same settings. Holds no commands; the command modules import it, it imports none of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer
from rich.console import Console

from lakehouse.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

console = Console()


def settings_of(ctx: typer.Context) -> Settings:
    """The settings the root callback loaded (``--env``, ``--conf-dir``, ``FRAUDLAKE_*``)."""
    return ctx.obj["settings"]


def spark_session(ctx: typer.Context, app_name: str) -> SparkSession:
    """A SparkSession for a short command run in the CLI process (pyspark imported only now)."""
    from lakehouse.platform.spark import build_spark

    return build_spark(settings_of(ctx), app_name=app_name)


def run_job(ctx: typer.Context, module: str, *args: str, wait_through_ctrl_c: bool = False) -> int:
    """Run ``jobs.<module>`` in its own Python process with this invocation's settings and config
    folder; returns its exit code (see :func:`lakehouse.platform.jobs.run_job`)."""
    from lakehouse.platform.jobs import run_job as launch

    settings = settings_of(ctx)
    conf_dir = ctx.obj.get("conf_dir")
    return launch(settings, module, *args, conf_dir=conf_dir, wait_through_ctrl_c=wait_through_ctrl_c)
