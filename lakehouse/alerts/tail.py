"""``fraudlake alerts tail``: read fraud alerts from Kafka, drop duplicates, hand each one to outputs
(terminal table, JSON lines, file, webhook), and commit offsets only for what was handled.

Why it is built this way:

* The scorer delivers alerts **at least once** (a restarted scorer can append the same alert again,
  byte for byte), so this consumer drops repeats by ``alert_id`` (:class:`Deduplicator`), in memory
  and, with a state file, across restarts of the tail itself.
* Offsets are committed **after** every output handled the records, synchronously, and exactly up to
  the last handled record of each partition. A tail that crashes, is killed, or cannot deliver
  (webhook down) therefore reads the unhandled alerts again when it restarts: it may repeat an
  alert to an output (at least once), it never skips one. Auto-commit, which would commit records
  still in flight, is off in the client factory.
* An id is remembered only once every output has it, and the state file is written before the
  commit: a redelivered alert that every output already got is dropped, one that some output
  missed is delivered again.
* A malformed record can never become valid, so it is logged (partition and offset), counted and
  committed like the others instead of stopping the tail or blocking its partition.
* A committed offset the topic can no longer serve (retention deleted the records behind it, the
  topic was recreated, or the group's offsets expired while a state file shows the tail ran
  before) never sends the tail to the end of the topic, which would skip every retained alert
  without a word. By default the tail reads on from the earliest retained alert, drops what it
  delivered before through the dedup state, and reports the gap (:class:`OffsetReset`); with
  ``out_of_range="fail"`` it stops with an error and commits nothing.
* One alert can never stop the group for good. An alert that an output refuses for itself (a
  webhook's 4xx: retrying cannot help) goes to the dead-letter file with the reason, its partition
  and offset, and the tail goes on; an output that is down (5xx, timeouts, a full disk) still stops
  the tail, uncommitted, so that nothing is set aside for an outage. A lone UTF-16 surrogate in an
  alert's text, which no output could encode, is replaced when the alert is parsed.

The consumer loop lives here (:func:`tail`: poll, handle, commit; it does Kafka I/O); its parts are
in :mod:`~lakehouse.alerts.parsing` (pure), :mod:`~lakehouse.alerts.dedup`,
:mod:`~lakehouse.alerts.outputs` and :mod:`~lakehouse.alerts.webhook`. Their public names are
re-exported here, where the CLI imports them. The loop and its commit discipline (what is handled,
flushed, remembered and committed, in that order) stay in one module (about 550 lines, past the
usual 400 lines) so that the guarantee above can be read in one place.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from kafka import ConsumerRebalanceListener

from lakehouse.alerts.dedup import Deduplicator
from lakehouse.alerts.errors import DeliveryError, TailError
from lakehouse.alerts.outputs import AlertOutput, FileOutput, JsonLinesOutput, TableOutput, close_outputs
from lakehouse.alerts.parsing import parse_alert
from lakehouse.alerts.webhook import MAX_BACKOFF_S, WebhookOutput, redact_url
from lakehouse.errors import BrokerUnavailableError, ConfigError
from lakehouse.platform import faults

if TYPE_CHECKING:
    from kafka import KafkaConsumer
    from kafka.consumer.fetcher import ConsumerRecord
    from kafka.structs import TopicPartition

    from lakehouse.settings import Settings

__all__ = [
    "FAULT_STEPS",
    "JOIN_GRACE_S",
    "MALFORMED_LISTED",
    "MAX_BACKOFF_S",
    "MAX_POLL_RECORDS",
    "OUT_OF_RANGE_POLICIES",
    "POLL_TIMEOUT_S",
    "AlertOutput",
    "Deduplicator",
    "DeliveryError",
    "FileOutput",
    "JsonLinesOutput",
    "OffsetReset",
    "TableOutput",
    "TailError",
    "TailReport",
    "WebhookOutput",
    "close_outputs",
    "parse_alert",
    "redact_url",
    "tail",
]

log = logging.getLogger(__name__)

#: Records per poll: small enough that a batch of slow webhook deliveries stays well within the
#: consumer's max.poll.interval (the broker would otherwise take the partitions away mid-batch).
MAX_POLL_RECORDS = 100
POLL_TIMEOUT_S = 0.5
#: How long a tail with ``idle_timeout_s`` waits for its first partition assignment on top of the
#: idle timeout (a broker may delay the first rebalance of a group by a few seconds).
JOIN_GRACE_S = 30.0
#: Idle probes in a row that no broker answers before the tail stops with a plain error: one
#: broker of a cluster lost mid-stream leaves its partitions leaderless until the controller fences
#: it (Kafka's broker session, 9 s by default) and the client finds the new leaders, which one probe
#: (``kafka.connect_timeout_s``) may not outlast.
PROBES_BEFORE_STOPPING = 3
#: Malformed records listed in the report (all are counted and logged).
MALFORMED_LISTED = 100
#: What a tail does with a committed offset the topic cannot serve: read on from the earliest
#: retained alert (and say what was skipped), or stop with an error.
OUT_OF_RANGE_POLICIES = ("earliest", "fail")
#: Fault-injection steps (``FRAUDLAKE_FAULT``): the batch handed to every output, nothing flushed,
#: remembered or committed yet; then flushed and remembered (state file), not committed.
AFTER_OUTPUTS, BEFORE_COMMIT = "tail_after_outputs", "tail_before_commit"
FAULT_STEPS = (AFTER_OUTPUTS, BEFORE_COMMIT)


@dataclass(frozen=True)
class OffsetReset:
    """A partition whose committed offset the topic could not serve, and where the tail read on.

    ``committed`` is None when the group had no offset although the state file shows that the tail
    ran before (the group's offsets expired); ``earliest`` and ``end`` are the partition's bounds.
    """

    partition: int
    committed: int | None
    earliest: int
    end: int

    @property
    def skipped(self) -> int:
        """Offsets deleted before the group read them (0 when the cause was not retention)."""
        return max(0, self.earliest - self.committed) if self.committed is not None else 0

    def describe(self) -> str:
        where = f"partition {self.partition}"
        if self.committed is None:
            return (
                f"{where}: the group has no committed offset, but the state file shows the tail ran before "
                f"(the group's offsets expired)"
            )
        if self.committed < self.earliest:
            return (
                f"{where}: committed offset {self.committed} is below the earliest retained offset {self.earliest}; "
                f"offsets {self.committed} to {self.earliest - 1} were deleted (retention) before this group read them"
            )
        if self.committed > self.end:
            return (
                f"{where}: committed offset {self.committed} is past the partition's end ({self.end}); "
                f"the topic was recreated or truncated"
            )
        return f"{where}: committed offset {self.committed} was out of range"


@dataclass
class TailReport:
    """What one :func:`tail` run did. ``committed``: partition → next offset committed for the group."""

    topic: str
    group_id: str
    received: int = 0
    handled: int = 0
    duplicates: int = 0
    malformed: int = 0
    #: Alerts an output refused for themselves, written to the dead-letter file.
    dead_lettered: int = 0
    committed: dict[int, int] = field(default_factory=dict)
    #: (partition, offset, what is wrong) of the first malformed records.
    malformed_records: list[tuple[int, int, str]] = field(default_factory=list)
    #: max_alerts, idle, stop, interrupted, or failed.
    stopped_by: str = ""
    #: Partitions whose committed offset was out of range, read on from their earliest retained offset.
    offset_resets: list[OffsetReset] = field(default_factory=list)


class _FromBeginning(ConsumerRebalanceListener):
    """Rebalance listener: seek the partitions of the first assignment to their beginning.

    Later assignments (after another tail of the group joined or left) resume from the group's
    committed offsets, so a rebalance never makes the tail re-read everything again. Runs on the
    client's IO thread: it only marks offsets for reset, no I/O.
    """

    def __init__(self) -> None:
        self.consumer: KafkaConsumer | None = None
        self.done = False

    def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        pass  # every handled record is committed before the next poll, where a rebalance happens

    def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        if self.done or not assigned or self.consumer is None:
            return
        self.consumer.seek_to_beginning(*assigned)
        self.done = True


def tail(
    settings: Settings,
    *,
    group_id: str,
    from_beginning: bool,
    outputs: list[AlertOutput],
    max_alerts: int | None = None,
    idle_timeout_s: float | None = None,
    dedup: Deduplicator | None = None,
    stop: threading.Event | None = None,
    on_assigned: Callable[[dict[int, int]], None] | None = None,
    out_of_range: str = "earliest",
    dead_letter: FileOutput | None = None,
) -> TailReport:
    """Consume ``settings.kafka.topics.alerts`` as ``group_id``: parse, drop duplicates, hand every new
    alert to each output, commit per batch what was handled.

    Where it starts: an existing group resumes from its committed offsets; a new group starts at
    the end of the topic (only alerts appended from now on), unless ``from_beginning``, which seeks
    every partition of the first assignment to its start and so re-reads **everything** the topic
    still holds (duplicates of alerts seen in this run are dropped, not those of earlier runs
    without a state file). Either way the starting offsets are committed as soon as partitions are
    assigned, so the group is anchored there even if the very first delivery fails. A committed
    offset the topic cannot serve (see the module's notes) follows ``out_of_range``: ``earliest``
    reads on from the earliest retained alert and lists the partition in ``offset_resets``,
    ``fail`` raises :class:`TailError` and commits nothing. An alert that an output refuses for
    itself (a permanent :class:`DeliveryError`) is appended to ``dead_letter`` with the output, the
    reason, its partition and offset, and counts as handled; without ``dead_letter`` it stops the
    tail like any other failed delivery.

    Stops after ``max_alerts`` new alerts were handled (records behind the last one stay
    uncommitted), after ``idle_timeout_s`` without records (counted once partitions are assigned;
    before that it waits up to ``JOIN_GRACE_S`` more), when ``stop`` is set, or on Ctrl-C. When an
    output raises, what was handled before is committed and the error is re-raised: the failed alert
    and those after it are read again by the next tail of the group. ``on_assigned`` is called with
    partition → starting offset when partitions are assigned. Outputs are flushed before each
    commit; closing them is the caller's job. A saved ``dedup`` (with a path) is written before each
    commit.
    """
    from lakehouse.platform.kafka.clients import broker_errors, consumer

    if not group_id:
        raise ConfigError("the consumer group must not be empty")
    if max_alerts is not None and max_alerts < 1:
        raise ConfigError(f"max_alerts must be at least 1, got {max_alerts}")
    if out_of_range not in OUT_OF_RANGE_POLICIES:
        raise ConfigError(f"out_of_range {out_of_range!r}: use one of {', '.join(OUT_OF_RANGE_POLICIES)}")
    topic = settings.kafka.topics.alerts.name
    kafka = settings.kafka
    # No automatic reset: the client would move a missing or out-of-range offset to the end (or the
    # start) without telling. The run loop decides each case (a new group, or out_of_range).
    client = consumer(kafka, group_id=group_id, auto_offset_reset="none", max_poll_records=MAX_POLL_RECORDS)
    try:
        with broker_errors(kafka):
            if not client.partitions_for_topic(topic):
                raise TailError(
                    f"topic {topic} does not exist at {kafka.bootstrap}: create it with `fraudlake topics ensure`"
                )
            listener = _FromBeginning()
            listener.consumer = client
            if from_beginning:
                client.subscribe([topic], listener=listener)
            else:
                client.subscribe([topic])
        run = _TailRun(
            settings,
            client,
            group_id,
            outputs,
            dedup if dedup is not None else Deduplicator(),
            stop,
            on_assigned,
            out_of_range,
            dead_letter,
        )
        return run.run(max_alerts=max_alerts, idle_timeout_s=idle_timeout_s)
    finally:
        try:
            client.close(autocommit=False, timeout_ms=int(kafka.connect_timeout_s * 1000))
        except Exception as exc:  # never hide the error that got us here
            log.debug("closing the consumer failed: %s", exc)


class _TailRun:
    """The poll → handle → commit loop of one :func:`tail` call."""

    def __init__(
        self,
        settings: Settings,
        client: KafkaConsumer,
        group_id: str,
        outputs: list[AlertOutput],
        dedup: Deduplicator,
        stop: threading.Event | None,
        on_assigned: Callable[[dict[int, int]], None] | None,
        out_of_range: str,
        dead_letter: FileOutput | None,
    ) -> None:
        self.kafka = settings.kafka
        self.topic = settings.kafka.topics.alerts.name
        self.client = client
        self.outputs = outputs
        self.dedup = dedup
        self.stop = stop
        self.on_assigned = on_assigned
        self.out_of_range = out_of_range
        self.dead_letter = dead_letter
        #: A state file with ids proves earlier runs: a group without offsets then lost them.
        self.ran_before = dedup.path is not None and len(dedup) > 0
        self.report = TailReport(topic=self.topic, group_id=group_id)
        self.unanswered = Unanswered()
        #: TopicPartition → next offset, handled but not committed yet.
        self.pending: dict[TopicPartition, int] = {}
        self.assigned: set[TopicPartition] = set()

    def run(self, *, max_alerts: int | None, idle_timeout_s: float | None) -> TailReport:

        report = self.report
        last_activity = last_probe = time.monotonic()
        joined = False
        try:
            while not report.stopped_by:
                if self.stop is not None and self.stop.is_set():
                    report.stopped_by = "stop"
                    break
                batch = self._poll()
                now = time.monotonic()
                if self._note_assignment(batch):
                    joined = True
                    last_activity = now
                if batch:
                    last_activity = last_probe = now
                for partition, records in batch.items():
                    for record in records:
                        if max_alerts is not None and report.handled >= max_alerts:
                            report.stopped_by = "max_alerts"
                        elif self.stop is not None and self.stop.is_set():
                            report.stopped_by = "stop"
                        if report.stopped_by:
                            break
                        self._process(record)
                        self.pending[partition] = record.offset + 1
                    if report.stopped_by:
                        break
                self._commit()
                if max_alerts is not None and report.handled >= max_alerts:
                    report.stopped_by = "max_alerts"
                if not batch and not report.stopped_by:
                    if idle_timeout_s is not None:
                        limit = idle_timeout_s if joined else idle_timeout_s + JOIN_GRACE_S
                        if now - last_activity >= limit:
                            report.stopped_by = "idle"
                    if now - last_probe >= self.kafka.connect_timeout_s:
                        self._probe_broker()
                        last_probe = time.monotonic()
        except KeyboardInterrupt:
            report.stopped_by = "interrupted"
            self._commit_after_stop()
        except BaseException as exc:
            report.stopped_by = "failed"
            self._commit_after_stop()
            committed = ", ".join(f"partition {p} up to {o}" for p, o in sorted(report.committed.items())) or "nothing"
            log.error(
                "tail of %s stopped by %s after %d new alerts; committed %s; "
                "the next tail of group %s reads the rest again",
                self.topic,
                type(exc).__name__,
                report.handled,
                committed,
                report.group_id,
            )
            raise
        log.debug(
            "tail of %s as %s: %d received, %d new alerts, %d duplicates, %d malformed (stopped: %s)",
            self.topic,
            report.group_id,
            report.received,
            report.handled,
            report.duplicates,
            report.malformed,
            report.stopped_by,
        )
        return report

    def _poll(self) -> dict[TopicPartition, list[ConsumerRecord]]:
        """One poll; a partition without a usable offset is placed (see :meth:`_place`) and read next time."""
        from kafka.errors import NoOffsetForPartitionError, OffsetOutOfRangeError

        from lakehouse.platform.kafka.clients import broker_errors

        try:
            with broker_errors(self.kafka):
                return self.client.poll(timeout_ms=int(POLL_TIMEOUT_S * 1000))
        except NoOffsetForPartitionError as exc:
            self._place(dict.fromkeys(exc.args[0]), missing=True)
        except OffsetOutOfRangeError as exc:
            self._place(dict(exc.args[0]), missing=False)
        return {}

    def _place(self, offsets: dict[TopicPartition, int | None], *, missing: bool) -> None:
        """Position partitions whose offset is missing (``missing``) or out of range (partition → offset).

        A new group starts at the end of the topic. Otherwise (an out-of-range offset, or a missing
        one while the state file shows earlier runs) ``out_of_range`` decides: ``fail`` raises,
        ``earliest`` seeks to the earliest retained offset, commits it, and reports the partition.
        """
        from lakehouse.platform.kafka.clients import broker_errors

        if missing and not self.ran_before:
            with broker_errors(self.kafka):
                self.client.seek_to_end(*offsets)
            return
        timeout = self.kafka.request_timeout_ms
        with broker_errors(self.kafka):
            earliest = self.client.beginning_offsets(list(offsets), timeout_ms=timeout)
            end = self.client.end_offsets(list(offsets), timeout_ms=timeout)
        resets = {tp: OffsetReset(tp.partition, offsets[tp], earliest[tp], end[tp]) for tp in sorted(offsets)}
        if self.out_of_range == "fail":
            raise TailError(
                "; ".join(reset.describe() for reset in resets.values())
                + f". The tail of group {self.report.group_id} stops (out-of-range policy: fail) and commits nothing;"
                " run it with --out-of-range earliest to read on from the earliest retained alert"
            )
        for tp, reset in resets.items():
            log.warning("%s: reading on from offset %d, the earliest retained", reset.describe(), reset.earliest)
            self.client.seek(tp, reset.earliest)
            self.pending[tp] = reset.earliest
            self.report.offset_resets.append(reset)
        self._commit()

    def _process(self, record: ConsumerRecord) -> None:
        report = self.report
        report.received += 1
        try:
            alert = parse_alert(record.value)
        except ValueError as exc:
            report.malformed += 1
            if len(report.malformed_records) < MALFORMED_LISTED:
                report.malformed_records.append((record.partition, record.offset, str(exc)))
            log.warning(
                "skipped a malformed alert at %s partition %d offset %d: %s",
                record.topic,
                record.partition,
                record.offset,
                exc,
            )
            return
        alert_id = alert["alert_id"]
        if alert_id in self.dedup:
            report.duplicates += 1
            log.debug("dropped duplicate alert %s at partition %d offset %d", alert_id, record.partition, record.offset)
            return
        for output in self.outputs:
            try:
                output.handle(alert)
            except DeliveryError as exc:
                if not exc.permanent or self.dead_letter is None:
                    raise
                self._set_aside(record, alert, output, exc)
        # Remembered only once every output has it: a failed delivery must not look like a duplicate later.
        self.dedup.add(alert_id)
        report.handled += 1

    def _set_aside(self, record: ConsumerRecord, alert: dict[str, Any], output: AlertOutput, exc: Exception) -> None:
        """Append an alert that ``output`` refused for itself to the dead-letter file, with why and where from."""
        assert self.dead_letter is not None
        name = getattr(output, "display_url", None) or type(output).__name__
        self.dead_letter.handle(
            {
                "alert": alert,
                "output": name,
                "reason": str(exc),
                "partition": record.partition,
                "offset": record.offset,
                "dead_lettered_at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            }
        )
        self.report.dead_lettered += 1
        log.error(
            "%s refused alert %s (partition %d offset %d) for good: set aside in %s",
            name,
            alert["alert_id"],
            record.partition,
            record.offset,
            self.dead_letter.path,
        )

    def _flush_outputs(self) -> None:
        if self.dead_letter is not None:
            self.dead_letter.flush()
        for output in self.outputs:
            flush = getattr(output, "flush", None)
            if flush is not None:
                flush()

    def _commit(self) -> None:
        """Make what was handled durable, then commit it (synchronously, up to the last handled record)."""
        if not self.pending:
            return
        from kafka.errors import CommitFailedError
        from kafka.structs import OffsetAndMetadata

        from lakehouse.platform.kafka.clients import broker_errors

        handled = self.report.handled > 0  # not the anchoring commit of a new assignment
        if handled:
            faults.reached(AFTER_OUTPUTS)
        self._flush_outputs()
        if self.dedup.path is not None and self.dedup.changed:
            self.dedup.save()
        if handled:
            faults.reached(BEFORE_COMMIT)
        offsets = {tp: OffsetAndMetadata(offset, "", -1) for tp, offset in self.pending.items()}
        try:
            with broker_errors(self.kafka):
                self.client.commit(offsets, timeout_ms=self.kafka.request_timeout_ms)
        except CommitFailedError as exc:
            # The group rebalanced under us: the partitions' new owner reads these records again.
            log.warning("commit of %s failed (%s); the records will be delivered again", self._describe(offsets), exc)
            self.pending.clear()
            return
        for tp, offset in self.pending.items():
            self.report.committed[tp.partition] = offset
        log.debug("committed %s", self._describe(offsets))
        self.pending.clear()

    def _commit_after_stop(self) -> None:
        """Commit what was fully handled before a failure or Ctrl-C; never mask the original error."""
        try:
            self._commit()
        except BaseException as exc:
            log.warning("could not commit the alerts handled before stopping (%s); they will be delivered again", exc)

    def _note_assignment(self, batch: dict[TopicPartition, list[ConsumerRecord]]) -> bool:
        """Anchor newly assigned partitions at the offset each starts from; True when there were any.

        The start is committed at once. Otherwise a new group (which starts at the end of the topic)
        would have no committed offset until its first alert is handled, and a tail that failed on
        that alert, or crashed, would restart at the end again and skip it for good. With
        ``from_beginning`` this commit is what moves the group back to the start.
        """
        from lakehouse.platform.kafka.clients import broker_errors

        current = set(self.client.assignment())
        added = current - self.assigned
        self.assigned = current
        if not added:
            return False
        starts: dict[TopicPartition, int | None] = {}
        with broker_errors(self.kafka):
            for tp in sorted(added):
                # The poll may already have returned records of the partition: the position is then
                # past them, and they are not handled yet.
                records = batch.get(tp)
                starts[tp] = (
                    records[0].offset if records else self.client.position(tp, timeout_ms=self.kafka.request_timeout_ms)
                )
        log.info(
            "%s: reading partitions %s",
            self.topic,
            ", ".join(f"{tp.partition} from offset {o}" for tp, o in starts.items()),
        )
        self.pending.update({tp: offset for tp, offset in starts.items() if offset is not None})
        self._commit()
        if self.on_assigned is not None:
            self.on_assigned({tp.partition: offset for tp, offset in starts.items()})
        return True

    def _probe_broker(self) -> None:
        """An idle poll cannot tell a quiet topic from a dead broker: ask for the end offsets."""
        from kafka.structs import TopicPartition

        from lakehouse.platform.kafka.clients import broker_errors

        partitions = sorted(self.assigned) or [TopicPartition(self.topic, 0)]
        try:
            with broker_errors(self.kafka):
                self.client.end_offsets(partitions, timeout_ms=int(self.kafka.connect_timeout_s * 1000))
        except BrokerUnavailableError as exc:
            self.unanswered.failed(exc)
            log.warning(
                "%s: probe %d of %d without an answer (a broker may be failing over): %s",
                self.topic,
                self.unanswered.count,
                PROBES_BEFORE_STOPPING,
                exc,
            )
        else:
            self.unanswered.answered()

    @staticmethod
    def _describe(offsets: dict[TopicPartition, Any]) -> str:
        return ", ".join(f"partition {tp.partition} up to {om.offset}" for tp, om in sorted(offsets.items()))


@dataclass
class Unanswered:
    """Idle probes in a row that no broker answered: the one that makes :data:`PROBES_BEFORE_STOPPING`
    re-raises its error (the tail stops plainly); an answered probe resets the count."""

    count: int = 0

    def answered(self) -> None:
        self.count = 0

    def failed(self, exc: BrokerUnavailableError) -> None:
        self.count += 1
        if self.count >= PROBES_BEFORE_STOPPING:
            raise exc
