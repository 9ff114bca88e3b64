"""`fraudlake demo`: the whole product on the local platform, then a summary.

1. No champion yet: simulated history (``simulator.days`` days, ``simulator.transactions``) is
   produced to Kafka, ingested, turned into features, and the first model is trained.
2. The streaming jobs start as their own processes: ingest (Kafka → bronze → silver), the
   scorer (Kafka → features → model → gold.scored_transactions + fraud_alerts), and the engine's
   floor (:mod:`jobs.stream_passthrough`: a Spark Kafka → Kafka copy of the same payments with the
   scorer's trigger). A few seconds of unmeasured traffic take both past their cold first
   micro-batches, and the scorer catches up with the topic.
3. Live traffic with fraud for ``--duration`` seconds, while the alerts show in a live table
   (the ``fraudlake alerts tail`` consumer).
4. The scorer drains, the jobs stop, and a summary is printed: transactions, alerts, precision
   and recall against the simulator's ground truth, alert latency percentiles (broker append
   time minus the transaction's creation time) next to the pass-through's, measured at the same
   time on the same machine, and where to look next.

Ctrl-C at any moment stops the jobs (SIGINT reaches them as well; whatever is still running when
the demo exits is terminated, then killed). ``make demo`` then stops the broker and catalog.
"""

from __future__ import annotations

import shutil
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from rich.console import Console

from lakehouse.contract.alerts import created_ms
from lakehouse.demo.pipeline import (
    POLL_S,
    DemoError,
    Jobs,
    ensure_champion,
    interrupt_as_sigterm,
    send_days,
    wait_scored,
)
from lakehouse.platform.kafka.floor import appended_latencies, copy_created_ms, latency_topic
from lakehouse.platform.measure import percentile
from lakehouse.platform.waits import wait_until
from lakehouse.settings import Settings


@dataclass(frozen=True)
class LiveSummary:
    transactions: int
    frauds: int
    alerts: int
    true_alerts: int
    latency_ms: dict[str, float]
    floor_latency_ms: dict[str, float]  # the pass-through's, measured beside the scorer
    model_version: int | None

    @property
    def precision(self) -> float:
        return self.true_alerts / self.alerts if self.alerts else float("nan")

    @property
    def floor_ratio(self) -> float:
        floor = self.floor_latency_ms.get("p99", float("nan"))
        return self.latency_ms["p99"] / floor if floor and floor == floor else float("nan")

    @property
    def recall(self) -> float:
        return self.true_alerts / self.frauds if self.frauds else float("nan")


class Floor:
    """The engine's floor beside the scorer (:mod:`jobs.stream_passthrough`): its own
    ``LogAppendTime`` topic and a new checkpoint, removed at the end."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topic = f"demo_passthrough_{uuid.uuid4().hex[:8]}"
        self.checkpoint = settings.paths.data_dir / "tmp" / self.topic
        self.created = False

    def start(self, jobs: Jobs) -> None:
        from lakehouse.platform.kafka.topics import ensure_topics

        ensure_topics(self.settings.kafka, [latency_topic(self.topic, self.settings.kafka.topics.transactions)])
        self.created = True
        jobs.start("passthrough", "stream_passthrough", "--target", self.topic, "--checkpoint", str(self.checkpoint))

    def wait_ready(self, jobs: Jobs, timeout_s: float = 300) -> None:
        """Until the query has pinned its starting offsets (the Kafka source's initial offset file):
        every record sent after that is copied."""
        wait_until(
            lambda: (self.checkpoint / "sources" / "0" / "0").exists(),
            timeout_s=timeout_s,
            what="the pass-through query starting",
            poll_s=POLL_S,
            check=jobs.check,
        )

    def latencies(self, since_ms: int) -> list[float]:
        return appended_latencies(self.settings.kafka, self.topic, since_ms, lambda r: copy_created_ms(r.headers))

    def remove(self) -> None:
        from lakehouse.platform.kafka.topics import delete_topics

        if self.created:
            delete_topics(self.settings.kafka, [self.topic])
        shutil.rmtree(self.checkpoint, ignore_errors=True)


def percentiles(latencies: list[float]) -> dict[str, float]:
    return {f"p{q}": percentile(latencies, q) for q in (50, 95, 99)}


def summarise(settings: Settings, since: datetime, latencies: list[float], floor: list[float]) -> LiveSummary:
    from pyspark.sql import functions as F

    from lakehouse.contract.tables import table_names
    from lakehouse.ml import registry
    from lakehouse.platform.spark import build_spark

    spark = build_spark(settings, app_name="fraudlake-demo-summary")
    try:
        names = table_names(settings)
        live = spark.table(names.scored).where(F.col("transaction_created_at") >= F.lit(since))
        truth = spark.table(names.silver("transactions")).select("transaction_id", "is_fraud")
        row = (
            live.join(truth, "transaction_id", "left")
            .agg(
                F.count("*").alias("transactions"),
                F.sum(F.col("is_fraud").cast("int")).alias("frauds"),
                F.sum(F.col("is_alert").cast("int")).alias("alerts"),
                F.sum((F.col("is_alert") & F.col("is_fraud")).cast("int")).alias("true_alerts"),
            )
            .first()
        )
        return LiveSummary(
            transactions=int(row["transactions"] or 0),
            frauds=int(row["frauds"] or 0),
            alerts=int(row["alerts"] or 0),
            true_alerts=int(row["true_alerts"] or 0),
            latency_ms=percentiles(latencies),
            floor_latency_ms=percentiles(floor),
            model_version=registry.champion_version(settings, required=False),
        )
    finally:
        spark.stop()


def run_demo(settings: Settings, console: Console, *, duration_s: float, rate: float, fraud_rate: float) -> LiveSummary:
    from lakehouse.alerts.tail import TableOutput, tail
    from lakehouse.simulator.producer import ProduceLimits, resume_day

    sim = settings.simulator
    live_sim = sim.model_copy(update={"fraud_rate": fraud_rate})
    jobs = Jobs(settings, console)
    floor = Floor(settings)
    with interrupt_as_sigterm():
        try:
            try:
                ensure_champion(settings, jobs, "1. history and the first model")
                console.rule("2. streaming jobs")
                jobs.start("ingest", "stream_ingest")
                jobs.start("score", "stream_score")
                floor.start(jobs)
                floor.wait_ready(jobs)
                # A few seconds of traffic that nobody measures: the jobs' first micro-batches (a
                # cold JVM) come before the live part, for the scorer and the floor alike, as in a
                # deployment where the scorer runs before the payments do.
                warm_up = ProduceLimits(count=max(20, int(rate * 5)), rate=rate)
                send_days(settings, live_sim, warm_up, resume_day(settings, sim.days))
                with console.status("the scorer starts and catches up with the topic …") as status:
                    wait_scored(settings, jobs, 1800, lambda lag: status.update(f"the scorer catches up: {lag:,} left"))
                console.rule(
                    f"3. live traffic: {rate:g} transactions/s for {duration_s:g} s, fraud rate {fraud_rate:g}"
                )
                since = datetime.now(UTC)
                stop = threading.Event()
                assigned = threading.Event()
                produced: dict[str, object] = {}

                def traffic() -> None:
                    assigned.wait(60)
                    try:
                        limits = ProduceLimits(duration_s=duration_s, rate=rate)
                        first_day = resume_day(settings, sim.days)
                        produced["report"] = send_days(settings, live_sim, limits, first_day)
                        wait_scored(settings, jobs, 600, lambda _lag: None)
                    except BaseException as exc:
                        produced["error"] = exc
                    finally:
                        stop.set()

                producer = threading.Thread(target=traffic, name="demo-traffic", daemon=True)
                producer.start()
                report = tail(
                    settings,
                    group_id=f"fraudlake-demo-{uuid.uuid4().hex[:8]}",
                    from_beginning=False,
                    outputs=[TableOutput(console, title="fraud alerts (live)")],
                    stop=stop,
                    on_assigned=lambda _offsets: assigned.set(),
                )
                if report.stopped_by == "interrupted":
                    raise KeyboardInterrupt
                producer.join()
                if "error" in produced:
                    raise DemoError(f"live traffic failed: {produced['error']}")
                sent = produced["report"]
                console.print(
                    f"sent {sent.transactions:,} transactions ({sent.fraud:,} fraud); {report.handled:,} alerts shown"
                )
            finally:
                jobs.stop_all()
            console.rule("4. summary")
            jobs.run("drain the last records into silver (for the ground truth)", "stream_ingest", "--once")
            since_ms = int(since.timestamp() * 1000)
            alerts = appended_latencies(
                settings.kafka, settings.kafka.topics.alerts.name, since_ms, lambda r: created_ms(r.value)
            )
            summary = summarise(settings, since, alerts, floor.latencies(since_ms))
        finally:
            floor.remove()
    print_summary(console, settings, summary)
    return summary


def print_summary(console: Console, settings: Settings, s: LiveSummary) -> None:
    from rich.table import Table

    table = Table(title="live traffic, scored in real time", show_header=False)
    rows = [
        ("transactions scored", f"{s.transactions:,}"),
        ("frauds among them (simulator's ground truth)", f"{s.frauds:,}"),
        ("alerts", f"{s.alerts:,}"),
        ("precision (alerts that were fraud)", f"{s.precision:.1%}" if s.alerts else "n/a"),
        ("recall (frauds that alerted)", f"{s.recall:.1%}" if s.frauds else "n/a"),
        *[
            (
                f"alert latency {q} (created → appended to {settings.kafka.topics.alerts.name})",
                f"{v:,.0f} ms (pass-through {s.floor_latency_ms[q]:,.0f} ms)",
            )
            for q, v in s.latency_ms.items()
        ],
        (
            "alert p99 / pass-through p99 (the engine's floor, run beside the jobs; goal: at most 3x)",
            f"{s.floor_ratio:.2f}x",
        ),
        ("model version", str(s.model_version)),
    ]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    report = settings.paths.data_dir / "reports" / f"model-v{s.model_version}" / "index.html"
    console.print("Where to look next:")
    console.print(
        '  fraudlake sql "SELECT transaction_id, score, model_version, reasons FROM gold.scored_transactions WHERE '
        'is_alert ORDER BY score DESC LIMIT 10"'
    )
    console.print("  fraudlake alerts tail --from-beginning --format json | head")
    console.print("  fraudlake model list")
    if report.exists():
        console.print(f"  the model's training report: {report}")
    console.print(f"  job logs: {settings.paths.data_dir / 'logs'}")
    address = f"http://{settings.console.host}:{settings.console.port}"
    console.print(
        f"  the analysts' console: `make console` (or `fraudlake console`), then open {address} in a browser "
        "(an account first: fraudlake console account add NAME --role admin)"
    )
