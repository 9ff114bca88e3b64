"""Simulated traffic: ``fraudlake simulate`` (an offline batch as Parquet) and ``fraudlake produce``
(live traffic into Kafka)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from lakehouse.cli.common import console, settings_of
from lakehouse.errors import ConfigError
from lakehouse.settings import ProducerSettings, Settings, SimulatorSettings

app = typer.Typer()


def _simulator(settings: Settings, **overrides: object) -> SimulatorSettings:
    """The simulator settings with command-line overrides, validated like the config files."""
    values = {k: v for k, v in overrides.items() if v is not None}
    try:
        return SimulatorSettings.model_validate({**settings.simulator.model_dump(), **values})
    except ValidationError as exc:
        error = exc.errors()[0]
        raise ConfigError(f"--{str(error['loc'][0]).replace('_', '-')}: {error['msg']}") from None


@app.command("simulate")
def simulate(
    ctx: typer.Context,
    out: Annotated[Path | None, typer.Option(help="Output folder. Default: <data_dir>/simulator/batch.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of users, merchants and traffic (default: config).")] = None,
    transactions: Annotated[int | None, typer.Option(help="Transactions in the batch, fraud included.")] = None,
    days: Annotated[int | None, typer.Option(help="Days the batch spans.")] = None,
    start: Annotated[str | None, typer.Option(help="First day, YYYY-MM-DD (default: DAYS before today).")] = None,
    fraud_rate: Annotated[
        float | None, typer.Option(help="Share of fraudulent transactions (enrich training sets).")
    ] = None,
    report: Annotated[
        bool, typer.Option(help="Also write the per-scenario statistics to docs/simulator-scenarios.md.")
    ] = False,
) -> None:
    """Write an offline batch of labelled transactions, with its users and merchants, as Parquet.

    Same seed and start: identical files. Example: fraudlake simulate --transactions 100000 --days 30
    """
    from rich.progress import Progress

    from lakehouse.simulator.files import write_offline_batch
    from lakehouse.simulator.simulation import Simulation, default_start

    settings = settings_of(ctx)
    sim = _simulator(settings, seed=seed, transactions=transactions, days=days, start=start, fraud_rate=fraud_rate)
    first_day = default_start(sim, datetime.now(UTC).date())
    target = out or settings.paths.data_dir / "simulator" / "batch"
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("building users and merchants", total=sim.days)
        simulation = Simulation(sim, first_day)
        progress.update(task, description="simulating days")
        manifest = write_offline_batch(simulation, target, on_day=lambda _day: progress.advance(task))
    console.print(
        f"wrote {manifest['transactions']:,} transactions ({manifest['fraud']:,} fraud), "
        f"{manifest['user_versions']:,} user versions and {manifest['merchants']:,} merchants to {target}"
    )
    console.print("fraud by scenario: " + ", ".join(f"{k} {v}" for k, v in manifest["scenarios"].items()))
    if report:
        from lakehouse.simulator.report import write_simulation_report

        path = settings.project_dir / "docs" / "simulator-scenarios.md"
        write_simulation_report(path, simulation)
        console.print(f"scenario report: {path}")


@app.command("produce")
def produce_command(
    ctx: typer.Context,
    count: Annotated[int | None, typer.Option(help="Stop after this many transactions.")] = None,
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")] = None,
    rate: Annotated[float | None, typer.Option(help="Target transactions/s (default: as fast as possible).")] = None,
    bad_rate: Annotated[float, typer.Option(help="Share of extra bad records to inject (see the manifest).")] = 0.0,
    manifest: Annotated[Path | None, typer.Option(help="Where to list injected bad records (JSON lines).")] = None,
    seed: Annotated[
        int | None, typer.Option(help="Traffic seed (default: random, printed). Users/merchants stay.")
    ] = None,
    fraud_rate: Annotated[float | None, typer.Option(help="Share of fraudulent transactions.")] = None,
    start_day: Annotated[
        int | None,
        typer.Option(
            help="Simulated day to start at (default: where the last run stopped, else right after the offline batch)."
        ),
    ] = None,
    client: Annotated[
        str | None, typer.Option(help="Kafka client: confluent or kafka-python (default: config).")
    ] = None,
    preload: Annotated[bool, typer.Option(help="Fill the topics ahead of a benchmark: unpaced, no live line.")] = False,
) -> None:
    """Stream simulated users, merchants and transactions into Kafka, with a live progress line.

    Example: fraudlake produce --rate 500 --duration 60 --bad-rate 0.01
    """
    import functools
    import random

    from rich.live import Live

    from lakehouse.platform.kafka.senders import make_sender
    from lakehouse.platform.kafka.topics import ensure_topics
    from lakehouse.simulator.labels import pending_labels_file
    from lakehouse.simulator.producer import ProduceLimits, produce, progress_line, remember_day, resume_day
    from lakehouse.simulator.simulation import Simulation, default_start

    settings = settings_of(ctx)
    if count is None and duration is None:
        raise ConfigError("produce needs --count or --duration")
    if not 0 <= bad_rate <= 1:
        raise ConfigError("--bad-rate must be between 0 and 1")
    sim = _simulator(settings, fraud_rate=fraud_rate)
    producer_settings = settings.producer
    if client:
        producer_settings = ProducerSettings.model_validate({**producer_settings.model_dump(), "client": client})
    traffic_seed = seed if seed is not None else random.SystemRandom().randrange(1, 2**31)
    ensure_topics(settings.kafka)
    simulation = Simulation(sim, default_start(sim, datetime.now(UTC).date()), traffic_seed=traffic_seed)
    if bad_rate and manifest is None:
        manifest = settings.paths.data_dir / "producer" / f"bad-records-{traffic_seed}.jsonl"
    if manifest:
        manifest.parent.mkdir(parents=True, exist_ok=True)
    sender = make_sender(settings.kafka, producer_settings)
    limits = ProduceLimits(count=count, duration_s=duration, rate=None if preload else rate)
    first_day = resume_day(settings, sim.days) if start_day is None else start_day
    console.print(
        f"producing to {settings.kafka.bootstrap} with {producer_settings.client} "
        f"(traffic seed {traffic_seed}, from simulated day {first_day})"
    )
    run = functools.partial(
        produce,
        settings,
        simulation,
        sender,
        limits,
        first_day=first_day,
        bad_rate=bad_rate,
        manifest_path=manifest,
        labels_path=pending_labels_file(settings.paths.data_dir),
    )
    try:
        if preload:
            result = run()
        else:
            with Live(console=console, refresh_per_second=4, transient=True) as live:
                result = run(on_progress=lambda r: live.update(progress_line(r)))
    finally:
        sender.close()
    remember_day(settings, result.next_day)
    console.print(progress_line(result))
    console.print(
        f"{result.transactions:,} transactions ({result.fraud:,} fraud), {result.users:,} user and "
        f"{result.merchants:,} merchant records, {result.bad:,} bad records; "
        f"events {result.first_event} → {result.last_event}"
    )
    if sim.labels.emit:
        console.print(f"{result.labels:,} label events sent; {result.labels_pending:,} to come in later runs")
    if result.manifest and result.bad:
        console.print(f"bad-record manifest: {result.manifest}")
    if result.interrupted:
        console.print("stopped by Ctrl-C after flushing")
    if result.caught_up:
        console.print(
            f"[yellow]stopped: simulated time reached the wall clock at {result.caught_up}[/] (later payments "
            "would be dated after they are sent); set simulator.start earlier or raise simulator.live_days"
        )
    if result.failed:
        console.print(f"[red]{result.failed} records could not be delivered[/]: {result.errors[:1]}")
        raise typer.Exit(1)
