"""``fraudlake soak``: the whole pipeline at a set rate for a long time, measured, with a report in
``docs/benchmarks/soak.md``.

A first model if there is none (as the demo), then the ingest and scoring jobs as their own
processes, simulated traffic at ``--rate`` for ``--duration`` seconds, and an alerts tail (its own
group and state file) writing every alert to a file. Every ``--interval`` seconds it samples, from
outside the jobs:

- the resident memory (RSS) of each job's process tree (the Python driver, its JVM, the Python
  workers);
- each streaming query's lag (records waiting) and the duration of its last micro-batch (the
  checkpoint's commit file written after its offsets file);
- the size of the scorer's state store on disk.

With ``--pause-broker N`` the local broker is stopped with SIGSTOP halfway through for N seconds
(a frozen host): a job or the tail that stops meanwhile is started again, as its service
manager would, and counted; nothing may be lost.

At the end the scorer drains, the jobs stop, and the alerts are accounted for: every transaction
scored as an alert since the start must have its alert in ``fraud_alerts`` (lost: 0) and reach the
tail's file once (duplicated in effect: 0; records repeated in the topic after a replay carry the
same ``alert_id`` and are counted apart, as the tail drops them).
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from lakehouse.demo.pipeline import (
    DemoError,
    Jobs,
    check_live_room,
    ensure_champion,
    interrupt_as_sigterm,
    send_days,
    wait_scored,
)
from lakehouse.errors import BrokerUnavailableError
from lakehouse.platform.checkpoints import local_path
from lakehouse.platform.measure import percentile
from lakehouse.settings import Settings

MB = 1024 * 1024
JOB_MODULES = {"ingest": "stream_ingest", "score": "stream_score"}


@dataclass(frozen=True)
class Sample:
    at_s: float  # since the measured part began
    rss_mb: dict[str, float]  # job → RSS of its process tree
    lag: dict[str, int | None]  # streaming query → records waiting
    batch_s: dict[str, float | None]  # streaming query → duration of its last micro-batch
    state_mb: float  # the scorer's state store on disk


@dataclass
class SoakResult:
    duration_s: float
    rate: float
    sent: int = 0
    scored: int = 0
    flagged: int = 0  # scored as alerts since the start
    alert_records: int = 0  # records in fraud_alerts since the start
    lost: int = 0  # flagged, but no alert in the topic
    delivered: int = 0  # alerts the tail wrote to its file
    duplicated: int = 0  # alerts the tail wrote more than once
    repeated_records: int = 0  # alert records repeated in the topic (same alert_id)
    samples: list[Sample] = field(default_factory=list)
    restarts: dict[str, int] = field(default_factory=dict)  # job or tail → times it was started again
    broker_pause: tuple[float, float] | None = None  # (began at s, lasted s): the broker under SIGSTOP
    traffic_s: float | None = None  # how long the traffic ran
    stopped_early: str | None = None  # why the traffic stopped before the duration, if it did


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and all its descendants, in MiB (0 when it is gone)."""
    import psutil

    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.NoSuchProcess:
            continue
    return total / MB


def last_batch_s(checkpoint: Path) -> float | None:
    """How long the last committed micro-batch took: its commit file's time minus its offsets file's."""
    commits = (
        [int(p.name) for p in (checkpoint / "commits").glob("[0-9]*")] if (checkpoint / "commits").is_dir() else []
    )
    if not commits:
        return None
    batch = str(max(commits))
    try:
        return (checkpoint / "commits" / batch).stat().st_mtime - (checkpoint / "offsets" / batch).stat().st_mtime
    except FileNotFoundError:
        return None


def folder_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / MB if folder.is_dir() else 0.0


def take_sample(settings: Settings, jobs: Jobs, at_s: float) -> Sample:
    """One sample; the lag is unknown (empty) while the broker does not answer."""
    from lakehouse.contract.queries import SCORE_QUERY
    from lakehouse.errors import BrokerUnavailableError
    from lakehouse.operations.stream_status import stream_status, streaming_queries
    from lakehouse.platform.streaming import query_plan

    try:
        lag = {q.query: q.lag for q in stream_status(settings).queries}
    except BrokerUnavailableError:
        lag = {}
    checkpoints = {q.name: local_path(query_plan(settings, q.name).checkpoint) for q in streaming_queries(settings)}
    return Sample(
        at_s=round(at_s, 1),
        rss_mb={name: round(tree_rss_mb(p.pid), 1) for name, p in jobs.running.items()},
        lag=lag,
        batch_s={name: last_batch_s(path) for name, path in checkpoints.items()},
        state_mb=round(folder_mb(local_path(query_plan(settings, SCORE_QUERY).checkpoint) / "state"), 2),
    )


def restart_stopped(jobs: Jobs, result: SoakResult, limit: int = 5) -> None:
    """What a service manager does: start a job that stopped again (counted), up to ``limit`` times."""
    for name, process in list(jobs.running.items()):
        if process.poll() is None:
            continue
        result.restarts[name] = result.restarts.get(name, 0) + 1
        if result.restarts[name] > limit:
            jobs.check()  # raises, naming the job and its log
        jobs.console.print(f"[yellow]the {name} job stopped (exit {process.returncode}): starting it again[/]")
        jobs.start(name, JOB_MODULES[name])


class BrokerPause:
    """The local broker under SIGSTOP for a while (a frozen host, a long GC pause), always resumed."""

    def __init__(self, settings: Settings, seconds: float) -> None:
        from lakehouse.platform.kafka.broker import LocalBroker

        self.pid = LocalBroker(settings).service.running_pid()
        if self.pid is None:
            raise DemoError("--pause-broker needs the local broker (fraudlake kafka up)")
        self.seconds = seconds
        self.timer: threading.Timer | None = None

    def begin(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)
        self.timer = threading.Timer(self.seconds, self.end)
        self.timer.start()

    def end(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        os.kill(self.pid, signal.SIGCONT)


def run_soak(
    settings: Settings,
    console: Console,
    *,
    duration_s: float,
    rate: float,
    fraud_rate: float,
    interval_s: float,
    pause_broker_s: float = 0.0,
) -> SoakResult:
    """``pause_broker_s``: halfway through, the local broker is stopped (SIGSTOP) for that long."""
    from lakehouse.alerts.tail import Deduplicator, FileOutput, close_outputs, tail
    from lakehouse.simulator.producer import ProduceLimits, resume_day

    sim = settings.simulator
    live_sim = sim.model_copy(update={"fraud_rate": fraud_rate})
    check_live_room(settings, duration_s * rate, datetime.now(UTC).date())
    result = SoakResult(duration_s=duration_s, rate=rate)
    folder = settings.paths.data_dir / "soak" / datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    folder.mkdir(parents=True)
    jobs = Jobs(settings, console)
    with interrupt_as_sigterm():
        try:
            ensure_champion(settings, jobs, "history and the first model")
            for name, module in JOB_MODULES.items():
                jobs.start(name, module)
            send_days(
                settings,
                live_sim,
                ProduceLimits(count=max(20, int(rate * 5)), rate=rate),
                resume_day(settings, sim.days),
            )
            with console.status("the scorer starts and catches up with the topic …"):
                wait_scored(settings, jobs, 1800, lambda _lag: None)
            since = datetime.now(UTC)
            console.rule(f"soak: {rate:g} transactions/s for {duration_s:g} s, a sample every {interval_s:g} s")
            done, assigned, produced = threading.Event(), threading.Event(), {}

            def traffic() -> None:
                assigned.wait(60)
                try:
                    limits = ProduceLimits(duration_s=duration_s, rate=rate)
                    produced["report"] = send_days(settings, live_sim, limits, resume_day(settings, sim.days))
                    wait_scored(settings, jobs, 900, lambda _lag: None)
                except BaseException as exc:
                    produced["error"] = exc
                finally:
                    done.set()

            output = FileOutput(folder / "alerts.jsonl")
            tailing: dict[str, object] = {}

            group = f"fraudlake-soak-{uuid.uuid4().hex[:8]}"

            def follow() -> None:
                # A tail that loses the broker stops; like its service manager, start it again (the
                # group resumes from its commits, the state file drops what was delivered).
                while not stop_tail.is_set():
                    try:
                        tail(
                            settings,
                            group_id=group,
                            from_beginning=False,
                            outputs=[output],
                            dedup=Deduplicator.load(folder / "alert-ids.txt"),
                            stop=stop_tail,
                            on_assigned=lambda _offsets: assigned.set(),
                        )
                        return
                    except BrokerUnavailableError as exc:
                        result.restarts["tail"] = result.restarts.get("tail", 0) + 1
                        console.print(f"[yellow]the alerts tail lost the broker ({exc}): starting it again[/]")
                        stop_tail.wait(2.0)
                    except BaseException as exc:
                        tailing["error"] = exc
                        return

            stop_tail = threading.Event()
            threads = [threading.Thread(target=f, name=f"soak-{f.__name__}", daemon=True) for f in (follow, traffic)]
            for thread in threads:
                thread.start()
            began = time.monotonic()
            pause = BrokerPause(settings, pause_broker_s) if pause_broker_s > 0 else None
            try:
                while not done.wait(interval_s):
                    elapsed = time.monotonic() - began
                    if pause is not None and result.broker_pause is None and elapsed >= duration_s / 2:
                        console.print(f"[yellow]pausing the broker (SIGSTOP) for {pause_broker_s:g} s[/]")
                        pause.begin()
                        result.broker_pause = (round(elapsed, 1), pause_broker_s)
                    restart_stopped(jobs, result)
                    result.samples.append(take_sample(settings, jobs, elapsed))
                    console.print(describe(result.samples[-1]))
            finally:
                if pause is not None:
                    pause.end()
            result.samples.append(take_sample(settings, jobs, time.monotonic() - began))
            stop_tail.set()
            threads[0].join(timeout=120)
            close_outputs([output])
            for what, outcome in (("live traffic", produced), ("the alerts tail", tailing)):
                if "error" in outcome:
                    raise DemoError(f"{what} failed: {outcome['error']}")
            report = produced["report"]
            result.sent, result.traffic_s = report.transactions, round(report.elapsed_s, 1)
            if report.caught_up:
                result.stopped_early = f"the simulated time reached the wall clock at {report.caught_up}"
        finally:
            jobs.stop_all()
    account(settings, result, since, folder / "alerts.jsonl")
    return result


def lag_text(sample: Sample) -> str:
    """Records waiting over every query; "unknown" while the broker did not answer."""
    return f"{sum(v for v in sample.lag.values() if v):,}" if sample.lag else "unknown"


def describe(sample: Sample) -> str:
    rss = ", ".join(f"{job} {mb:,.0f} MB" for job, mb in sample.rss_mb.items())
    return f"{sample.at_s:>7,.0f} s  RSS {rss}  lag {lag_text(sample)}  state {sample.state_mb:,.1f} MB"


def account(settings: Settings, result: SoakResult, since: datetime, delivered: Path) -> None:
    """Alerts lost and duplicated: the scored transactions flagged since ``since`` against the
    alerts topic and the tail's file."""
    from pyspark.sql import functions as F

    from lakehouse.contract.tables import table_names
    from lakehouse.platform.kafka.floor import records_since
    from lakehouse.platform.spark import build_spark

    topic = settings.kafka.topics.alerts.name
    in_topic = [json.loads(r.value) for r in records_since(settings.kafka, topic, int(since.timestamp() * 1000))]
    spark = build_spark(settings, app_name="fraudlake-soak-account")
    try:
        live = spark.table(table_names(settings).scored).where(F.col("transaction_created_at") >= F.lit(since))
        flagged = {r.transaction_id for r in live.where("is_alert").select("transaction_id").collect()}
        result.scored = live.count()
    finally:
        spark.stop()
    alerted = {a["transaction_id"] for a in in_topic}
    written = Counter(json.loads(line)["alert_id"] for line in delivered.read_text().splitlines() if line.strip())
    result.flagged = len(flagged)
    result.alert_records = len(in_topic)
    result.lost = len(flagged - alerted)
    result.delivered = sum(written.values())
    result.duplicated = sum(n - 1 for n in written.values())
    result.repeated_records = len(in_topic) - len({a["alert_id"] for a in in_topic})


def write_soak_report(path: Path, result: SoakResult, machine: str) -> str:
    """The report as markdown, written to ``path``; returns it."""
    jobs = sorted({job for s in result.samples for job in s.rss_mb})
    queries = sorted({q for s in result.samples for q in s.lag})
    lines = [
        "# Soak run",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC · {machine}",
        f"`fraudlake soak --duration {result.duration_s:g} --rate {result.rate:g}`: the ingest and scoring jobs "
        "as their own processes, simulated traffic at the rate, an alerts tail with a state file. Sampled from "
        "outside the jobs.",
        *(
            [
                "",
                f"**The traffic stopped after {result.traffic_s:,.0f} s of the {result.duration_s:,.0f} s asked**: "
                f"{result.stopped_early}.",
            ]
            if result.stopped_early
            else []
        ),
        "",
        "## Alerts",
        "",
        "| sent | scored | scored as alerts | alert records | **lost** | delivered by the tail "
        "| **duplicated in effect** | records repeated in the topic |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {result.sent:,} | {result.scored:,} | {result.flagged:,} | {result.alert_records:,} | **{result.lost:,}** "
        f"| {result.delivered:,} | **{result.duplicated:,}** | {result.repeated_records:,} |",
        "",
        "## Over time",
        "",
        "| s | "
        + " | ".join(f"RSS {j} (MB)" for j in jobs)
        + " | lag (records) | "
        + " | ".join(f"last batch {q} (s)" for q in ("score", "silver_transactions") if q in queries)
        + " | scorer state (MB) |",
        "|" + "---:|" * (2 + len(jobs) + sum(q in queries for q in ("score", "silver_transactions")) + 1),
    ]
    for s in result.samples:
        batches = [s.batch_s.get(q) for q in ("score", "silver_transactions") if q in queries]
        lines.append(
            f"| {s.at_s:,.0f} | "
            + " | ".join(f"{s.rss_mb.get(j, 0):,.0f}" for j in jobs)
            + f" | {lag_text(s)} | "
            + " | ".join("-" if b is None else f"{b:.1f}" for b in batches)
            + f" | {s.state_mb:,.1f} |"
        )
    if result.broker_pause is not None:
        at, lasted = result.broker_pause
        lines += ["", f"The broker was stopped (SIGSTOP) at {at:,.0f} s for {lasted:g} s, then resumed (SIGCONT)."]
    restarts = ", ".join(f"{name} {n}" for name, n in sorted(result.restarts.items())) or "none"
    lines += ["", f"Restarts (as a service manager does): {restarts}."]
    if result.samples:
        first, last = result.samples[0], result.samples[-1]
        growth = ", ".join(f"{j} {first.rss_mb.get(j, 0):,.0f} → {last.rss_mb.get(j, 0):,.0f} MB" for j in jobs)
        score_batches = [s.batch_s["score"] for s in result.samples if s.batch_s.get("score") is not None]
        lines += [
            "",
            f"RSS first → last sample: {growth}. Scorer state {first.state_mb:,.1f} → {last.state_mb:,.1f} MB.",
            f"Scorer batch time (last batch at each sample): median {percentile(score_batches, 50):.1f} s, "
            f"max {max(score_batches):.1f} s."
            if score_batches
            else "No scorer batch was sampled.",
        ]
    text = "\n".join(lines) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return text
