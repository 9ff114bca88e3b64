"""`fraudlake bench console`: the console's alert queue while the scorer emits alerts.

The benchmark's own world (its schemas, topics, registry and checkpoints, as `bench score`'s) is
simulated, imported and trained; its champion gets an alert threshold of 0 in the world's own
registry, so every payment the scorer scores becomes an alert. The real scorer then runs in this
process on payments sent at ``rate`` per second for ``duration_s``: ``rate`` alerts a second reach
``fraud_alerts``. The console runs in the same process (on the same 2 cores and the same Python
interpreter as the scorer's driver: harder than its own process) on its own port, and an
analyst's client asks for the first page of the queue ``requests_per_s`` times a second over the
same minute, as the live page does when it reloads. Reported: the requests' latency p50 / p95 /
p99, and the alerts the queue holds at the end against the payments sent."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from lakehouse.benchmarks.report import Report, StageClock
from lakehouse.platform.measure import percentile
from lakehouse.settings import Settings

BENCH_USER = "bench-analyst"
#: How long the last alerts may take to reach the queue after the payments stop.
DRAIN_S = 120.0


@dataclass
class ConsoleBench:
    rate: float
    duration_s: float
    requests_per_s: float
    sent: int = 0
    queued: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    failures: int = 0
    setup: dict[str, float] = field(default_factory=dict)


def bench_console(
    spark,
    settings: Settings,
    *,
    folder: Path,
    rate: float,
    duration_s: float,
    requests_per_s: float,
    on_progress: Callable[[str], None] = print,
) -> ConsoleBench:
    import logging
    import secrets

    from lakehouse.benchmarks.scoring import send_transactions
    from lakehouse.benchmarks.training import bench_world, train_world
    from lakehouse.console.accounts import add_account
    from lakehouse.console.serve import Console
    from lakehouse.ml import registry
    from lakehouse.platform.isolation import STREAM_TOPICS, drop_schemas, updated
    from lakehouse.platform.jvm import free_port
    from lakehouse.platform.kafka.topics import delete_topics, ensure_topics
    from lakehouse.platform.streaming import raise_if_failed
    from lakehouse.platform.waits import wait_until
    from lakehouse.scoring.scorer import start_scorer
    from lakehouse.simulator.producer import ProduceLimits
    from lakehouse.simulator.simulation import start_before

    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request of the benchmark
    world = bench_world(
        settings,
        folder,
        topics=True,
        checkpoint_dir=folder / "checkpoints",
        data_dir=folder / "data",  # the console's accounts, secret and reports too
        simulator={"transactions": 12_000, "users": 800, "days": 24, "fraud_rate": 0.03},
        training={"gbt": {"max_iter": 10}},
    )
    world = updated(world, {"console": {"port": free_port(settings.console.host)}})
    topics = [getattr(world.kafka.topics, name) for name in STREAM_TOPICS]
    bench = ConsoleBench(rate, duration_s, requests_per_s)
    timed = StageClock(bench.setup, on_progress)
    queries, console = [], None
    try:
        ensure_topics(world.kafka, topics)
        train_world(spark, world, folder, timed)
        registry.tag(world, registry.champion_version(world), "threshold", repr(0.0))  # every payment alerts
        queries = timed("scorer start", lambda: start_scorer(spark, world))
        wait_until(
            lambda: queries[0].lastProgress is not None,
            timeout_s=300,
            what="the scorer's first micro-batch",
            check=lambda: [raise_if_failed(q) for q in queries],
        )
        password = secrets.token_urlsafe(16)
        add_account(world, BENCH_USER, "analyst", password)
        console = Console(world, spark)
        timed("console start", console.start)
        start_day = start_before(world.simulator, date.today(), int(rate * duration_s))

        def send() -> None:
            limits = ProduceLimits(duration_s=duration_s, rate=rate)
            bench.sent = send_transactions(
                world, world.kafka.topics.transactions.name, limits, seed=303, start_day=start_day
            )

        producing = threading.Thread(target=send, name="bench-payments")
        on_progress(
            f"payments (each an alert) at {rate:g}/s for {duration_s:g} s, the queue asked for "
            f"{requests_per_s:g} times a second"
        )
        producing.start()
        _ask_queue(console.url, password, bench)
        producing.join()
        wait_until(
            lambda: console.queue.changes >= bench.sent,
            timeout_s=DRAIN_S,
            what=f"the scorer's {bench.sent:,} alerts in the console's queue",
            check=lambda: [raise_if_failed(q) for q in queries],
        )
    finally:
        bench.queued = console.queue.changes if console is not None else 0
        if console is not None:
            console.stop()
        for query in queries:
            query.stop()
        delete_topics(world.kafka, [t.name for t in topics])
        drop_schemas(spark, world)
    return bench


def _ask_queue(url: str, password: str, bench: ConsoleBench) -> None:
    """Log in as the benchmark's analyst, then ask for the queue's first page ``requests_per_s``
    times a second for ``duration_s``, keeping each answer's latency."""
    import httpx

    with httpx.Client(base_url=url, timeout=30) as web:
        token = web.get("/login").text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        web.post("/login", data={"name": BENCH_USER, "password": password, "csrf": token, "next": "/"})
        began, asked = time.monotonic(), 0
        while time.monotonic() - began < bench.duration_s:
            asked += 1
            start = time.perf_counter()
            reply = web.get("/")
            elapsed_ms = (time.perf_counter() - start) * 1000
            if reply.status_code == 200:
                bench.latencies_ms.append(elapsed_ms)
            else:
                bench.failures += 1
            pause = began + asked / bench.requests_per_s - time.monotonic()
            if pause > 0:
                time.sleep(pause)


def console_report(bench: ConsoleBench, settings: Settings) -> Report:
    q = bench.latencies_ms
    report = Report(
        name="console",
        title="The console's alert queue while the scorer emits alerts",
        command=f"fraudlake bench console --rate {bench.rate:g} --duration {bench.duration_s:g} "
        f"--requests-per-second {bench.requests_per_s:g}",
        settings={
            "alerts": f"the scorer's, {bench.rate:g}/s for {bench.duration_s:g} s (payments at that rate, each "
            "an alert: the world's champion has a threshold of 0), the scorer and the console in one process",
            "requests": f"the queue's first page ({settings.console.page_size} rows), {bench.requests_per_s:g}/s",
        },
    )
    report.section("Queue page latency (ms)").table(
        ["requests", "failed", "p50", "p95", "p99", "max"],
        [(len(q), bench.failures, *(f"{percentile(q, p):,.0f}" for p in (50, 95, 99)), f"{max(q, default=0):,.0f}")],
        "rrrrrr",
    )
    report.text(f"Payments sent {bench.sent:,}; alerts in the queue at the end {bench.queued:,}.")
    if bench.setup:
        report.text("Set-up (not measured): " + ", ".join(f"{k} {v:,.0f} s" for k, v in bench.setup.items()) + ".")
    return report
