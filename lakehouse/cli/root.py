"""``fraudlake``: the root of the command line. It holds the global options and ``main``, and
assembles the command modules; each module is a Typer app with the commands of one concern.

Settings are loaded once, in the root callback, and handed to each command through the context.
Long-running Spark jobs run as their own processes (``python -m jobs.<name>``); short Spark
commands (sql, reconcile, maintain) build a session in the CLI process. Spark and pyspark are
imported lazily, so commands that do not need them start fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lakehouse.cli import (
    alerts,
    bench,
    console,
    decisions,
    demo,
    features,
    ingest,
    models,
    operations,
    platform,
    quality,
    retraining,
    simulator,
    stream,
)
from lakehouse.platform.entrypoint import configure_logging, exit_on_error, private_files
from lakehouse.settings import load_settings

app = typer.Typer(
    help="Fraudlake: real-time payment-fraud detection on a lakehouse (Kafka, Spark, Delta).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# In workflow order, which is the order `fraudlake --help` lists the commands in.
for commands in (
    platform,
    simulator,
    ingest,
    stream,
    features,
    models,
    alerts,
    console,
    decisions,
    operations,
    quality,
    retraining,
):
    app.add_typer(commands.app)
app.add_typer(bench.app)
app.add_typer(demo.app)


@app.callback()
def main_options(
    ctx: typer.Context,
    env: Annotated[
        str | None,
        typer.Option(
            "--env",
            "-e",
            help="Config environment: local (default), secure, test, cluster, cluster-local. Or FRAUDLAKE_ENV.",
        ),
    ] = None,
    conf_dir: Annotated[
        Path | None,
        typer.Option("--conf-dir", help="Folder holding base.yaml and the overlays. Or FRAUDLAKE_CONF_DIR."),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging, client libraries included.")] = False,
) -> None:
    configure_logging(verbose, hosted=bool((ctx.obj or {}).get("hosted")))
    private_files()
    settings = load_settings(env, conf_dir)
    ctx.obj = {"settings": settings, "conf_dir": conf_dir}


def main(argv: list[str] | None = None, *, hosted: bool = False) -> None:
    """Console-script entry point: expected errors become one line on stderr, no stack trace.
    Ends with ``SystemExit`` carrying the exit code. ``hosted``: run inside a process that owns
    logging (an Airflow task, :mod:`lakehouse.cli.hosted`)."""
    with exit_on_error():
        app(args=argv, prog_name="fraudlake", obj={"hosted": hosted})
