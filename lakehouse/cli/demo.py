"""The whole product in one command: ``fraudlake demo``; and for a long time, measured: ``fraudlake soak``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lakehouse.cli.common import console, settings_of

app = typer.Typer()

#: The live traffic's options, shared by the demo and the soak.
Duration = Annotated[float, typer.Option(help="Seconds of live traffic.")]
Rate = Annotated[float, typer.Option(help="Live transactions per second.")]
FraudRate = Annotated[float, typer.Option(help="Share of fraud in the live traffic.")]


@app.command("demo")
def demo_command(
    ctx: typer.Context,
    duration: Duration = 120.0,
    rate: Rate = 25.0,
    fraud_rate: FraudRate = 0.02,
) -> None:
    """The whole product: the first model if there is none, ingest and scoring jobs, live traffic
    with alerts shown as they come, then a summary (precision, recall, latency). Needs the broker
    and catalog up; `make demo` does everything and stops them at the end.

    Example: fraudlake demo --duration 60 --rate 50
    """
    from lakehouse.demo.live import run_demo

    run_demo(settings_of(ctx), console, duration_s=duration, rate=rate, fraud_rate=fraud_rate)


@app.command("soak")
def soak_command(
    ctx: typer.Context,
    duration: Duration = 3600.0,
    rate: Rate = 25.0,
    fraud_rate: FraudRate = 0.02,
    interval: Annotated[float, typer.Option(help="Seconds between samples.")] = 60.0,
    pause_broker: Annotated[
        float, typer.Option(help="Stop the local broker (SIGSTOP) halfway through for this many seconds; 0: never.")
    ] = 0.0,
    output: Annotated[Path | None, typer.Option(help="Report file. Default: docs/benchmarks/soak.md.")] = None,
) -> None:
    """The whole pipeline at a set rate for a long time: RSS per job, lag, batch time and the
    scorer's state size over time, and the alerts lost (must be 0) and duplicated in effect (must
    be 0), written to docs/benchmarks/soak.md. Needs the broker and catalog up; exits 1 when an
    alert was lost or duplicated, or the traffic stopped before the duration (refused up front
    when the simulator has too few days left before today).

    Example: fraudlake soak --duration 3600 --rate 25 --interval 60
    """
    from lakehouse.benchmarks.report import machine_description
    from lakehouse.demo.soak import run_soak, write_soak_report

    settings = settings_of(ctx)
    result = run_soak(
        settings,
        console,
        duration_s=duration,
        rate=rate,
        fraud_rate=fraud_rate,
        interval_s=interval,
        pause_broker_s=pause_broker,
    )
    path = output or settings.project_dir / "docs" / "benchmarks" / "soak.md"
    console.print(write_soak_report(path, result, machine_description()))
    console.print(f"written to {path}")
    if result.stopped_early:
        console.print(f"[red]the traffic stopped early: {result.stopped_early}[/]")
    if result.lost or result.duplicated or result.stopped_early:
        raise typer.Exit(1)
