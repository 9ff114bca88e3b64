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
"""

from __future__ import annotations

import base64
import collections
import json
import logging
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from kafka import ConsumerRebalanceListener

from lakehouse.contract.alerts import ALERT_FIELDS
from lakehouse.errors import ConfigError, FraudlakeError

if TYPE_CHECKING:
    from kafka import KafkaConsumer
    from kafka.consumer.fetcher import ConsumerRecord
    from kafka.structs import TopicPartition
    from rich.console import Console

    from lakehouse.settings import Settings

log = logging.getLogger(__name__)

#: Records per poll: small enough that a batch of slow webhook deliveries stays well within the
#: consumer's max.poll.interval (the broker would otherwise take the partitions away mid-batch).
MAX_POLL_RECORDS = 100
POLL_TIMEOUT_S = 0.5
#: How long a tail with ``idle_timeout_s`` waits for its first partition assignment on top of the
#: idle timeout (a broker may delay the first rebalance of a group by a few seconds).
JOIN_GRACE_S = 30.0
#: Malformed records listed in the report (all are counted and logged).
MALFORMED_LISTED = 100
#: Cap of one webhook backoff wait, whatever the attempt number or Retry-After says.
MAX_BACKOFF_S = 30.0


class TailError(FraudlakeError):
    """The tail cannot run as asked: missing topic, unusable output file or state file."""


class DeliveryError(TailError):
    """An output could not take an alert; its offset was not committed, so a restart redelivers it."""

    exit_code = 5


# ----------------------------------------------------------------------------- parsing


def parse_alert(value: bytes | None) -> dict[str, Any]:
    """The alert in a record's value, or :class:`ValueError` saying what is wrong with it.

    Fields beyond :data:`~lakehouse.contract.alerts.ALERT_FIELDS` are kept (a newer scorer may add some).
    """
    if value is None:
        raise ValueError("empty record (no value)")
    try:
        alert = json.loads(value)
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON ({exc.msg} at line {exc.lineno} column {exc.colno}): {_preview(value)}") from None
    if not isinstance(alert, dict):
        raise ValueError(f"not a JSON object but a JSON {type(alert).__name__}: {_preview(value)}")
    missing = [name for name in ALERT_FIELDS if name not in alert]
    if missing:
        raise ValueError(f"missing field{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    if not isinstance(alert["alert_id"], str) or not alert["alert_id"]:
        raise ValueError(f"alert_id must be a non-empty string, got {json.dumps(alert['alert_id'])}")
    return alert


def _preview(value: bytes, limit: int = 60) -> str:
    text = value.decode("utf-8", errors="replace")
    return repr(text if len(text) <= limit else text[:limit] + "…")


# ----------------------------------------------------------------------------- deduplication


class Deduplicator:
    """The last ``capacity`` alert ids, oldest evicted first.

    ``path`` (set by :meth:`load`) is where :meth:`save` writes them, one id per line, so that a
    restarted tail still recognises alerts it delivered before the restart.
    """

    def __init__(self, capacity: int = 100_000, *, path: Path | str | None = None) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self.path = Path(path) if path is not None else None
        self._ids: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._changed = False

    def __contains__(self, alert_id: object) -> bool:
        return alert_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, alert_id: str) -> None:
        """Remember ``alert_id`` (evicting the oldest beyond capacity)."""
        if alert_id in self._ids:
            return
        self._ids[alert_id] = None
        self._changed = True
        while len(self._ids) > self.capacity:
            self._ids.popitem(last=False)

    def seen(self, alert_id: str) -> bool:
        """True when ``alert_id`` was already seen; otherwise remember it and return False."""
        if alert_id in self._ids:
            return True
        self.add(alert_id)
        return False

    @property
    def changed(self) -> bool:
        """Whether ids were added since the last load or save."""
        return self._changed

    @classmethod
    def load(cls, path: Path | str, capacity: int = 100_000) -> Deduplicator:
        """The ids saved at ``path`` (the last ``capacity`` of them); empty when the file does not exist yet."""
        dedup = cls(capacity, path=path)
        try:
            with open(path, encoding="utf-8") as handle:
                ids = [line.strip() for line in handle]
        except FileNotFoundError:
            return dedup
        except (OSError, UnicodeDecodeError) as exc:
            raise TailError(f"cannot read the dedup state file {path}: {_reason(exc)}") from None
        for alert_id in ids[-capacity:]:
            if alert_id:
                dedup.add(alert_id)
        dedup._changed = False
        log.debug("loaded %d alert ids from %s", len(dedup), path)
        return dedup

    def save(self, path: Path | str | None = None) -> None:
        """Write the ids to ``path`` (default: where they were loaded from), atomically."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise ValueError("no path to save the dedup state to")
        tmp = target.with_name(f".{target.name}.tmp")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "w", encoding="utf-8") as handle:
                handle.writelines(f"{alert_id}\n" for alert_id in self._ids)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except OSError as exc:
            raise TailError(f"cannot write the dedup state file {target}: {_reason(exc)}") from None
        self._changed = False


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


# ----------------------------------------------------------------------------- outputs


class AlertOutput(Protocol):
    """Where handled alerts go. ``handle`` raises (ideally :class:`DeliveryError`) when it cannot take
    one; ``flush`` (optional) makes what was handled durable and runs before every commit."""

    def handle(self, alert: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


def _json_line(alert: dict[str, Any]) -> str:
    return json.dumps(alert, separators=(",", ":"), ensure_ascii=False) + "\n"


class JsonLinesOutput:
    """One compact JSON object per line on a text stream (stdout: pipe it to ``jq``), flushed per alert."""

    def __init__(self, stream: IO[str], name: str = "stdout") -> None:
        self.stream = stream
        self.name = name
        self._broken = False

    def handle(self, alert: dict[str, Any]) -> None:
        try:
            self.stream.write(_json_line(alert))
            self.stream.flush()
        except BrokenPipeError:
            self._broken = True
            raise DeliveryError(f"{self.name} was closed by its reader (broken pipe)") from None

    def flush(self) -> None:
        if not self._broken:
            self.stream.flush()

    def close(self) -> None:
        if self._broken:
            # Python flushes stdout again at exit; point it at /dev/null so that a reader that left
            # (`| head`) ends with our one-line error rather than a BrokenPipeError trace.
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, self.stream.fileno())
            except (OSError, ValueError, AttributeError):
                pass
            return
        self.flush()


class FileOutput:
    """Append alerts as JSON lines to a file; flushed and fsynced before each commit."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 (closed in close())
            # A previous writer killed mid-line left a partial line: start ours on a fresh line.
            if self._file.tell() > 0:
                self._file.seek(self._file.tell() - 1)
                if self._file.read(1) != "\n":
                    self._file.write("\n")
        except OSError as exc:
            raise TailError(f"cannot open the alert file {self.path} for appending: {_reason(exc)}") from None

    def handle(self, alert: dict[str, Any]) -> None:
        try:
            self._file.write(_json_line(alert))
        except OSError as exc:
            raise DeliveryError(f"cannot write to the alert file {self.path}: {_reason(exc)}") from None

    def flush(self) -> None:
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as exc:
            raise DeliveryError(f"cannot write to the alert file {self.path}: {_reason(exc)}") from None

    def close(self) -> None:
        if not self._file.closed:
            try:
                self.flush()
            finally:
                self._file.close()


def redact_url(url: str) -> str:
    """``scheme://host[:port]/…`` of a URL: what may appear in messages and logs.

    User info and query strings hold credentials, and so does the path of many webhooks (Slack,
    Discord, Teams put the token there), so only the origin is shown.
    """
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    path = "/…" if parts.path not in ("", "/") or parts.query else ""
    return f"{parts.scheme}://{host}{port}{path}"


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # urllib turns a redirected POST into a GET without body: the alert would silently vanish.
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class WebhookOutput:
    """POST each alert as JSON to a URL, retrying what may pass later.

    Connection errors, timeouts, 5xx and 429 are retried with exponential backoff (``backoff_s``,
    doubling, at most 30 s, or the server's Retry-After when longer); any other 4xx and redirects
    are permanent. ``retries`` is the number of attempts in all, the first one included. User info
    in the URL (``https://user:token@host/...``) is sent as HTTP basic authentication. Each request
    carries the alert id as ``Idempotency-Key``, so the receiver can drop repeats too.
    """

    def __init__(self, url: str, retries: int = 5, backoff_s: float = 0.5, timeout_s: float = 10) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"webhook URL must be http(s)://host/...: got {redact_url(url) if parts.scheme else 'no scheme'}"
            )
        if retries < 1:
            raise ConfigError(f"webhook retries must be at least 1, got {retries}")
        self.display_url = redact_url(url)
        self.retries = retries
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        if parts.port:
            netloc += f":{parts.port}"
        self._url = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
        self._headers = {"Content-Type": "application/json", "User-Agent": "fraudlake-alerts-tail"}
        if parts.username is not None:
            user = urllib.parse.unquote(parts.username)
            password = urllib.parse.unquote(parts.password or "")
            self._headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self._opener = urllib.request.build_opener(_NoRedirect)
        self.attempts = 0  # requests sent, all alerts together

    def handle(self, alert: dict[str, Any]) -> None:
        body = json.dumps(alert, separators=(",", ":"), ensure_ascii=False).encode()
        alert_id = alert.get("alert_id", "?")
        last = ""
        for attempt in range(1, self.retries + 1):
            request = urllib.request.Request(
                self._url, data=body, method="POST", headers={**self._headers, "Idempotency-Key": str(alert_id)}
            )
            self.attempts += 1
            wait = self.backoff_s * 2 ** (attempt - 1)
            try:
                with self._opener.open(request, timeout=self.timeout_s) as response:
                    response.read()
                return
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code} {exc.reason}"
                retry_after = exc.headers.get("Retry-After", "") if exc.headers else ""
                exc.close()
                if exc.code != 429 and exc.code < 500:
                    kind = "redirected" if 300 <= exc.code < 400 else "rejected"
                    raise DeliveryError(
                        f"webhook {self.display_url} {kind} alert {alert_id}: {last} (not retried: the request itself is refused)"
                    ) from None
                if retry_after.isdigit():
                    wait = max(wait, float(retry_after))
            except (urllib.error.URLError, OSError) as exc:  # refused, reset, DNS, TLS, timeout
                reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
                last = _reason(reason) if isinstance(reason, BaseException) else str(reason)
            except Exception as exc:  # http.client.HTTPException: a garbled response
                last = f"{type(exc).__name__}: {exc}"
            if attempt < self.retries:
                wait = min(wait, MAX_BACKOFF_S)
                log.warning(
                    "webhook %s: %s; attempt %d of %d again in %.1fs",
                    self.display_url,
                    last,
                    attempt + 1,
                    self.retries,
                    wait,
                )
                time.sleep(wait)
        raise DeliveryError(
            f"webhook {self.display_url} failed for alert {alert_id} after {self.retries} attempt(s): {last}"
        )

    def close(self) -> None:
        pass


def _fmt(value: Any, spec: str) -> str:
    try:
        return format(value, spec)
    except (TypeError, ValueError):
        return "" if value is None else str(value)


class TableOutput:
    """A live-updating terminal table of the latest ``rows`` alerts, newest first."""

    def __init__(self, console: Console, rows: int = 20, title: str = "fraud alerts") -> None:
        from rich.live import Live

        self.console = console
        self.title = title
        self.latest: collections.deque[dict[str, Any]] = collections.deque(maxlen=rows)
        self.count = 0
        self._live = Live(self._render(), console=console, refresh_per_second=4, transient=False)
        self._live.start()

    def _render(self):
        from rich.table import Table

        caption = (
            f"{self.count:,} alert(s) so far, latest {len(self.latest)} shown" if self.count else "waiting for alerts…"
        )
        table = Table(title=self.title, caption=caption, expand=True)
        table.add_column("time (UTC)", no_wrap=True)
        table.add_column("user", no_wrap=True, overflow="ellipsis", max_width=14)
        table.add_column("merchant", no_wrap=True, overflow="ellipsis", max_width=14)
        table.add_column("amount", justify="right", no_wrap=True)
        table.add_column("score", justify="right", no_wrap=True)
        table.add_column("model", justify="right", no_wrap=True)
        table.add_column("top reason", overflow="ellipsis", no_wrap=True, ratio=1)
        for alert in reversed(self.latest):
            reasons = alert.get("reasons") or []
            first = reasons[0] if isinstance(reasons, list) and reasons else {}
            reason = first.get("text") or first.get("feature", "") if isinstance(first, dict) else str(first)
            when = str(alert.get("event_time") or "").replace("T", " ").rstrip("Z")[:19]
            table.add_row(
                when,
                str(alert.get("user_id", "")),
                str(alert.get("merchant_id", "")),
                f"{_fmt(alert.get('amount'), ',.2f')} {alert.get('currency', '')}",
                f"[bold red]{_fmt(alert.get('score'), '.3f')}[/]",
                f"v{alert.get('model_version', '?')}",
                reason,
            )
        return table

    def handle(self, alert: dict[str, Any]) -> None:
        self.latest.append(alert)
        self.count += 1
        self._live.update(self._render())

    def close(self) -> None:
        self._live.stop()


# ----------------------------------------------------------------------------- the tail


@dataclass
class TailReport:
    """What one :func:`tail` run did. ``committed``: partition → next offset committed for the group."""

    topic: str
    group_id: str
    received: int = 0
    handled: int = 0
    duplicates: int = 0
    malformed: int = 0
    committed: dict[int, int] = field(default_factory=dict)
    #: (partition, offset, what is wrong) of the first malformed records.
    malformed_records: list[tuple[int, int, str]] = field(default_factory=list)
    #: max_alerts, idle, stop, interrupted, or failed.
    stopped_by: str = ""


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
) -> TailReport:
    """Consume ``settings.kafka.topics.alerts`` as ``group_id``: parse, drop duplicates, hand every new
    alert to each output, commit per batch what was handled.

    Where it starts: an existing group resumes from its committed offsets; a new group starts at
    the end of the topic (only alerts appended from now on), unless ``from_beginning``, which seeks
    every partition of the first assignment to its start and so re-reads **everything** the topic
    still holds (duplicates of alerts seen in this run are dropped, not those of earlier runs
    without a state file). Either way the starting offsets are committed as soon as partitions are
    assigned, so the group is anchored there even if the very first delivery fails.

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
    topic = settings.kafka.topics.alerts.name
    kafka = settings.kafka
    client = consumer(
        kafka,
        group_id=group_id,
        auto_offset_reset="earliest" if from_beginning else "latest",
        max_poll_records=MAX_POLL_RECORDS,
    )
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
            settings, client, group_id, outputs, dedup if dedup is not None else Deduplicator(), stop, on_assigned
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
    ) -> None:
        self.kafka = settings.kafka
        self.topic = settings.kafka.topics.alerts.name
        self.client = client
        self.outputs = outputs
        self.dedup = dedup
        self.stop = stop
        self.on_assigned = on_assigned
        self.report = TailReport(topic=self.topic, group_id=group_id)
        #: TopicPartition → next offset, handled but not committed yet.
        self.pending: dict[TopicPartition, int] = {}
        self.assigned: set[TopicPartition] = set()

    def run(self, *, max_alerts: int | None, idle_timeout_s: float | None) -> TailReport:
        from lakehouse.platform.kafka.clients import broker_errors

        report = self.report
        started = last_activity = last_probe = time.monotonic()
        joined = False
        try:
            while not report.stopped_by:
                if self.stop is not None and self.stop.is_set():
                    report.stopped_by = "stop"
                    break
                with broker_errors(self.kafka):
                    batch = self.client.poll(timeout_ms=int(POLL_TIMEOUT_S * 1000))
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
                "tail of %s stopped by %s after %d new alerts; committed %s; the next tail of group %s reads the rest again",
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
            output.handle(alert)
        # Remembered only once every output has it: a failed delivery must not look like a duplicate later.
        self.dedup.add(alert_id)
        report.handled += 1

    def _flush_outputs(self) -> None:
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

        self._flush_outputs()
        if self.dedup.path is not None and self.dedup.changed:
            self.dedup.save()
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
        with broker_errors(self.kafka):
            self.client.end_offsets(partitions, timeout_ms=int(self.kafka.connect_timeout_s * 1000))

    @staticmethod
    def _describe(offsets: dict[TopicPartition, Any]) -> str:
        return ", ".join(f"partition {tp.partition} up to {om.offset}" for tp, om in sorted(offsets.items()))


def close_outputs(outputs: Iterable[AlertOutput]) -> None:
    """Close every output, even when one fails to (the first error is re-raised)."""
    error: BaseException | None = None
    for output in outputs:
        try:
            output.close()
        except BaseException as exc:
            error = error or exc
    if error is not None:
        raise error
