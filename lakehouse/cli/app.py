"""``fraudlake``: the command line of the platform.

Settings are loaded once, in the top-level callback, and handed to each command. Long-running
Spark jobs run as their own processes (``python -m jobs.<name>``); short Spark commands (sql,
reconcile, maintain) build a session in the CLI process. Spark and pyspark are imported lazily,
so commands that do not need them start fast.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console

from lakehouse.errors import ConfigError
from lakehouse.platform.entrypoint import configure_logging, exit_on_error
from lakehouse.settings import ProducerSettings, Settings, SimulatorSettings, load_settings

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
bench_app = typer.Typer(help="Benchmarks that write their figures to docs/benchmarks/.", no_args_is_help=True)
catalog_app = typer.Typer(
    help="Run the local catalog server (Derby network server, one JVM): up, down, status.", no_args_is_help=True
)
stream_app = typer.Typer(
    help="Long-running streaming jobs: ingest (Kafka → bronze → silver), score (→ scores and alerts).",
    no_args_is_help=True,
)
app.add_typer(kafka_app, name="kafka")
app.add_typer(topics_app, name="topics")
app.add_typer(config_app, name="config")
app.add_typer(bench_app, name="bench")
app.add_typer(stream_app, name="stream")
app.add_typer(catalog_app, name="catalog")
model_app = typer.Typer(help="The model registry (MLflow): list, show, promote, rollback.", no_args_is_help=True)
app.add_typer(model_app, name="model")
features_app = typer.Typer(
    help="Transaction features: build the offline table, check it against the online path.", no_args_is_help=True
)
app.add_typer(features_app, name="features")
alerts_app = typer.Typer(
    help="Fraud alerts from the scorer: tail them to the terminal, a file or a webhook.", no_args_is_help=True
)
app.add_typer(alerts_app, name="alerts")

#: Read by one command only: the webhook URL may hold a token, so job processes never see it.
COMMAND_VARIABLES = {"FRAUDLAKE_ALERTS_WEBHOOK"}


def _settings_environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in COMMAND_VARIABLES}


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
        Path | None,
        typer.Option("--conf-dir", help="Folder holding base.yaml and the overlays. Or FRAUDLAKE_CONF_DIR."),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Debug logging, client libraries included.")] = False,
) -> None:
    configure_logging(verbose)
    settings = load_settings(env, conf_dir)
    ctx.obj = {"settings": settings, "conf_dir": conf_dir}


# ----------------------------------------------------------------------------- kafka


def _report_up(name: str, address: str, pid: int | None, folder: Path, started: bool) -> None:
    verb = "started" if started else "already running"
    console.print(f"{name} {verb} at [bold]{address}[/] (pid {pid}, data in {folder})")


def _report_down(name: str, address: str, stopped: bool) -> None:
    console.print(f"{name} at {address} {'stopped' if stopped else 'was not running'}")


@kafka_app.command("up")
def kafka_up(ctx: typer.Context) -> None:
    """Start the local broker (formats its storage the first time) and wait until it answers.

    Harmless when it already runs. Data and logs go under paths.data_dir (kafka/).
    """
    from lakehouse.platform.kafka.broker import LocalBroker

    status, started = LocalBroker(_settings(ctx)).up()
    _report_up("Kafka broker", status.address, status.pid, status.data_dir, started)


@kafka_app.command("down")
def kafka_down(ctx: typer.Context) -> None:
    """Stop the local broker cleanly; topics and their data stay for the next `up`."""
    from lakehouse.platform.kafka.broker import LocalBroker

    broker = LocalBroker(_settings(ctx))
    _report_down("Kafka broker", broker.address, broker.down())


@kafka_app.command("status")
def kafka_status(ctx: typer.Context) -> None:
    """Say whether the broker is up, its address and its topics. Exits 3 when it is down."""
    from lakehouse.platform.kafka.broker import LocalBroker

    settings = _settings(ctx)
    status = LocalBroker(settings).status()
    if status.topics is None:
        console.print(f"Kafka broker at {settings.kafka.bootstrap}: [red]down[/]")
        raise typer.Exit(3)
    pid = f", pid {status.pid}" if status.pid else ""
    console.print(f"Kafka broker at {settings.kafka.bootstrap}: [green]up[/]{pid}")
    console.print(f"topics: {', '.join(status.topics) if status.topics else '(none)'}")


# ----------------------------------------------------------------------------- catalog


@catalog_app.command("up")
def catalog_up(ctx: typer.Context) -> None:
    """Start the catalog server (the shared Hive metastore in Derby) and wait until it listens. Idempotent."""
    from lakehouse.platform.catalog_server import LocalCatalogServer

    status, started = LocalCatalogServer(_settings(ctx)).up()
    _report_up("catalog server", status.address, status.pid, status.folder, started)


@catalog_app.command("down")
def catalog_down(ctx: typer.Context) -> None:
    """Stop the catalog server; the catalog stays on disk for the next `up`."""
    from lakehouse.platform.catalog_server import LocalCatalogServer

    server = LocalCatalogServer(_settings(ctx))
    _report_down("catalog server", server.address, server.down())


@catalog_app.command("status")
def catalog_status(ctx: typer.Context) -> None:
    """Say whether the catalog server listens. Exits 3 when it does not."""
    from lakehouse.platform.catalog_server import LocalCatalogServer

    status = LocalCatalogServer(_settings(ctx)).status()
    if not status.running:
        console.print(f"catalog server at {status.address}: [red]down[/]")
        raise typer.Exit(3)
    pid = f", pid {status.pid}" if status.pid else ""
    console.print(f"catalog server at {status.address}: [green]up[/]{pid}")


# ----------------------------------------------------------------------------- topics


@topics_app.command("ensure")
def topics_ensure(ctx: typer.Context) -> None:
    """Create the configured topics that are missing (transactions, users, merchants, alerts)."""
    from lakehouse.platform.kafka.topics import ensure_topics

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
    from lakehouse.platform.kafka.topics import list_topics

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


# ----------------------------------------------------------------------------- simulator


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

    settings = _settings(ctx)
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
        from lakehouse.simulator.report import write_report
        from lakehouse.simulator.traffic import TxBatch

        path = settings.project_dir / "docs" / "simulator-scenarios.md"
        write_report(path, simulation, TxBatch.concat([b for _, b in simulation.offline_batch()]))
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
    import random

    from rich.live import Live

    from lakehouse.platform.kafka.senders import make_sender
    from lakehouse.platform.kafka.topics import ensure_topics
    from lakehouse.simulator.producer import ProduceLimits, produce, remember_day, resume_day
    from lakehouse.simulator.simulation import Simulation, default_start

    settings = _settings(ctx)
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
    try:
        if preload:
            result = produce(
                settings, simulation, sender, limits, first_day=first_day, bad_rate=bad_rate, manifest_path=manifest
            )
        else:
            with Live(console=console, refresh_per_second=4, transient=True) as live:
                result = produce(
                    settings,
                    simulation,
                    sender,
                    limits,
                    first_day=first_day,
                    bad_rate=bad_rate,
                    manifest_path=manifest,
                    on_progress=lambda r: live.update(_progress_line(r)),
                )
    finally:
        sender.close()
    remember_day(settings, result.next_day)
    console.print(_progress_line(result))
    console.print(
        f"{result.transactions:,} transactions ({result.fraud:,} fraud), {result.users:,} user and "
        f"{result.merchants:,} merchant records, {result.bad:,} bad records; events {result.first_event} → {result.last_event}"
    )
    if result.manifest and result.bad:
        console.print(f"bad-record manifest: {result.manifest}")
    if result.interrupted:
        console.print("stopped by Ctrl-C after flushing")
    if result.failed:
        console.print(f"[red]{result.failed} records could not be delivered[/]: {result.errors[:1]}")
        raise typer.Exit(1)


def _progress_line(report) -> str:
    return (
        f"sent {report.sent:,} · {report.rate:,.0f}/s · delivered {report.delivered:,} · "
        f"retried {report.retried:,} · failed {report.failed:,} · {report.elapsed_s:,.1f}s"
    )


# ----------------------------------------------------------------------------- benchmarks


@bench_app.command("produce")
def bench_produce(
    ctx: typer.Context,
    count: Annotated[int, typer.Option(help="Transactions per run.")] = 200_000,
    repeats: Annotated[int, typer.Option(help="Runs per client (the median is reported).")] = 3,
    output: Annotated[Path | None, typer.Option(help="Report file. Default: docs/benchmarks/producer.md.")] = None,
) -> None:
    """Producer throughput into the real broker, both Kafka clients, written to docs/.

    Needs the broker (`fraudlake kafka up`). Example: fraudlake bench produce --count 200000 --repeats 3
    """
    from lakehouse.benchmarks.producer import bench_generation, bench_producer, write_producer_report
    from lakehouse.platform.kafka.topics import list_topics
    from lakehouse.simulator.simulation import default_start

    settings = _settings(ctx)
    list_topics(settings.kafka)  # fail plainly now if the broker is down
    start = default_start(settings.simulator, datetime.now(UTC).date())
    series = [bench_generation(settings, start, count, repeats)]
    for client in ("confluent", "kafka-python"):
        console.print(f"benchmarking {client} ...")
        series.append(bench_producer(settings, client, start, count, repeats))
    path = output or settings.project_dir / "docs" / "benchmarks" / "producer.md"
    console.print(write_producer_report(path, series, count, target=20_000))
    console.print(f"written to {path}")


@bench_app.command("state")
def bench_state_command(
    ctx: typer.Context,
    users: Annotated[int, typer.Option(help="Distinct users streamed (each pays twice).")] = 1_000_000,
    per_round: Annotated[int, typer.Option(help="New users per round (one round per micro-batch).")] = 20_000,
    ttl_seconds: Annotated[float, typer.Option(help="User state TTL for the run (compressed clock).")] = 60.0,
    output: Annotated[Path | None, typer.Option(help="Report file. Default: docs/benchmarks/feature-state.md.")] = None,
) -> None:
    """Online feature state size and micro-batch duration as distinct users grow, written to docs/.

    Needs the broker (`fraudlake kafka up`). Example: fraudlake bench state --users 1000000 --per-round 20000
    """
    from lakehouse.benchmarks.feature_state import bench_state, write_state_report
    from lakehouse.benchmarks.producer import machine_description
    from lakehouse.platform.kafka.topics import list_topics

    settings = _settings(ctx)
    list_topics(settings.kafka)  # fail plainly now if the broker is down
    points = bench_state(
        _spark(ctx, "fraudlake-bench-state"),
        settings,
        users=users,
        per_round=per_round,
        ttl_seconds=ttl_seconds,
        on_progress=console.print,
    )
    path = output or settings.project_dir / "docs" / "benchmarks" / "feature-state.md"
    console.print(
        write_state_report(
            path, points, users=users, per_round=per_round, ttl_seconds=ttl_seconds, machine=machine_description()
        )
    )
    console.print(f"written to {path}")


@bench_app.command("train")
def bench_train_command(
    ctx: typer.Context,
    transactions: Annotated[int, typer.Option(help="Simulated transactions.")] = 1_000_000,
    users: Annotated[int, typer.Option(help="Simulated users.")] = 20_000,
    days: Annotated[int, typer.Option(help="Simulated days (training + gap + validation).")] = 45,
    output: Annotated[Path | None, typer.Option(help="Report file. Default: docs/benchmarks/training.md.")] = None,
) -> None:
    """Time the offline path (simulate → import → features → train) and compare the model with the
    baselines, in its own schemas and registry; written to docs/.

    Example: fraudlake bench train --transactions 1000000
    """
    import tempfile

    from lakehouse.benchmarks.producer import machine_description
    from lakehouse.benchmarks.training import bench_train, write_train_report

    settings = _settings(ctx)
    with tempfile.TemporaryDirectory(prefix="fraudlake-bench-train-") as folder:
        bench = bench_train(
            _spark(ctx, "fraudlake-bench-train"),
            settings,
            transactions=transactions,
            users=users,
            days=days,
            folder=Path(folder),
            on_progress=console.print,
        )
    path = output or settings.project_dir / "docs" / "benchmarks" / "training.md"
    console.print(write_train_report(path, bench, machine_description(), settings))
    console.print(f"written to {path}")


@bench_app.command("score")
def bench_score_command(
    ctx: typer.Context,
    rate: Annotated[
        list[float] | None, typer.Option(help="Transactions/s of a latency run, repeatable. Default: 50 and 200.")
    ] = None,
    duration: Annotated[float, typer.Option(help="Seconds per latency run.")] = 60.0,
    preload: Annotated[int, typer.Option(help="Transactions drained for the throughput figure.")] = 50_000,
    runs: Annotated[int, typer.Option(help="Throughput runs per pipeline (the median is reported).")] = 3,
    output: Annotated[Path | None, typer.Option(help="Report file. Default: docs/benchmarks/scoring.md.")] = None,
) -> None:
    """The scorer's sustainable throughput and end-to-end alert latency (p50/p95/p99 at fixed
    rates) next to a minimal Spark Kafka → Kafka pass-through on the same records; written to docs/.

    Needs the broker (`fraudlake kafka up`). Example: fraudlake bench score --rate 100 --rate 500 --duration 60
    """
    import tempfile

    from lakehouse.benchmarks.producer import machine_description
    from lakehouse.benchmarks.scoring import bench_score, write_score_report
    from lakehouse.platform.kafka.topics import list_topics

    settings = _settings(ctx)
    list_topics(settings.kafka)  # fail plainly now if the broker is down
    rates = rate or [50.0, 200.0]
    with tempfile.TemporaryDirectory(prefix="fraudlake-bench-score-") as folder:
        bench = bench_score(
            _spark(ctx, "fraudlake-bench-score"),
            settings,
            folder=Path(folder),
            rates=rates,
            duration_s=duration,
            preload=preload,
            runs=runs,
            on_progress=console.print,
        )
    path = output or settings.project_dir / "docs" / "benchmarks" / "scoring.md"
    console.print(write_score_report(path, bench, machine_description(), settings, duration_s=duration))
    console.print(f"written to {path}")


# ----------------------------------------------------------------------------- lakehouse


@stream_app.command("ingest")
def stream_ingest(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="Drain what the topics hold now, then exit (backfill).")] = False,
) -> None:
    """Kafka → bronze → silver Delta tables, with quarantine, until Ctrl-C (or once with --once).

    Example: fraudlake stream ingest --once && fraudlake reconcile
    """
    raise typer.Exit(_run_stream_job(ctx, "stream_ingest", *(["--once"] if once else [])))


@stream_app.command("score")
def stream_score(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="Score what the topic holds now, then exit.")] = False,
    starting_offsets: Annotated[
        str,
        typer.Option(
            help="Where a new scorer (no checkpoint yet) starts: earliest (warms the user state from the topic) or latest."
        ),
    ] = "earliest",
) -> None:
    """Score every transaction with the champion model: gold.scored_transactions, and alerts on
    fraud_alerts for scores at or over the model's threshold. Follows the champion without a
    restart (fraudlake model promote). Runs until Ctrl-C.

    Example: fraudlake stream score & fraudlake alerts tail
    """
    if starting_offsets not in ("earliest", "latest"):
        raise ConfigError("--starting-offsets must be earliest or latest")
    raise typer.Exit(
        _run_stream_job(ctx, "stream_score", *(["--once"] if once else []), "--starting-offsets", starting_offsets)
    )


def _run_stream_job(ctx: typer.Context, module: str, *args: str) -> int:
    """Run a streaming job and wait for it, also on Ctrl-C: the terminal sends SIGINT to the job as
    well, which then stops its queries cleanly (left to itself, the wait would kill it mid-stop)."""
    import signal

    previous = signal.signal(
        signal.SIGINT, lambda _signum, _frame: None
    )  # a handler, not SIG_IGN: the job keeps the default
    try:
        return run_job(ctx, module, *args)
    finally:
        signal.signal(signal.SIGINT, previous)


@stream_app.command("status")
def stream_status_command(
    ctx: typer.Context,
    max_idle_s: Annotated[
        float | None,
        typer.Option(
            "--max-idle-s",
            min=0,
            help="A query with records waiting and no commit for this long is stale (default: streaming.max_idle_s).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON instead of a table.")] = False,
) -> None:
    """Health of every streaming query (ingest and score), read from their checkpoints and the
    broker: last committed batch, when it ran, and the records waiting for it (lag). Exits 0 when
    all are healthy, 1 when any is stale (records waiting, no recent commit) or never started,
    3 when the broker is down. Works whether the jobs run or not; Airflow runs it too.

    Example: fraudlake stream status --max-idle-s 600
    """
    from rich.table import Table

    from lakehouse.operations.stream_status import HEALTHY, NOT_STARTED, stream_status

    report = stream_status(_settings(ctx), max_idle_s=max_idle_s)
    if as_json:
        print(json.dumps(report.as_json(), indent=2))
        if not report.healthy:
            print(report.summary(), file=sys.stderr)
    else:
        table = Table(title=f"streaming queries (max idle {report.max_idle_s:g} s)")
        for column in ("job", "query", "source", "batch", "last batch (UTC)", "lag", "state", "detail"):
            table.add_column(column, justify="right" if column in ("batch", "lag") else "left")
        colours = {HEALTHY: "green", NOT_STARTED: "yellow"}
        for q in report.queries:
            table.add_row(
                q.job,
                q.query,
                q.source,
                "" if q.batch_id is None else str(q.batch_id),
                q.last_batch_at.strftime("%Y-%m-%d %H:%M:%S") if q.last_batch_at else "",
                "" if q.lag is None else f"{q.lag:,}",
                f"[{colours.get(q.state, 'red')}]{q.state}[/]",
                q.detail,
            )
        console.print(table)
        console.print(report.summary(), style="green" if report.healthy else "red", highlight=False, markup=False)
    raise typer.Exit(0 if report.healthy else 1)


def _spark(ctx: typer.Context, app_name: str):
    from lakehouse.platform.spark import build_spark

    return build_spark(_settings(ctx), app_name=app_name)


@features_app.command("build")
def features_build(
    ctx: typer.Context,
    since: Annotated[
        str | None, typer.Option(help="Recompute event days from this date (YYYY-MM-DD) on; default: all.")
    ] = None,
) -> None:
    """Compute gold.transaction_features (and gold.merchant_daily) from silver, point in time.

    Example: fraudlake features build --since 2026-11-01
    """
    raise typer.Exit(run_job(ctx, "build_features", *(["--since", since] if since else [])))


@features_app.command("check")
def features_check(
    ctx: typer.Context,
    rebuild: Annotated[
        bool, typer.Option(help="Rebuild the offline table first (--no-rebuild: compare the table as it is).")
    ] = True,
) -> None:
    """Run the topic's transactions through the online path and compare every feature with the
    offline table. Exits 1 when any differs beyond features.tolerance or a transaction is missing.

    Example: fraudlake stream ingest --once && fraudlake features check
    """
    from rich.table import Table

    from lakehouse.features.materialize import check_features

    settings = _settings(ctx)
    report = check_features(_spark(ctx, "fraudlake-features-check"), settings, rebuild=rebuild)
    table = Table(title=f"offline vs online features (relative tolerance {report.tolerance:g})")
    for column in ("feature", "max abs diff", "max rel diff", "null mismatches", "ok"):
        table.add_column(column, justify="left" if column == "feature" else "right")
    for d in report.diffs:
        table.add_row(
            d.feature,
            f"{d.max_abs:.3g}",
            f"{d.max_rel:.3g}",
            f"{d.null_mismatches:,}",
            "yes" if d.ok(report.tolerance) else "NO",
        )
    console.print(table)
    console.print(
        f"compared {report.compared:,} transactions: offline {report.offline_rows:,}, online {report.online_rows:,}; "
        f"missing online {report.missing_online:,}, missing offline {report.missing_offline:,}, "
        f"not yet ingested {report.not_yet_ingested:,}; online marked late {report.late_online:,}, duplicate {report.duplicates_online:,}"
    )
    if not report.ok:
        console.print("[red]features differ between the offline and the online path[/red]")
        raise typer.Exit(1)
    console.print("[green]offline and online features agree[/green]")


@app.command("import")
def import_command(
    ctx: typer.Context,
    transactions: Annotated[str, typer.Option(help="Transactions file (CSV with a header, or Parquet).")],
    users: Annotated[str | None, typer.Option(help="Users file (optional).")] = None,
    merchants: Annotated[str | None, typer.Option(help="Merchants file (optional).")] = None,
    file_format: Annotated[
        str | None, typer.Option("--format", help="csv or parquet (default: from the file suffix).")
    ] = None,
    mapping: Annotated[
        list[str] | None,
        typer.Option("--map", help="contract_field=source_column, repeatable (e.g. --map timestamp=tx_time)."),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Name of this import (pseudo-topic import:<name>); default: the file name.")
    ] = None,
    currency: Annotated[str | None, typer.Option(help="Currency of every row when the file has none.")] = None,
) -> None:
    """Load your own transactions (and users, merchants) into bronze and silver, validated like
    the streams (bad rows to quarantine with a reason).

    Example: fraudlake import --transactions tx.csv --map timestamp=tx_time --map amount=amt --currency EUR
    """
    from lakehouse.ingest.files import import_files, parse_mapping

    parsed = parse_mapping(mapping or [])
    reports = import_files(
        _spark(ctx, "fraudlake-import"),
        _settings(ctx),
        transactions=transactions,
        users=users,
        merchants=merchants,
        fmt=file_format,
        mapping=parsed,
        name=name,
        currency=currency,
    )
    for r in reports:
        console.print(f"{r.stream:<13} {r.rows:>10,} rows  {r.accepted:>10,} accepted  {r.quarantined:>8,} quarantined")


@app.command("train")
def train_command(
    ctx: typer.Context,
    date_from: Annotated[str | None, typer.Option("--from", help="First event day (YYYY-MM-DD); default: all.")] = None,
    date_to: Annotated[str | None, typer.Option("--to", help="Last event day; default: all.")] = None,
    algorithm: Annotated[
        str | None, typer.Option(help="gbt, random_forest or logistic_regression (default: training.algorithm).")
    ] = None,
    promote: Annotated[
        bool, typer.Option(help="Promote when it beats the champion (--no-promote: register only).")
    ] = True,
) -> None:
    """Train a model on gold.transaction_features (time split), evaluate it against baselines,
    register it, and promote it when it beats the champion on the same window.

    Example: fraudlake train --algorithm gbt
    """
    args = [*(["--from", date_from] if date_from else []), *(["--to", date_to] if date_to else [])]
    args += [*(["--algorithm", algorithm] if algorithm else []), *([] if promote else ["--no-promote"])]
    raise typer.Exit(run_job(ctx, "train_model", *args))


@app.command("backtest")
def backtest_command(
    ctx: typer.Context,
    date_from: Annotated[str, typer.Option("--from", help="First event day (YYYY-MM-DD).")],
    date_to: Annotated[str, typer.Option("--to", help="Last event day (YYYY-MM-DD).")],
    model: Annotated[str, typer.Option(help='A registry version number, or "champion".')] = "champion",
    as_of_version: Annotated[
        int | None, typer.Option(help="Read gold.transaction_features as of this Delta version.")
    ] = None,
    as_of_timestamp: Annotated[
        str | None, typer.Option(help="... or as of this timestamp (e.g. '2026-11-29 08:00:00').")
    ] = None,
) -> None:
    """Re-score history with any model on the feature table as it was (time travel); scores go to
    gold.backtest_scores, metrics are printed.

    Example: fraudlake backtest --model 2 --from 2026-11-01 --to 2026-11-14 --as-of-version 5
    """
    from datetime import date as _date

    from rich.table import Table

    from lakehouse.ml.backtest import backtest

    result = backtest(
        _spark(ctx, "fraudlake-backtest"),
        _settings(ctx),
        model=model,
        date_from=_date.fromisoformat(date_from),
        date_to=_date.fromisoformat(date_to),
        as_of_version=as_of_version,
        as_of_timestamp=as_of_timestamp,
    )
    e = result.evaluation
    table = Table(
        title=f"backtest {result.backtest_id}: model {result.model_version} on features version {result.features_version}"
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in e.as_dict().items():
        if not isinstance(value, dict):
            table.add_row(name, f"{value:.4f}" if isinstance(value, float) else f"{value:,}")
    for name, value in e.recall_by_scenario.items():
        table.add_row(f"recall: {name}", f"{value:.4f}")
    console.print(table)
    console.print(f"{result.rows:,} scores in {result.table} (backtest_id = '{result.backtest_id}')")


@model_app.command("list")
def model_list(ctx: typer.Context) -> None:
    """Every registered version with its metrics; the champion marked.

    Example: fraudlake model list
    """
    from rich.table import Table

    from lakehouse.ml.registry import versions

    table = Table(title=f"model {_settings(ctx).registry.model_name}")
    for column in ("version", "champion", "algorithm", "average precision", "threshold", "created", "promotion"):
        table.add_column(column)
    for v in versions(_settings(ctx)):
        ap = "" if v.average_precision is None else f"{v.average_precision:.4f}"
        table.add_row(
            str(v.version),
            "*" if v.champion else "",
            v.algorithm,
            ap,
            f"{v.threshold:.4f}",
            v.created_at,
            v.tags.get("promotion", v.tags.get("promoted", "")),
        )
    console.print(table)


@model_app.command("show")
def model_show(ctx: typer.Context, version: Annotated[int, typer.Argument(help="Version number.")]) -> None:
    """One version's tags (threshold, features, table versions, code version) as JSON.

    Example: fraudlake model show 3
    """
    from lakehouse.ml.registry import version_info

    info = version_info(_settings(ctx), version)
    console.print_json(json.dumps({**info.__dict__, "tags": info.tags}, default=str))


@model_app.command("promote")
def model_promote(
    ctx: typer.Context, version: Annotated[int, typer.Argument(help="Version to make champion.")]
) -> None:
    """Make a version champion by hand (it must load and score first); the scorer follows.

    Example: fraudlake model promote 3
    """
    from lakehouse.ml import registry

    settings = _settings(ctx)
    spark = _spark(ctx, "fraudlake-model")
    registry.promote(settings, version, validate=lambda model: registry.check_scores(spark, settings, model))
    console.print(f"champion: version {version}")


@model_app.command("rollback")
def model_rollback(ctx: typer.Context) -> None:
    """Restore the previous champion.

    Example: fraudlake model rollback
    """
    from lakehouse.ml import registry

    console.print(f"champion: version {registry.rollback(_settings(ctx))} (rolled back)")


# ----------------------------------------------------------------------------- alerts


@alerts_app.command("tail")
def alerts_tail(
    ctx: typer.Context,
    group: Annotated[
        str, typer.Option(help="Consumer group: its committed offsets are where the next tail of the group resumes.")
    ] = "fraudlake-alerts-tail",
    from_beginning: Annotated[
        bool,
        typer.Option(
            "--from-beginning", help="Re-read every alert the topic holds (the group's offsets are moved back)."
        ),
    ] = False,
    output_format: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="table (live view) or json (one alert per line on stdout). Default: table on a terminal, else json.",
        ),
    ] = None,
    output_file: Annotated[
        Path | None, typer.Option("--output-file", help="Also append each alert to this file (JSON lines).")
    ] = None,
    webhook: Annotated[
        str | None,
        typer.Option(
            envvar="FRAUDLAKE_ALERTS_WEBHOOK",
            show_envvar=True,
            help="Also POST each alert as JSON to this URL. Give a URL holding a token through the variable, not the shell history.",
        ),
    ] = None,
    retries: Annotated[
        int, typer.Option(min=1, help="Webhook attempts per alert (the first included) before the tail stops.")
    ] = 5,
    max_alerts: Annotated[
        int | None, typer.Option("--max", min=1, help="Stop after this many new (deduplicated) alerts.")
    ] = None,
    idle_timeout: Annotated[
        float | None, typer.Option("--idle-timeout", min=0.1, help="Stop after this many seconds without a new record.")
    ] = None,
    state_file: Annotated[
        Path | None,
        typer.Option(
            "--state-file", help="Remember delivered alert ids in this file, to drop duplicates across restarts too."
        ),
    ] = None,
) -> None:
    """Follow the fraud alerts topic: drop duplicate alerts (same alert_id), show or deliver each new
    one, and commit the group's offsets only once every output took the alerts, so a restart
    redelivers instead of losing. Runs until Ctrl-C, --max or --idle-timeout.

    Example: fraudlake alerts tail --format json --from-beginning --idle-timeout 5 | jq .score
    """
    import logging
    import signal
    import threading

    from rich.console import Console as _Console

    from lakehouse.alerts.tail import (
        Deduplicator,
        FileOutput,
        JsonLinesOutput,
        TableOutput,
        WebhookOutput,
        close_outputs,
        tail,
    )

    settings = _settings(ctx)
    output_format = output_format or ("table" if sys.stdout.isatty() else "json")
    if output_format not in ("table", "json"):
        raise ConfigError(f"--format {output_format!r}: use table or json")
    # In json mode stdout carries alerts only; everything said to the person goes to stderr.
    info = console if output_format == "table" else _Console(stderr=True, soft_wrap=True)
    dedup = Deduplicator.load(state_file) if state_file else Deduplicator()
    webhook_output = WebhookOutput(webhook, retries=retries) if webhook else None
    outputs: list = []
    stop = threading.Event()
    try:
        if output_file:
            outputs.append(FileOutput(output_file))
        if webhook_output:
            outputs.append(webhook_output)
        topic = settings.kafka.topics.alerts.name
        where = ", ".join(
            [*([str(output_file)] if output_file else []), *([webhook_output.display_url] if webhook_output else [])]
        )
        info.print(
            f"tailing {topic} at {settings.kafka.bootstrap} as group {group}"
            f"{' from the beginning' if from_beginning else ''}{f', delivering to {where}' if where else ''}"
            f"{f', {len(dedup):,} known alert ids from {state_file}' if state_file else ''}",
            highlight=False,
        )
        # After the status line: the live table then stays the last thing on screen.
        outputs.insert(
            0,
            TableOutput(console, title=f"fraud alerts · {topic}")
            if output_format == "table"
            else JsonLinesOutput(sys.stdout),
        )
        previous_sigterm = signal.signal(signal.SIGTERM, lambda *_: stop.set())  # a service stop: commit, then exit
        # The live table replaced sys.stderr with a proxy that prints above it: log there too, or a
        # warning written behind its back scrambles the table.
        handlers = [h for h in logging.getLogger().handlers if type(h) is logging.StreamHandler]
        log_streams = [(h, old) for h in handlers if (old := h.setStream(sys.stderr)) is not None]
        try:
            report = tail(
                settings,
                group_id=group,
                from_beginning=from_beginning,
                outputs=outputs,
                max_alerts=max_alerts,
                idle_timeout_s=idle_timeout,
                dedup=dedup,
                stop=stop,
            )
        finally:
            signal.signal(signal.SIGTERM, previous_sigterm)
            for handler, stream in log_streams:
                handler.setStream(stream)
    finally:
        close_outputs(outputs)
    committed = ", ".join(f"{p}:{o}" for p, o in sorted(report.committed.items())) or "nothing new"
    reasons = {"max_alerts": "--max reached", "idle": "idle timeout", "stop": "stop requested", "interrupted": "Ctrl-C"}
    info.print(
        f"{report.handled:,} new alerts, {report.duplicates:,} duplicates dropped, {report.malformed:,} malformed skipped "
        f"({report.received:,} records); committed {committed}; stopped: {reasons.get(report.stopped_by, report.stopped_by)}",
        highlight=False,
    )
    for partition, offset, problem in report.malformed_records[:5]:
        info.print(f"  malformed at partition {partition} offset {offset}: {problem}", highlight=False, markup=False)


@app.command("reconcile")
def reconcile_command(ctx: typer.Context) -> None:
    """Check per stream that bronze = silver + quarantine, record by record. Exits 1 when not.

    Run it after `fraudlake stream ingest --once` (a running stream shows its lag as unaccounted).
    """
    from rich.table import Table

    from lakehouse.ingest.reconcile import reconcile

    results = reconcile(_spark(ctx, "fraudlake-reconcile"), _settings(ctx))
    table = Table(title="bronze = silver + quarantine")
    columns = [
        "stream",
        "bronze",
        "silver",
        "quarantine",
        "unaccounted",
        "double_counted",
        "orphans",
        "bronze_duplicates",
        "ok",
    ]
    for column in columns:
        table.add_column(column, justify="left" if column == "stream" else "right")
    for r in results:
        table.add_row(*(f"{getattr(r, c):,}" if c not in ("stream", "ok") else str(getattr(r, c)) for c in columns))
    console.print(table)
    if not all(r.ok for r in results):
        raise typer.Exit(1)


@app.command("sql")
def sql_command(
    ctx: typer.Context,
    statement: Annotated[
        str, typer.Argument(help="One Spark SQL statement; tables by name, e.g. silver.transactions.")
    ],
    output_format: Annotated[
        str, typer.Option("--format", "-f", help="table (default), csv or json (JSON lines).")
    ] = "table",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write csv/json to this file instead of stdout.")
    ] = None,
    limit: Annotated[int, typer.Option(help="Rows to show in table format (csv/json: all rows unless set).")] = 50,
) -> None:
    """Run ad hoc Spark SQL over the catalog tables, time travel included.

    Examples: fraudlake sql "SELECT reason, count(*) FROM silver.quarantine GROUP BY reason";
    fraudlake sql "SELECT count(*) FROM silver.transactions VERSION AS OF 3";
    fraudlake sql "SELECT * FROM silver.users TIMESTAMP AS OF '2026-11-29 08:00'" -f csv -o users.csv
    """
    from rich.table import Table

    from lakehouse.operations.sql import SqlError, run_sql, write_rows

    if output_format not in ("table", "csv", "json"):
        raise SqlError(f"--format {output_format!r}: use table, csv or json")
    df = run_sql(_spark(ctx, "fraudlake-sql"), statement)
    if output_format == "table":
        rows = df.limit(limit + 1).collect()
        table = Table(show_lines=False)
        for column in df.columns:
            table.add_column(column)
        for row in rows[:limit]:
            table.add_row(*("" if v is None else str(v) for v in row))
        console.print(table)
        more = " (more not shown: --limit, or --format csv)" if len(rows) > limit else ""
        console.print(f"{min(len(rows), limit)} row(s){more}")
        return
    csv_limit = None if ctx.get_parameter_source("limit").name == "DEFAULT" else limit
    if output:
        with output.open("w", newline="") as handle:
            written = write_rows(df, output_format, handle, csv_limit)
        console.print(f"{written} row(s) written to {output}")
    else:
        write_rows(df, output_format, limit=csv_limit)


@app.command(
    "sql-shell",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def sql_shell(ctx: typer.Context) -> None:
    """Open pyspark's own spark-sql shell on the same catalog and warehouse; extra arguments pass through.

    Examples: fraudlake sql-shell;  fraudlake sql-shell -e "SHOW TABLES IN silver"
    """
    import os as _os

    from lakehouse.platform.spark import spark_sql_shell_command

    settings = _settings(ctx)
    settings.metastore_dir.mkdir(parents=True, exist_ok=True)
    command = spark_sql_shell_command(settings, *ctx.args)
    env = {**_os.environ, "PYSPARK_PYTHON": sys.executable}
    if settings.spark.local_ip:
        env.setdefault("SPARK_LOCAL_IP", settings.spark.local_ip)
    _os.execvpe(command[0], command, env)


@app.command("maintain")
def maintain_command(
    ctx: typer.Context,
    retain_hours: Annotated[
        float | None,
        typer.Option(help="VACUUM retention; never below lakehouse.history_retention_hours (the default)."),
    ] = None,
) -> None:
    """OPTIMIZE every bronze, silver and gold table, then VACUUM files older than the retention."""
    from lakehouse.operations.maintenance import maintain

    for result in maintain(_spark(ctx, "fraudlake-maintain"), _settings(ctx), retain_hours=retain_hours):
        console.print(
            f"{result.table:<40} files {result.files_before:>5} → {result.files_after:<5} version {result.version_after}"
        )


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

    run_demo(_settings(ctx), console, duration_s=duration, rate=rate, fraud_rate=fraud_rate)


def run_job(ctx: typer.Context, module: str, *args: str) -> int:
    """Run ``jobs.<module>`` in its own Python process with the same settings; returns its exit code."""
    settings = _settings(ctx)
    env = _settings_environ()
    if ctx.obj.get("conf_dir"):
        env["FRAUDLAKE_CONF_DIR"] = str(Path(ctx.obj["conf_dir"]).resolve())
    command = [sys.executable, "-m", f"jobs.{module}", "--env", settings.env, *args]
    return subprocess.call(command, cwd=settings.project_dir, env=env)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: expected errors become one line on stderr, no stack trace."""
    with exit_on_error():
        app(args=argv, prog_name="fraudlake")


# The data-quality and retraining commands live in their own module; importing it registers them.
import lakehouse.cli.retraining  # noqa: E402,F401
