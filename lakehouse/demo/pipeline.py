"""What the demo and the soak share: the pipeline's jobs as child processes, the first model,
simulated traffic, and waiting for the scorer."""

from __future__ import annotations

import contextlib
import math
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from lakehouse.errors import FraudlakeError
from lakehouse.operations.stream_status import checkpoint_offsets, end_offsets, kafka_lag, local_path
from lakehouse.platform.jobs import run_job, start_job, step_lines
from lakehouse.platform.waits import Deadline, wait_until
from lakehouse.settings import Settings, SimulatorSettings

if TYPE_CHECKING:
    from lakehouse.simulator.producer import ProduceLimits, ProduceReport

POLL_S = 1.0


class DemoError(FraudlakeError):
    """A step of the demo failed; the message says which and where its log is."""


class Jobs:
    """The demo's child processes: started with their logs in ``<data_dir>/logs``, always stopped."""

    def __init__(self, settings: Settings, console: Console) -> None:
        self.settings = settings
        self.console = console
        self.running: dict[str, subprocess.Popen] = {}
        self.logs = settings.paths.data_dir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)

    def run(self, title: str, module: str, *args: str) -> Path:
        """Run a job to completion; its output goes to its log, whose path it returns."""
        self.console.print(f"[bold]{title}[/bold] …")
        log = self.logs / f"demo-{module}.log"
        began = time.monotonic()
        with log.open("w") as out:
            code = run_job(self.settings, module, *args, stdout=out, stderr=subprocess.STDOUT)
        if code != 0:
            raise DemoError(f"{title} failed (exit {code}); see {log}")
        self.console.print(f"  done in {time.monotonic() - began:,.0f} s")
        return log

    def start(self, name: str, module: str, *args: str) -> subprocess.Popen:
        log = self.logs / f"demo-{name}.log"
        first = name not in self.running
        out = log.open("w" if first else "a")  # a restart keeps what the stopped job said
        out.write(f"--- {'started' if first else 'started again'} at {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        out.flush()
        process = start_job(self.settings, module, *args, stdout=out, stderr=subprocess.STDOUT)
        self.running[name] = process
        self.console.print(f"started {name} (pid {process.pid}, log {log})")
        return process

    def check(self) -> None:
        for name, process in self.running.items():
            if process.poll() is not None:
                raise DemoError(
                    f"the {name} job stopped (exit {process.returncode}); see {self.logs / f'demo-{name}.log'}"
                )

    def stop_all(self, timeout_s: float = 90) -> None:
        """SIGTERM (the jobs stop their queries between micro-batches), then SIGKILL at the deadline."""
        for process in self.running.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = Deadline(timeout_s)
        for name, process in self.running.items():
            try:
                process.wait(timeout=max(1.0, deadline.remaining()))
            except subprocess.TimeoutExpired:
                self.console.print(f"{name} did not stop in time: killed")
                process.kill()
                process.wait()
        self.running.clear()


def ensure_champion(settings: Settings, jobs: Jobs, title: str) -> None:
    """The topics (a fresh broker has none); then, with no champion yet: produce the simulated
    history, ingest it, build its features and train and register the first model."""
    from lakehouse.ml import registry
    from lakehouse.platform.kafka.topics import ensure_topics
    from lakehouse.simulator.producer import ProduceLimits

    ensure_topics(settings.kafka)
    if registry.champion_version(settings, required=False) is not None:
        return
    sim = settings.simulator
    jobs.console.rule(title)
    began = time.monotonic()
    history = send_days(settings, sim, ProduceLimits(count=sim.transactions), 0, seed=1)
    jobs.console.print(
        f"produced {history.transactions:,} transactions ({history.fraud:,} fraud) over {sim.days} simulated days"
        f" in {time.monotonic() - began:,.0f} s"
    )
    # One job for the three steps (ingest --once, features build, train): one Spark start, not three.
    log = jobs.run("ingest the history, build the features, train the first model", "first_model")
    for line in step_lines(log.read_text()):
        jobs.console.print(f"  {line}")
    jobs.console.print(f"history and the first model: {time.monotonic() - began:,.0f} s in all")


def wait_scored(settings: Settings, jobs: Jobs, timeout_s: float, on_wait: Callable[[int], None]) -> None:
    """Until the scorer has scored everything the transaction topic holds now, and landed it in
    ``gold.scored_transactions``."""
    from lakehouse.contract.queries import SCORE_LANDING_QUERY, SCORE_QUERY
    from lakehouse.platform.streaming import query_plan

    deadline = Deadline(timeout_s)
    for query, topic in (
        (SCORE_QUERY, settings.kafka.topics.transactions.name),
        (SCORE_LANDING_QUERY, settings.kafka.topics.scored.name),
    ):
        checkpoint = local_path(query_plan(settings, query).checkpoint)
        target = end_offsets(settings, topic).get(topic, {})
        lag = [-1]

        def caught_up(checkpoint=checkpoint, target=target, lag=lag) -> bool:
            lag[0] = kafka_lag(checkpoint_offsets(checkpoint) or {}, target)
            if lag[0] > 0:
                on_wait(lag[0])
            return lag[0] == 0

        wait_until(
            caught_up,
            timeout_s=max(1.0, deadline.remaining()),
            what=f"the scorer's {query} query catching up",
            poll_s=POLL_S,
            check=jobs.check,
            on_timeout=lambda query=query, lag=lag: DemoError(
                f"the scorer's {query} query is still {lag[0]:,} records behind after {timeout_s:g} s; see "
                f"{jobs.logs / 'demo-score.log'}"
            ),
        )


@contextlib.contextmanager
def interrupt_as_sigterm() -> Iterator[None]:
    """Let SIGTERM stop the demo like Ctrl-C does (so the ``finally`` blocks clean up)."""

    def raise_interrupt(_signum, _frame) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def send_days(
    settings: Settings, sim: SimulatorSettings, limits: ProduceLimits, first_day: int, seed: int | None = None
) -> ProduceReport:
    """Simulated payments from ``first_day`` on (default: a fresh traffic seed); remembers the next day."""
    from lakehouse.platform.kafka.senders import make_sender
    from lakehouse.simulator.labels import pending_labels_file
    from lakehouse.simulator.producer import produce, remember_day, resume_day
    from lakehouse.simulator.simulation import Simulation, default_start

    sender = make_sender(settings.kafka, settings.producer)
    try:
        seed = uuid.uuid4().int % 2**31 if seed is None else seed
        simulation = Simulation(sim, default_start(sim, datetime.now(UTC).date()), traffic_seed=seed)
        labels = pending_labels_file(settings.paths.data_dir)
        report = produce(settings, simulation, sender, limits, first_day=first_day, labels_path=labels)
    finally:
        sender.close()
    remember_day(settings, max(report.next_day, resume_day(settings, sim.days)))
    return report


def check_live_room(settings: Settings, transactions: float, today: date) -> None:
    """Refuse a run whose traffic would reach the wall clock in simulated time before it ends (the
    producer stops there): live traffic runs at the offline batch's daily volume, from the day
    the previous run left off, and may not be dated after today."""
    from lakehouse.simulator.producer import resume_day
    from lakehouse.simulator.simulation import default_start

    sim = settings.simulator
    first = resume_day(settings, sim.days)
    room = (today - default_start(sim, today)).days - first
    needed = math.ceil(transactions * sim.days / sim.transactions) + 1
    if needed > room:
        raise DemoError(
            f"{transactions:,.0f} live transactions need about {needed} simulated days at the history's daily "
            f"volume ({sim.transactions / sim.days:,.0f}), and the simulator has {max(room, 0)} left before today "
            f"(from day {first}). Raise simulator.live_days (FRAUDLAKE_SIMULATOR__LIVE_DAYS) to at least "
            f"{needed + first - sim.days} on a fresh data folder, or send fewer (--duration, --rate)"
        )
