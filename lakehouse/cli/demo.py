"""The whole product in one command: ``fraudlake demo``."""

from __future__ import annotations

from typing import Annotated

import typer

from lakehouse.cli.common import console, settings_of

app = typer.Typer()


@app.command("demo")
def demo_command(
    ctx: typer.Context,
    duration: Annotated[float, typer.Option(help="Seconds of live traffic.")] = 120.0,
    rate: Annotated[float, typer.Option(help="Live transactions per second.")] = 25.0,
    fraud_rate: Annotated[float, typer.Option(help="Share of fraud in the live traffic.")] = 0.02,
) -> None:
    """The whole product: the first model if there is none, ingest and scoring jobs, live traffic
    with alerts shown as they come, then a summary (precision, recall, latency). Needs the broker
    and catalog up; `make demo` does everything and stops them at the end.

    Example: fraudlake demo --duration 60 --rate 50
    """
    from lakehouse.demo import run_demo

    run_demo(settings_of(ctx), console, duration_s=duration, rate=rate, fraud_rate=fraud_rate)
