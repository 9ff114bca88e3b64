"""`fraudlake bench console`: the console's alert queue under a stream of alerts.

A console runs on its own alert topic and port while a producer appends alerts at ``rate`` per
second for ``duration_s`` (alerts as the scorer writes them, with fresh ids and spread scores: the
scorer itself is measured by `fraudlake bench score`), and an analyst's client asks for the first
page of the queue ``requests_per_s`` times a second over the same minute, as the live page does
when it reloads. Reported: the requests' latency p50 / p95 / p99 and the alerts the queue holds at
the end against those sent."""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from lakehouse.benchmarks.report import Report
from lakehouse.platform.measure import percentile
from lakehouse.settings import Settings

BENCH_USER = "bench-analyst"


@dataclass
class ConsoleBench:
    rate: float
    duration_s: float
    requests_per_s: float
    sent: int = 0
    queued: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    failures: int = 0


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

    import httpx

    from lakehouse.console.accounts import add_account
    from lakehouse.console.serve import Console
    from lakehouse.contract.alerts import example_alert
    from lakehouse.platform.isolation import isolated, updated
    from lakehouse.platform.jvm import free_port
    from lakehouse.platform.kafka.clients import producer
    from lakehouse.platform.kafka.topics import delete_topics, ensure_topics

    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request of the benchmark
    world = isolated(settings, topics=True, data_dir=folder)
    world = updated(world, {"console": {"port": free_port(settings.console.host)}})
    ensure_topics(world.kafka, [world.kafka.topics.alerts, world.kafka.topics.labels])
    password = secrets.token_urlsafe(16)
    add_account(world, BENCH_USER, "analyst", password)
    bench = ConsoleBench(rate, duration_s, requests_per_s)
    console = Console(world, spark)
    console.start()
    stop = threading.Event()

    def send_alerts() -> None:
        sender = producer(world.kafka)
        rng = random.Random(7)
        began = time.monotonic()
        try:
            while not stop.is_set() and time.monotonic() - began < duration_s:
                due = int((time.monotonic() - began) * rate) + 1
                while bench.sent < due:
                    alert = example_alert(
                        f"bench-{uuid.uuid4().hex}",
                        user_id=f"user-{rng.randrange(500)}",
                        merchant_id=f"merchant-{rng.randrange(100)}",
                        amount=round(rng.uniform(5, 3000), 2),
                        score=rng.random(),
                        model_version=1,
                    )
                    sender.send(
                        world.kafka.topics.alerts.name, json.dumps(alert).encode(), key=alert["user_id"].encode()
                    )
                    bench.sent += 1
                time.sleep(0.01)
            sender.flush(30)
        finally:
            sender.close()

    producing = threading.Thread(target=send_alerts, name="bench-alerts")
    try:
        with httpx.Client(base_url=console.url, timeout=30) as web:
            login = web.get("/login")
            token = login.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
            web.post("/login", data={"name": BENCH_USER, "password": password, "csrf": token, "next": "/"})
            on_progress(
                f"alerts at {rate:g}/s for {duration_s:g} s, the queue asked for {requests_per_s:g} times a second"
            )
            producing.start()
            began, asked = time.monotonic(), 0
            while time.monotonic() - began < duration_s:
                asked += 1
                start = time.perf_counter()
                reply = web.get("/")
                elapsed_ms = (time.perf_counter() - start) * 1000
                if reply.status_code == 200:
                    bench.latencies_ms.append(elapsed_ms)
                else:
                    bench.failures += 1
                pause = began + asked / requests_per_s - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
            producing.join()
            deadline = time.monotonic() + 30  # the last alerts reach the queue
            while console.queue.changes < bench.sent and time.monotonic() < deadline:
                time.sleep(0.2)
            bench.queued = console.queue.changes
    finally:
        stop.set()
        console.stop()
        delete_topics(world.kafka, [world.kafka.topics.alerts.name, world.kafka.topics.labels.name])
    return bench


def console_report(bench: ConsoleBench, settings: Settings) -> Report:
    q = bench.latencies_ms
    report = Report(
        name="console",
        title="The console's alert queue under a stream of alerts",
        command=f"fraudlake bench console --rate {bench.rate:g} --duration {bench.duration_s:g} "
        f"--requests-per-second {bench.requests_per_s:g}",
        settings={
            "alerts": f"{bench.rate:g}/s for {bench.duration_s:g} s onto the console's alert topic",
            "requests": f"the queue's first page ({settings.console.page_size} rows), {bench.requests_per_s:g}/s",
        },
    )
    report.section("Queue page latency (ms)").table(
        ["requests", "failed", "p50", "p95", "p99", "max"],
        [(len(q), bench.failures, *(f"{percentile(q, p):,.0f}" for p in (50, 95, 99)), f"{max(q, default=0):,.0f}")],
        "rrrrrr",
    )
    report.text(f"Alerts sent {bench.sent:,}; in the queue at the end {bench.queued:,}.")
    return report
