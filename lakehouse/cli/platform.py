"""The local platform: ``fraudlake kafka up|down|status`` (the broker), ``catalog up|down|status``
(the catalog server), ``redis up|down|status`` (the decision service's Redis), ``cluster
up|down|status`` (a multi-process Spark and Kafka cluster), ``topics ensure|list``, ``config show``
and ``smoke`` (a round trip through all of it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from lakehouse.cli.common import console, run_job, settings_of

app = typer.Typer()
kafka_app = typer.Typer(help="Run the local Kafka broker (KRaft, one JVM): up, down, status.", no_args_is_help=True)
catalog_app = typer.Typer(
    help="Run the local catalog server (Derby network server, one JVM): up, down, status.", no_args_is_help=True
)
redis_app = typer.Typer(
    help="Run the local Redis of the decision service (redis-server, one process): up, down, status.",
    no_args_is_help=True,
)
cluster_app = typer.Typer(
    help="Run a multi-process cluster on loopback: a Spark standalone master and workers, a multi-node Kafka.",
    no_args_is_help=True,
)
topics_app = typer.Typer(help="Kafka topics from config: ensure (create the missing), list.", no_args_is_help=True)
config_app = typer.Typer(help="Inspect the effective configuration.", no_args_is_help=True)
app.add_typer(kafka_app, name="kafka")
app.add_typer(catalog_app, name="catalog")
app.add_typer(redis_app, name="redis")
app.add_typer(cluster_app, name="cluster")
app.add_typer(topics_app, name="topics")
app.add_typer(config_app, name="config")


def _report_up(name: str, address: str, pid: int | None, folder: Path, started: bool) -> None:
    verb = "started" if started else "already running"
    console.print(f"{name} {verb} at [bold]{address}[/] (pid {pid}, data in {folder})")


def _report_down(name: str, address: str, stopped: bool) -> None:
    console.print(f"{name} at {address} {'stopped' if stopped else 'was not running'}")


def _report_status(name: str, address: str, running: bool, pid: int | None) -> None:
    """Up (with its pid when it is ours) or down; exits 3 when down."""
    if not running:
        console.print(f"{name} at {address}: [red]down[/]")
        raise typer.Exit(3)
    console.print(f"{name} at {address}: [green]up[/]" + (f", pid {pid}" if pid else ""))


# ----------------------------------------------------------------------------- kafka


@kafka_app.command("up")
def kafka_up(ctx: typer.Context) -> None:
    """Start the local broker (formats its storage the first time) and wait until it answers.

    Harmless when it already runs. Data and logs go under paths.data_dir (kafka/).
    """
    from lakehouse.platform.kafka.broker import LocalBroker

    status, started = LocalBroker(settings_of(ctx)).up()
    _report_up("Kafka broker", status.address, status.pid, status.data_dir, started)


@kafka_app.command("down")
def kafka_down(ctx: typer.Context) -> None:
    """Stop the local broker cleanly; topics and their data stay for the next `up`."""
    from lakehouse.platform.kafka.broker import LocalBroker

    broker = LocalBroker(settings_of(ctx))
    _report_down("Kafka broker", broker.address, broker.down())


@kafka_app.command("status")
def kafka_status(ctx: typer.Context) -> None:
    """Say whether the broker is up, its address and its topics. Exits 3 when it is down."""
    from lakehouse.platform.kafka.broker import LocalBroker

    settings = settings_of(ctx)
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

    status, started = LocalCatalogServer(settings_of(ctx)).up()
    _report_up("catalog server", status.address, status.pid, status.folder, started)


@catalog_app.command("down")
def catalog_down(ctx: typer.Context) -> None:
    """Stop the catalog server; the catalog stays on disk for the next `up`."""
    from lakehouse.platform.catalog_server import LocalCatalogServer

    server = LocalCatalogServer(settings_of(ctx))
    _report_down("catalog server", server.address, server.down())


@catalog_app.command("status")
def catalog_status(ctx: typer.Context) -> None:
    """Say whether the catalog server listens. Exits 3 when it does not."""
    from lakehouse.platform.catalog_server import LocalCatalogServer

    status = LocalCatalogServer(settings_of(ctx)).status()
    _report_status("catalog server", status.address, status.running, status.pid)


# ----------------------------------------------------------------------------- redis


@redis_app.command("up")
def redis_up(ctx: typer.Context) -> None:
    """Start the local Redis (the decision service's per-user history) and wait until it answers. Idempotent.

    Data (an append-only file) and its log go under paths.data_dir (redis/).
    """
    from lakehouse.platform.redis import LocalRedis

    status, started = LocalRedis(settings_of(ctx)).up()
    _report_up("Redis", status.address, status.pid, status.data_dir, started)


@redis_app.command("down")
def redis_down(ctx: typer.Context) -> None:
    """Stop the local Redis; its data stays on disk (append-only file) for the next `up`."""
    from lakehouse.platform.redis import LocalRedis

    server = LocalRedis(settings_of(ctx))
    _report_down("Redis", server.address, server.down())


@redis_app.command("status")
def redis_status(ctx: typer.Context) -> None:
    """Say whether the decision service's Redis answers. Exits 3 when it does not."""
    from lakehouse.platform.redis import LocalRedis

    status = LocalRedis(settings_of(ctx)).status()
    _report_status("Redis", status.address, status.running, status.pid)


# ----------------------------------------------------------------------------- cluster


@cluster_app.command("up")
def cluster_up(ctx: typer.Context) -> None:
    """Start the Kafka nodes, the Spark master and its workers (what is not running yet) and wait until
    all of them answer. Sizes and ports: the `cluster:` settings. Point the jobs at it with
    --env cluster-local."""
    from lakehouse.platform.cluster import LocalCluster

    status, started = LocalCluster(settings_of(ctx)).up()
    _print_cluster(status)
    console.print("started what was missing" if started else "already running")


@cluster_app.command("down")
def cluster_down(ctx: typer.Context) -> None:
    """Stop the workers, the master and the Kafka nodes; topics and data stay for the next `up`."""
    from lakehouse.platform.cluster import LocalCluster

    stopped = LocalCluster(settings_of(ctx)).down()
    console.print("cluster stopped" if stopped else "cluster was not running")


@cluster_app.command("status")
def cluster_status(ctx: typer.Context) -> None:
    """Each process of the cluster, the workers the master knows and the brokers that answer. Exits 3
    unless all of it is up."""
    from lakehouse.platform.cluster import LocalCluster

    status = LocalCluster(settings_of(ctx)).status()
    _print_cluster(status)
    if not status.complete:
        raise typer.Exit(3)


def _print_cluster(status) -> None:
    up, down = "[green]up[/]", "[red]down[/]"
    console.print(f"Spark master {status.master_url} (UI {status.master_ui}): {status.alive_workers} workers alive")
    for worker in status.workers:
        console.print(f"  {worker.id}: {worker.state}, {worker.cores} cores, {worker.memory_mb} MB")
    console.print(f"Kafka {status.bootstrap}")
    for address, answers in status.brokers.items():
        console.print(f"  {address}: {up if answers else down}")
    for name, pid in status.pids.items():
        console.print(f"  {name}: {f'pid {pid}' if pid else 'not running'}")


# ----------------------------------------------------------------------------- topics


@topics_app.command("ensure")
def topics_ensure(ctx: typer.Context) -> None:
    """Create the configured topics that are missing (transactions, users, merchants, alerts)."""
    from lakehouse.platform.kafka.topics import ensure_topics

    kafka = settings_of(ctx).kafka
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

    for name in list_topics(settings_of(ctx).kafka, include_internal=internal):
        console.print(name)


# ----------------------------------------------------------------------------- config


@config_app.command("show")
def config_show(ctx: typer.Context) -> None:
    """Print the effective settings (base + overlay + FRAUDLAKE_* variables) as JSON; secrets masked."""
    print(json.dumps(settings_of(ctx).redacted(), indent=2))


# ----------------------------------------------------------------------------- smoke


@app.command("smoke")
def smoke(
    ctx: typer.Context,
    count: Annotated[int, typer.Option(help="Records to send through the round trip.")] = 100,
) -> None:
    """Prove the platform works: Kafka round trip, Spark's Kafka source, a Delta table and time travel.

    Needs the broker: `fraudlake kafka up` first.
    """
    raise typer.Exit(run_job(ctx, "smoke_roundtrip", "--count", str(count)))
