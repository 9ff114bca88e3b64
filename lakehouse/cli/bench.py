"""Benchmarks that write their figures to docs/benchmarks/: ``fraudlake bench
produce|state|train|detection|score|ingest|import|cluster|console|decide``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from lakehouse.cli.common import console, settings_of, spark_session

if TYPE_CHECKING:
    from lakehouse.benchmarks.report import Report

T = TypeVar("T")
app = typer.Typer()
bench_app = typer.Typer(help="Benchmarks that write their figures to docs/benchmarks/.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")


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
    from lakehouse.simulator.simulation import start_before

    settings = settings_of(ctx)
    list_topics(settings.kafka)  # fail plainly now if the broker is down
    start = start_before(settings.simulator, datetime.now(UTC).date(), count)
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
    from lakehouse.benchmarks.report import machine_description
    from lakehouse.platform.kafka.topics import list_topics

    settings = settings_of(ctx)
    list_topics(settings.kafka)  # fail plainly now if the broker is down
    points = bench_state(
        spark_session(ctx, "fraudlake-bench-state"),
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
    from lakehouse.benchmarks.training import bench_train, train_report

    _bench_in_scratch_folder(
        ctx, "train", "training", bench_train, train_report, output, transactions=transactions, users=users, days=days
    )


def _bench_in_scratch_folder(
    ctx: typer.Context, name: str, page: str, run: Callable, report: Callable, output: Path | None, **options: object
) -> None:
    """``run(spark, settings, folder=..., on_progress=..., **options)`` in a scratch folder, then
    ``report(bench, settings)`` written to ``output`` (default ``docs/benchmarks/<page>.md``)."""
    settings = settings_of(ctx)
    bench = _in_scratch_folder(
        name,
        lambda folder: run(
            spark_session(ctx, f"fraudlake-bench-{name}"),
            settings,
            folder=folder,
            on_progress=console.print,
            **options,
        ),
    )
    _write(report(bench, settings), output or settings.project_dir / "docs" / "benchmarks" / f"{page}.md")


def _in_scratch_folder(name: str, run: Callable[[Path], T]) -> T:
    """``run`` with a temporary folder (a benchmark's world: its files and registry), removed after."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix=f"fraudlake-bench-{name}-") as folder:
        return run(Path(folder))


def _write(report: Report, path: Path) -> None:
    console.print(report.write(path))
    console.print(f"written to {path}")


@bench_app.command("detection")
def bench_detection_command(
    ctx: typer.Context,
    customers: Annotated[
        int, typer.Option(help="Customers of the outside-style data (the published world: 5,000).")
    ] = 5_000,
    terminals: Annotated[
        int, typer.Option(help="Terminals (merchants) of the outside-style data (published: 10,000).")
    ] = 10_000,
    days: Annotated[int, typer.Option(help="Days: history, training window, feedback delay and the test week.")] = 84,
    seed: Annotated[int, typer.Option(help="Seed of the data.")] = 7,
    output: Annotated[Path | None, typer.Option(help="Report file. Default: docs/benchmarks/detection.md.")] = None,
) -> None:
    """Detection on data the product has never seen: outside-style payments (their own columns and
    fraud patterns) imported with a column mapping, features built, models trained with the defaults
    and with the previous release's features, each backtested on the last week; written to docs/.

    Example: fraudlake bench detection --customers 5000 --terminals 10000 --days 84
    """
    from lakehouse.benchmarks.detection import bench_detection, detection_report

    _bench_in_scratch_folder(
        ctx,
        "detection",
        "detection",
        bench_detection,
        detection_report,
        output,
        customers=customers,
        terminals=terminals,
        days=days,
        seed=seed,
    )


@bench_app.command("score")
def bench_score_command(
    ctx: typer.Context,
    rate: Annotated[
        list[float] | None,
        typer.Option(
            help="Transactions/s of a latency run, repeatable. Default: half the scorer's measured sustainable rate, "
            "and 200."
        ),
    ] = None,
    duration: Annotated[float, typer.Option(help="Seconds per latency run.")] = 60.0,
    preload: Annotated[int, typer.Option(help="Transactions drained for the throughput figure.")] = 50_000,
    runs: Annotated[int, typer.Option(help="Throughput runs per Spark pipeline (the median is reported).")] = 3,
    quix: Annotated[
        bool, typer.Option(help="Also run the scorer in Quix Streams (its own virtualenv, made on first use).")
    ] = True,
    output: Annotated[Path | None, typer.Option(help="Report file. Default: docs/benchmarks/scoring.md.")] = None,
) -> None:
    """The scorer's sustainable throughput and end-to-end alert latency (p50/p95/p99 at fixed
    rates) next to a minimal Spark Kafka → Kafka pass-through and the same scorer in Quix Streams, on
    the same records; written to docs/.

    Needs the broker (`fraudlake kafka up`). Example: fraudlake bench score --rate 100 --rate 500 --duration 60
    """
    import tempfile

    from lakehouse.benchmarks.report import machine_description
    from lakehouse.benchmarks.scoring import bench_score
    from lakehouse.benchmarks.scoring_report import write_score_report
    from lakehouse.platform.kafka.topics import list_topics

    settings = settings_of(ctx)
    list_topics(settings.kafka)  # fail plainly now if the broker is down
    rates = rate or None  # None: from the throughput just measured
    with tempfile.TemporaryDirectory(prefix="fraudlake-bench-score-") as folder:
        bench = bench_score(
            spark_session(ctx, "fraudlake-bench-score"),
            settings,
            folder=Path(folder),
            rates=rates,
            duration_s=duration,
            preload=preload,
            runs=runs,
            quix=quix,
            on_progress=console.print,
        )
    path = output or settings.project_dir / "docs" / "benchmarks" / "scoring.md"
    console.print(write_score_report(path, bench, machine_description(), settings, duration_s=duration))
    console.print(f"written to {path}")


@bench_app.command("ingest")
def bench_ingest_command(
    ctx: typer.Context,
    transactions: Annotated[
        int, typer.Option(help="Transactions preloaded (with their users and merchants, 1% bad records).")
    ] = 100_000,
    runs: Annotated[int, typer.Option(help="Drains per pipeline, interleaved (the median is reported).")] = 3,
    days: Annotated[int, typer.Option(help="Simulated days of the continuous run (0: skip it).")] = 30,
    per_day: Annotated[int, typer.Option(help="Transactions per simulated day of the continuous run.")] = 3_000,
    rate: Annotated[float, typer.Option(help="Transactions/s sent in the continuous run.")] = 100.0,
    output: Annotated[Path | None, typer.Option(help="Report file. Default: docs/benchmarks/ingest.md.")] = None,
) -> None:
    """Ingest (Kafka → bronze → silver, quarantine included) against a plain Spark Kafka → Delta
    append and the Kafka → Kafka pass-through, on the same preloaded records; then a continuous run
    over a compressed month, its batch time on the last day against the first; written to docs/.

    Needs the broker and the catalog up. Example: fraudlake bench ingest --transactions 100000 --runs 3 --days 30
    """
    from lakehouse.benchmarks.ingest import bench_ingest, ingest_report
    from lakehouse.benchmarks.ingest_flat import bench_flat
    from lakehouse.platform.kafka.topics import list_topics

    list_topics(settings_of(ctx).kafka)  # fail plainly now if the broker is down

    def run(spark, settings, *, folder: Path, on_progress, **options):
        bench = bench_ingest(spark, settings, folder=folder, on_progress=on_progress, **options)
        if days:
            bench.flat = bench_flat(
                spark,
                settings,
                folder=folder,
                days=days,
                per_day=per_day,
                rate=rate,
                trigger=settings.streaming.trigger if settings.streaming.trigger != "availableNow" else "10 seconds",
                on_progress=on_progress,
            )
        return bench

    _bench_in_scratch_folder(ctx, "ingest", "ingest", run, ingest_report, output, transactions=transactions, runs=runs)


@bench_app.command("import")
def bench_import_command(
    ctx: typer.Context,
    transactions: Annotated[int, typer.Option(help="Transactions in the simulated file.")] = 1_000_000,
    users: Annotated[int, typer.Option(help="Users of the simulated file.")] = 20_000,
    days: Annotated[int, typer.Option(help="Days the file covers.")] = 45,
    runs: Annotated[int, typer.Option(help="Runs per pipeline, interleaved (the median is reported).")] = 1,
    baseline: Annotated[str, typer.Option(help="Git commit of the earlier release to compare with.")] = "",
    output: Annotated[Path | None, typer.Option(help="Report file. Default: docs/benchmarks/import.md.")] = None,
) -> None:
    """`fraudlake import` of a simulated file against an earlier release's import (from git) and
    Spark's own Parquet → Delta copy of the same file, each its own process; written to docs/.

    Example: fraudlake bench import --transactions 1000000 --runs 1
    """
    from lakehouse.benchmarks.imports import BASELINE, bench_import, import_report

    settings = settings_of(ctx)
    bench = _in_scratch_folder(
        "import",
        lambda folder: bench_import(
            settings,
            transactions=transactions,
            users=users,
            days=days,
            runs=runs,
            baseline=baseline or BASELINE,
            folder=folder,
            on_progress=console.print,
        ),
    )
    _write(import_report(bench, settings), output or settings.project_dir / "docs" / "benchmarks" / "import.md")


@bench_app.command("cluster")
def bench_cluster_command(
    ctx: typer.Context,
    preload: Annotated[int, typer.Option(help="Transactions drained by every run.")] = 20_000,
    runs: Annotated[
        int, typer.Option(help="Runs per size, alternating which size and which pipeline go first (median).")
    ] = 4,
    output: Annotated[Path | None, typer.Option(help="Report file. Default: docs/benchmarks/cluster.md.")] = None,
) -> None:
    """The scorer (and the Kafka → Kafka pass-through) on one worker against two, on the local
    cluster, on the same preloaded records; written to docs/.

    Needs `fraudlake cluster up` and `fraudlake catalog up`.
    Example: fraudlake --env cluster-local bench cluster --preload 20000 --runs 4
    """
    from lakehouse.benchmarks.cluster import bench_cluster, cluster_report

    settings = settings_of(ctx)
    bench = _in_scratch_folder(
        "cluster",
        lambda folder: bench_cluster(settings, folder=folder, preload=preload, runs=runs, on_progress=console.print),
    )
    _write(cluster_report(bench, settings), output or settings.project_dir / "docs" / "benchmarks" / "cluster.md")


@bench_app.command("console")
def bench_console_command(
    ctx: typer.Context,
    rate: Annotated[float, typer.Option(help="Payments a second to the scorer, each an alert.")] = 50.0,
    duration: Annotated[float, typer.Option(help="Seconds of alerts and requests.")] = 60.0,
    requests_per_second: Annotated[float, typer.Option(help="Requests for the queue's first page a second.")] = 5.0,
    output: Annotated[Path | None, typer.Option(help="Report file. Default: docs/benchmarks/console.md.")] = None,
) -> None:
    """The console's queue page latency (p50/p95/p99) while the scorer emits alerts; written to docs/.

    Needs the broker and the catalog. Example: fraudlake bench console --rate 50 --duration 60
    """
    from lakehouse.benchmarks.console import bench_console, console_report

    _bench_in_scratch_folder(
        ctx,
        "console",
        "console",
        bench_console,
        console_report,
        output,
        rate=rate,
        duration_s=duration,
        requests_per_s=requests_per_second,
    )


@bench_app.command("decide")
def bench_decide_command(
    ctx: typer.Context,
    rate: Annotated[
        list[str] | None,
        typer.Option(
            metavar="RATE",
            help="Requests/s of an open-loop latency run, repeatable or a comma list (half the decision service's "
            "measured sustainable rate is always added). Default: 200.",
        ),
    ] = None,
    duration: Annotated[float, typer.Option(min=1, help="Seconds of each run (throughput and each rate).")] = 30.0,
    output: Annotated[Path | None, typer.Option(help="Report file. Default: docs/benchmarks/decisions.md.")] = None,
) -> None:
    """The decision service (POST /v1/decisions) against an echo endpoint on the same server and
    stack, under the same load: sustainable rate, p99 at fixed rates, where a decision's time goes;
    written to docs/.

    Needs the broker and the catalog up (and redis-server installed, or decisions.redis.url).
    Example: fraudlake bench decide --rate 200 --duration 30
    """
    from lakehouse.benchmarks.decisions import bench_decide
    from lakehouse.benchmarks.decisions_report import decide_report
    from lakehouse.platform.kafka.topics import list_topics

    try:
        rates = tuple(float(r) for option in rate or ["200"] for r in option.split(",") if r.strip())
    except ValueError:
        rates = ()
    if not rates or not all(0 < r < float("inf") for r in rates):
        raise typer.BadParameter(
            f"{', '.join(rate or [])!r}: give requests/s above 0, e.g. --rate 200 --rate 400 or --rate 200,400",
            param_hint="--rate",
        )
    list_topics(settings_of(ctx).kafka)  # fail plainly now if the broker is down
    _bench_in_scratch_folder(
        ctx,
        "decide",
        "decisions",
        bench_decide,
        decide_report,
        output,
        rates=rates,
        duration_s=duration,
        conf_dir=ctx.obj.get("conf_dir"),
    )
