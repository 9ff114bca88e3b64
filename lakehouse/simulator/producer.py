"""``fraudlake produce``: stream simulated traffic into Kafka.

Merchants and users are published first, then each simulated day in chunks of
``producer.chunk_hours``: the chunk's sign-ups and profile changes, its transactions (keyed by
user_id, so one user's events stay in order), and any bad records derived from it. The send rate
is paced to a target (or unpaced); the run stops at a count of transactions, a wall-clock
duration, Ctrl-C, or when its simulated time reaches the wall clock (payments dated after the
moment they are sent would be quarantined as ``future_time``), and always flushes before returning.

With ``simulator.labels.emit``, each sent payment may get a late label event
(:mod:`lakehouse.simulator.labels`), sent on the labels topic once the traffic reaches its report
time; the labels still to come are kept in ``labels_path`` for the next run.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lakehouse.platform.kafka.senders import Sender
from lakehouse.settings import Settings
from lakehouse.simulator.bad_records import BadRecordInjector
from lakehouse.simulator.entities import DAY_MS, HOUR_MS
from lakehouse.simulator.labels import LabelQueue, label_events, label_json, label_rng
from lakehouse.simulator.simulation import EntityEvent, Simulation, entity_json, iso_ms
from lakehouse.simulator.traffic import TxBatch

log = logging.getLogger(__name__)


@dataclass
class ProduceReport:
    traffic_seed: int
    transactions: int = 0
    fraud: int = 0
    users: int = 0
    merchants: int = 0
    bad: int = 0
    bad_by_kind: dict[str, int] = field(default_factory=dict)
    sent: int = 0
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    interrupted: bool = False
    first_event: str | None = None
    last_event: str | None = None
    manifest: str | None = None
    next_day: int = 0  # the simulated day a following run should start at
    caught_up: str | None = None  # the simulated time at which the run stopped for reaching the wall clock
    labels: int = 0  # label events sent (simulator.labels.emit)
    labels_pending: int = 0  # made, to be reported after the traffic sent so far (kept for the next run)

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0


def progress_line(report: ProduceReport) -> str:
    """One line on a run so far (or at its end): sent, rate, delivered, retried, failed, elapsed."""
    return (
        f"sent {report.sent:,} · {report.rate:,.0f}/s · delivered {report.delivered:,} · "
        f"retried {report.retried:,} · failed {report.failed:,} · {report.elapsed_s:,.1f}s"
    )


@dataclass(frozen=True)
class ProduceLimits:
    count: int | None = None  # clean transactions to send
    duration_s: float | None = None
    rate: float | None = None  # records per second; None: as fast as possible

    def __post_init__(self) -> None:
        if self.count is None and self.duration_s is None:
            raise ValueError("give a count or a duration")


class _Pacer:
    """Holds the send rate to a target without drifting: sleeps only when ahead of schedule."""

    def __init__(self, rate: float | None, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.clock = clock
        self.start = clock()
        self.every = 1 if not rate else max(1, min(256, int(rate / 100)))

    def wait(self, sent: int) -> None:
        if not self.rate or sent % self.every:
            return
        ahead = sent / self.rate - (self.clock() - self.start)
        if ahead > 0:
            time.sleep(ahead)


def produce(
    settings: Settings,
    simulation: Simulation,
    sender: Sender,
    limits: ProduceLimits,
    *,
    first_day: int,
    bad_rate: float = 0.0,
    manifest_path: Path | None = None,
    labels_path: Path | None = None,
    on_progress: Callable[[ProduceReport], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> ProduceReport:
    topics = settings.kafka.topics
    topic_of = {
        "transactions": topics.transactions.name,
        "users": topics.users.name,
        "merchants": topics.merchants.name,
        "labels": topics.labels.name,
    }
    label_settings = settings.simulator.labels
    label_queue = LabelQueue(labels_path) if label_settings.emit else None
    report = ProduceReport(traffic_seed=simulation.traffic_seed, manifest=str(manifest_path) if manifest_path else None)
    injector = BadRecordInjector(
        bad_rate,
        late_by_ms=int(settings.simulator.bad_records.late_by_hours * HOUR_MS),
        out_of_order_ms=int(settings.simulator.bad_records.out_of_order_minutes * 60_000),
        seed=simulation.traffic_seed,
        max_amount=settings.data.max_amount,
    )
    manifest = open(manifest_path, "w") if manifest_path else None  # noqa: SIM115 - closed in finally
    started = clock()
    deadline = started + limits.duration_s if limits.duration_s else None
    pacer = _Pacer(limits.rate, clock)
    last_progress = started
    sample_users: list[bytes] = []
    sample_merchants: list[bytes] = []

    def send_entity(event: EntityEvent) -> None:
        value = entity_json(event)
        sender.send(topic_of[event.stream], event.key.encode(), value)
        if event.stream == "users":
            report.users += 1
            if len(sample_users) < 50:
                sample_users.append(value)
        else:
            report.merchants += 1
            if len(sample_merchants) < 50:
                sample_merchants.append(value)

    def tick(transactions_sent: int) -> bool:
        """Serve callbacks, pace, report progress; False when the run must stop."""
        nonlocal last_progress
        sender.poll()
        pacer.wait(transactions_sent)
        now = clock()
        if on_progress and now - last_progress >= 0.5:
            last_progress = now
            _copy_stats(report, sender, now - started)
            on_progress(report)
        return deadline is None or now < deadline

    last_day = first_day - 1  # the last simulated day with a transaction sent
    try:
        for event in simulation.merchant_records():
            send_entity(event)
        for event in simulation.users_at(first_day):
            send_entity(event)
        day = first_day
        running = True
        chunk_ms = int(settings.producer.chunk_hours * HOUR_MS)
        ahead_ms = settings.data.max_ahead_minutes * 60_000
        carry: TxBatch | None = None
        while running:
            # Fraud episodes that run past midnight belong to the next day's chunks: sent now, they
            # would reach Kafka hours ahead of the traffic around them.
            batch = simulation.day(day) if carry is None else TxBatch.concat([carry, simulation.day(day)])
            batch = batch.take(np.argsort(batch.ts_ms, kind="stable"))
            day_end = simulation.start_ms + (day + 1) * DAY_MS
            carry = batch.take(np.flatnonzero(batch.ts_ms >= day_end))
            batch = batch.take(np.flatnonzero(batch.ts_ms < day_end))
            events = simulation.user_events(day)
            event_ts = np.array([e.ts_ms for e in events], dtype=np.int64)
            day_start = simulation.start_ms + day * DAY_MS
            for chunk_start in range(day_start, day_start + DAY_MS, chunk_ms):
                chunk_end = min(chunk_start + chunk_ms, day_end)
                if chunk_end > time.time() * 1000 + ahead_ms:
                    # Sent now, these payments would be dated after the moment they reach Kafka.
                    report.caught_up = str(iso_ms(np.array([chunk_start]))[0])
                    log.warning(
                        "simulated time reached the wall clock at %s: stopping (an earlier simulator.start, "
                        "or more simulator.live_days, leaves more room)",
                        report.caught_up,
                    )
                    running = False
                    break
                in_chunk = (batch.ts_ms >= chunk_start) & (batch.ts_ms < chunk_end)
                if limits.count is not None:
                    room = limits.count - report.transactions
                    in_chunk &= np.cumsum(in_chunk) <= room
                chunk = batch.take(np.flatnonzero(in_chunk))
                for event in (events[i] for i in np.flatnonzero((event_ts >= chunk_start) & (event_ts < chunk_end))):
                    send_entity(event)
                values = simulation.transaction_json(chunk)
                keys = simulation.population.user_id[chunk.user].tolist()
                sent_here = 0
                for key, value in zip(keys, values, strict=True):
                    sender.send(topic_of["transactions"], key.encode(), value)
                    sent_here += 1
                    if not tick(report.transactions + sent_here):
                        running = False
                        break
                report.transactions += sent_here
                if sent_here:
                    last_day = day
                    report.fraud += int(chunk.is_fraud[:sent_here].sum())
                    stamps = iso_ms(chunk.ts_ms[[0, sent_here - 1]])
                    report.first_event = report.first_event or str(stamps[0])
                    report.last_event = str(stamps[1])
                if label_queue is not None:
                    rng = label_rng(simulation.traffic_seed, chunk_start)
                    label_queue.add(label_events(chunk.take(np.arange(sent_here)), label_settings, rng))
                    due = label_queue.due(chunk_end)
                    for key, value in zip(
                        simulation.population.user_id[due.user].tolist(),
                        label_json(due, simulation.population.user_id),
                        strict=True,
                    ):
                        sender.send(topic_of["labels"], key.encode(), value)
                    report.labels += len(due)
                bad_records = injector.derive(
                    values[:sent_here], keys[:sent_here], chunk.ts_ms[:sent_here], sample_users, sample_merchants
                )
                for bad in bad_records:
                    sender.send(topic_of[bad.stream], bad.key.encode(), bad.value)
                    report.bad += 1
                    report.bad_by_kind[bad.kind] = report.bad_by_kind.get(bad.kind, 0) + 1
                    if manifest:
                        manifest.write(json.dumps(bad.manifest_entry(topic_of[bad.stream])) + "\n")
                if limits.count is not None and report.transactions >= limits.count:
                    running = False
                if not running:
                    break
            day += 1
            running = running and tick(report.transactions)
    except KeyboardInterrupt:
        report.interrupted = True
        log.warning("interrupted: flushing what was sent")
    finally:
        report.next_day = last_day + 1
        if label_queue is not None:
            label_queue.save()
            report.labels_pending = len(label_queue.pending)
        sender.flush(settings.kafka.request_timeout_ms / 1000 * 2)
        if manifest:
            manifest.close()
        _copy_stats(report, sender, clock() - started)
    return report


def _copy_stats(report: ProduceReport, sender: Sender, elapsed: float) -> None:
    stats = sender.stats
    report.sent, report.delivered, report.retried, report.failed = (
        stats.sent,
        stats.delivered,
        stats.retried,
        stats.failed,
    )
    report.errors = list(stats.errors)
    report.elapsed_s = elapsed


def next_day_file(settings: Settings) -> Path:
    return settings.paths.data_dir / "producer" / "next-day.json"


def resume_day(settings: Settings, default: int) -> int:
    """Where the previous run left off, so that runs continue the users' history instead of
    overlapping it (with another traffic seed, overlapping days would double everyone's activity)."""
    path = next_day_file(settings)
    try:
        return max(default, int(json.loads(path.read_text())["next_day"]))
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return default


def remember_day(settings: Settings, next_day: int) -> None:
    path = next_day_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"next_day": next_day}) + "\n")
