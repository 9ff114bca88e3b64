"""``fraudlake``: the command line of the platform.

Settings are loaded once, in the top-level callback, and handed to each command. Spark jobs run as
their own processes (``python -m jobs.<name>``), so the CLI itself starts no JVM but the broker's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from lakehouse.cli_support import configure_logging, exit_on_error
from lakehouse.settings import Settings, load_settings

console = Console()
app = typer.Typer(
    help="Fraudlake: real-time payment-fraud detection on a lakehouse (Kafka, Spark, Delta).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
kafka_app = typer.Typer(help="Run the local Kafka broker (KRaft, one JVM): up, down, status.", no_args_is_help=True)
topics_app = typer.Typer(help="Kafka topics from config: ensure (create the missing), list.", no_args_is_help=True)
config_app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)
app.add_typer(kafka_app, name="kafka")
app.add_typer(topics_app, name="topics")
app.add_typer(config_app, name="config")


def _settings(ctx: typer.Context) -> Settings:
    return ctx.obj["settings"]


@app.callback()
def main_options(
    ctx: typer.Context,
    env: Annotated[
        str | None,
        typer.Option("--env", "-e", help="Config environment: local (default), test, cluster. Or FRAUDLAKE_ENV."),
    ] = None,
    conf_dir: Annotated[
        Path | None, typer.Option("--conf-dir", help="Folder holding base.yaml and the overlays. Or FRAUDLAKE_CONF_DIR.")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging, client libraries included.")] = False,
) -> None:
    configure_logging(verbose)
    settings = load_settings(env, conf_dir)
    ctx.obj = {"settings": settings, "conf_dir": conf_dir}


# ----------------------------------------------------------------------------- kafka


@kafka_app.command("up")
def kafka_up(ctx: typer.Context) -> None:
    """Start the local broker (formats its storage the first time) and wait until it answers.

    Harmless when it already runs. Data and logs go under paths.data_dir (kafka/).
    """
    from lakehouse.kafka.broker import LocalBroker

    status, started = LocalBroker(_settings(ctx)).up()
    verb = "started" if started else "already running"
    console.print(f"Kafka broker {verb} at [bold]{status.address}[/] (pid {status.pid}, data in {status.data_dir})")


@kafka_app.command("down")
def kafka_down(ctx: typer.Context) -> None:
    """Stop the local broker cleanly; topics and their data stay for the next `up`."""
    from lakehouse.kafka.broker import LocalBroker

    broker = LocalBroker(_settings(ctx))
    stopped = broker.down()
    console.print(f"Kafka broker at {broker.address} {'stopped' if stopped else 'was not running'}")


@kafka_app.command("status")
def kafka_status(ctx: typer.Context) -> None:
    """Say whether the broker is up, its address and its topics. Exits 3 when it is down."""
    from lakehouse.kafka.broker import LocalBroker

    settings = _settings(ctx)
    status = LocalBroker(settings).status()
    if status.topics is None:
        console.print(f"Kafka broker at {settings.kafka.bootstrap}: [red]down[/]")
        raise typer.Exit(3)
    pid = f", pid {status.pid}" if status.pid else ""
    console.print(f"Kafka broker at {settings.kafka.bootstrap}: [green]up[/]{pid}")
    console.print(f"topics: {', '.join(status.topics) if status.topics else '(none)'}")


# ----------------------------------------------------------------------------- topics


@topics_app.command("ensure")
def topics_ensure(ctx: typer.Context) -> None:
    """Create the configured topics that are missing (transactions, users, merchants, alerts)."""
    from lakehouse.kafka.topics import ensure_topics

    kafka = _settings(ctx).kafka
    result = ensure_topics(kafka)
    for topic in kafka.topics.all():
        state = "created" if topic.name in result.created else "exists"
        console.print(f"{topic.name:<24} {state:<8} partitions={topic.partitions} retention.ms={topic.retention_ms}")


@topics_app.command("list")
def topics_list(
    ctx: typer.Context,
    internal: Annotated[bool, typer.Option("--internal", help="Include __consumer_offsets and friends.")] = False,
) -> None:
    """List the topics on the broker."""
    from lakehouse.kafka.topics import list_topics

    for name in list_topics(_settings(ctx).kafka, include_internal=internal):
        console.print(name)


# ----------------------------------------------------------------------------- config


@config_app.command("show")
def config_show(ctx: typer.Context) -> None:
    """Print the effective settings (base + overlay + FRAUDLAKE_* variables) as JSON; secrets masked."""
    print(json.dumps(_settings(ctx).redacted(), indent=2))


# ----------------------------------------------------------------------------- jobs


@app.command("smoke")
def smoke(
    ctx: typer.Context,
    count: Annotated[int, typer.Option(help="Records to send through the round trip.")] = 100,
) -> None:
    """Prove the platform works: Kafka round trip, Spark's Kafka source, a Delta table and time travel.

    Needs the broker: `fraudlake kafka up` first.
    """
    raise typer.Exit(run_job(ctx, "smoke_roundtrip", "--count", str(count)))


def run_job(ctx: typer.Context, module: str, *args: str) -> int:
    """Run ``jobs.<module>`` in its own Python process with the same settings; returns its exit code."""
    settings = _settings(ctx)
    env = dict(os.environ)
    if ctx.obj.get("conf_dir"):
        env["FRAUDLAKE_CONF_DIR"] = str(Path(ctx.obj["conf_dir"]).resolve())
    command = [sys.executable, "-m", f"jobs.{module}", "--env", settings.env, *args]
    return subprocess.call(command, cwd=settings.project_dir, env=env)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: expected errors become one line on stderr, no stack trace."""
    with exit_on_error():
        app(args=argv, prog_name="fraudlake")
