"""One decision: a transaction in the stream's contract → approve, review or decline, before the
money moves, on the stream scorer's own features and model.

A request is checked by the stream's contract rules (:mod:`lakehouse.ingest.record_rules`), then
decided in a batch of its Kafka partition (:mod:`lakehouse.decisions.batching`: alone when the
partition is free, else with the requests queued behind the one in progress). Under the
partition's lease (:class:`lakehouse.decisions.store.OnlineStore`), a batch:

1. takes the lease and reads the partition's lateness clock, the users' histories and the kept
   decisions in one Redis round trip (``state_read``);
2. runs each request's history step in arrival order (:func:`lakehouse.scoring.event.history_step`,
   the stream operator's step), the clock and a user's history moving from one to the next;
3. computes the table features, the compiled champion's scores and the reasons of the accepted
   ones in one pass, from the stream scorer's serving folder (:mod:`lakehouse.scoring.serving`: the
   bundles the scorer's tasks read, so a promotion reaches both);
4. writes its write-ahead record, appends every transaction with its decision to
   ``transaction_stream`` (on the partition of its user, in that order, waiting for the acks) and
   the alert of each review or decline (the stream's ``alert_id``), then writes the state after
   them and gives the lease back in one step.

The records' order on the partition is the order decided in, so the stream scorer computes the
same features, lateness and duplicate decisions for them. Records other producers append to the
partition are not seen by the service (the README: the service owns the users it decides for).
A request that breaks the contract, is late or repeats a transaction is answered 4xx and its record
is still appended (ingest quarantines it with the same reason). A retry (same ``Idempotency-Key``,
else the same ``transaction_id``) gets the first answer again.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakehouse.contract.features import NUMERIC_FEATURES
from lakehouse.decisions.batching import Lanes
from lakehouse.errors import FraudlakeError
from lakehouse.features.columns import concat
from lakehouse.features.history import ACCEPTED, DUPLICATE, History, history_settings
from lakehouse.ingest.record_rules import check_transaction, field_of
from lakehouse.platform import faults
from lakehouse.platform.kafka.topics import partition_of
from lakehouse.scoring import serving
from lakehouse.scoring.event import EventScorer, Step, event_columns
from lakehouse.scoring.kernel import alert_values

if TYPE_CHECKING:
    from lakehouse.decisions.store import OnlineStore
    from lakehouse.platform.kafka.acked import AckedProducer
    from lakehouse.settings import Settings

APPROVE, REVIEW, DECLINE = "approve", "review", "decline"
#: The fault-injection step (``FRAUDLAKE_FAULT``, :mod:`lakehouse.platform.faults`): a decision's
#: record and alert are acknowledged, its state is not written yet.
AFTER_SEND = "decision_after_send"
#: Where a decision's time goes (milliseconds in the answer's ``latency``).
#: What a decided transaction's record carries of its decision.
DECISION_FIELDS = ("decision", "score", "model_version")
DECISION_STEPS = ("parse", "state_read", "features", "model", "reasons", "publish", "state_write")


class Rejected(FraudlakeError):
    """A request answered 4xx: ``reason`` as ingest's quarantine names it, ``field`` when one is."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.field = status, reason, field_of(reason)


class NotServing(FraudlakeError):
    """No champion is published yet (the stream scorer publishes it when it starts)."""


@dataclass(frozen=True)
class Thresholds:
    review: float  # the version's alert threshold
    decline: float

    def outcome(self, score: float) -> str:
        return DECLINE if score >= self.decline else REVIEW if score >= self.review else APPROVE


def thresholds(threshold: float, decline_score: float) -> Thresholds:
    """Approve below the version's alert threshold, review from it, decline from ``decline_score``
    (never below the alert threshold)."""
    return Thresholds(threshold, max(threshold, decline_score))


class DecisionService:
    def __init__(self, settings: Settings, store: OnlineStore, producer: AckedProducer, serving_dir: Path) -> None:
        history = history_settings(settings)
        topics = settings.kafka.topics
        self.topic, self.partitions = topics.transactions.name, topics.transactions.partitions
        self.alerts_topic = topics.alerts.name
        self.decline_score = settings.decisions.decline_score
        self.timeout_s = settings.decisions.request_timeout_s
        self.contract = settings.data
        self.store, self.producer, self.serving_dir = store, producer, serving_dir
        self.scorer = EventScorer(
            serving_dir=str(serving_dir),
            feedback_delay_days=settings.features.feedback_delay_days,
            lateness_us=history["lateness_us"],
            max_events=history["max_events"],
            scored_topic=topics.scored.name,
            alerts_topic=self.alerts_topic,
        )
        self.lanes = Lanes(self._decide_batch, max_batch=settings.decisions.max_batch)

    def model(self):
        try:
            return serving.current(self.serving_dir)[0]
        except RuntimeError as exc:
            raise NotServing(f"no model to decide with yet: {exc}") from None

    def decide(self, body: bytes, idempotency_key: str | None = None, *, explain: bool = False) -> dict[str, Any]:
        """The answer to one request (raises :class:`Rejected` for a 4xx), decided in a batch of
        its partition (:mod:`lakehouse.decisions.batching`)."""
        began = time.perf_counter()
        now_ms = time.time_ns() // 1_000_000
        checked = check_transaction(
            body, kafka_timestamp=datetime.fromtimestamp(now_ms / 1000, UTC), contract=self.contract
        )
        if checked.reason is not None:
            self._keep(body, now_ms)
            raise Rejected(422 if checked.reason != "malformed_json" else 400, checked.reason, _message(checked.reason))
        values = checked.values
        request = Request(
            values=values,
            key=idempotency_key or values["transaction_id"],
            digest=hashlib.sha256(body).hexdigest(),
            now_ms=now_ms,
            explain=explain,
            parsed_s=time.perf_counter() - began,
        )
        answer = self.lanes.submit(partition_of(values["user_id"], self.partitions), request, timeout_s=self.timeout_s)
        if not answer["replayed"]:
            answer["latency_ms"]["total"] = round((time.perf_counter() - began) * 1000, 3)
        return answer

    def _decide_batch(self, partition: int, requests: Sequence[Request]) -> list[dict | Rejected]:
        """A partition's queued requests, in order, under one lease: one read, the history step of
        each, one feature and model pass for the accepted ones, one produce of every record (and
        alert), one state write. Returns each request's answer, or its :class:`Rejected`."""
        clock = time.perf_counter
        timings = dict.fromkeys(DECISION_STEPS, 0.0)
        read = clock()
        users, keys = [r.values["user_id"] for r in requests], [r.key for r in requests]
        with self.store.lease(partition, timeout_s=self.timeout_s, user_ids=users, decision_keys=keys) as taken:
            token, seen = taken.token, taken.seen
            if seen.pending is not None:  # a batch whose holder died: finished first, then read again
                self.finish_pending(partition, token, seen.pending)
                seen = self.store.read(partition, users, keys)
            stepped = clock()
            timings["state_read"] = stepped - read
            histories = {user: History.from_state(h) for user, h in seen.histories.items()}
            batch = _Batch(partition, seen.clock, histories, [None] * len(requests))
            for at, request in enumerate(requests):
                self._step(batch, at, request, seen.decisions.get(request.key))
            timings["features"] = clock() - stepped  # the history steps' state features; the table's follow
            if batch.accepted:
                self._score(batch, requests, timings)
            if batch.records:
                self._append(partition, token, batch.pending(), timings)
        return [self._answer(batch, at, request, timings) for at, request in enumerate(requests)]

    # ------------------------------------------------------------------ steps
    def _step(self, batch: _Batch, at: int, request: Request, stored: dict | None) -> None:
        """One request's history step on the batch's running clock and histories (or its replay)."""
        values, user_id = request.values, request.values["user_id"]
        try:
            replay = _replayed(stored, request.digest)
        except Rejected as exc:
            batch.outcomes[at] = exc
            return
        if replay is not None or request.key in batch.deciding:  # a retry, or its twin in this batch
            batch.outcomes[at] = replay if replay is not None else request.key
            return
        history = batch.histories.get(user_id) or History.empty()
        rows = event_columns(values, partition=batch.partition, offset=-1, timestamp_ms=request.now_ms)
        step = self.scorer.step(rows, history, batch.clock_us)
        batch.clock_us = step.clock_us
        record = values | {"timestamp": _iso(values["timestamp"])}
        if step.status != ACCEPTED:
            reason = "duplicate" if step.status == DUPLICATE else "late_event"
            batch.records.append({"key": user_id, "value": _json(record), "timestamp_ms": request.now_ms})
            batch.outcomes[at] = Rejected(409 if step.status == DUPLICATE else 422, reason, _message(reason))
            return
        batch.histories[user_id] = step.history
        batch.changed.add(user_id)
        batch.deciding.add(request.key)
        entry = {"key": user_id, "value": record, "timestamp_ms": request.now_ms, "decision_key": request.key}
        batch.accepted.append((at, step, entry))  # its value is put in JSON once its decision is known
        batch.records.append(entry)

    def _score(self, batch: _Batch, requests: Sequence[Request], timings: dict[str, float]) -> None:
        """The accepted requests' features, scores and reasons in one pass; their answers and
        stamped records."""
        model = self.model()
        states = concat([step.state for _, step, _ in batch.accepted])
        features, rows = self.scorer.score(states, model, timings=timings)
        levels = thresholds(model.threshold, self.decline_score)
        flagged: list[tuple[dict, dict]] = []  # (record, scored row) of each review or decline
        for k, ((at, _, record), row) in enumerate(zip(batch.accepted, rows, strict=True)):
            request = requests[at]
            answer = {
                "transaction_id": request.values["transaction_id"],
                "decision": levels.outcome(row["score"]),
                "score": row["score"],
                "thresholds": {"review": levels.review, "decline": levels.decline},
                "model_version": model.version,
                "reasons": row["reasons"] or [],
                "alert_id": row["alert_id"],
            }
            if request.explain:
                batch.explained[at] = {name: _plain(features[name][k]) for name in NUMERIC_FEATURES}
            record["value"] = _json(record["value"] | {"decision": {f: answer[f] for f in DECISION_FIELDS}})
            if answer["decision"] != APPROVE:
                flagged.append((record, row))
            batch.outcomes[at] = batch.decided[request.key] = answer | {"request_sha256": request.digest}
        for (record, _), alert in zip(flagged, alert_values([row for _, row in flagged]), strict=True):
            record["alert"] = alert

    def _answer(self, batch: _Batch, at: int, request: Request, timings: dict[str, float]) -> dict | Rejected:
        outcome = batch.outcomes[at]
        if isinstance(outcome, str):  # the twin of an earlier request of the batch (same key)
            try:
                outcome = _replayed(dict(batch.decided[outcome]), request.digest)
            except Rejected as exc:
                return exc
        if isinstance(outcome, Rejected) or outcome.get("replayed"):
            return outcome
        answer = {k: v for k, v in outcome.items() if k != "request_sha256"}
        answer |= {"replayed": False, "batch": len(batch.outcomes)}
        if at in batch.explained:
            answer["features"] = batch.explained[at]
        took = timings | {"parse": request.parsed_s}
        answer["latency_ms"] = {name: round(seconds * 1000, 3) for name, seconds in took.items()}
        return answer

    def _append(self, partition: int, token: str, pending: dict, timings: dict[str, float]) -> None:
        """Append the batch's records (its write-ahead record first) and their alerts, then write
        the state after them."""
        began = time.perf_counter()
        self.store.write_pending(partition, pending)
        offsets = self._send(partition, pending["records"])
        faults.reached(AFTER_SEND)
        sent = time.perf_counter()
        for record, offset in zip(pending["records"], offsets, strict=True):
            if record.get("decision_key") is not None:  # the answer (and the decision kept) says where
                pending["decisions"][record["decision_key"]]["kafka"] = {"partition": partition, "offset": offset}
        self._apply(partition, token, pending, release=True)
        timings["publish"] += sent - began
        timings["state_write"] += time.perf_counter() - sent

    def _send(self, partition: int, records: Sequence[dict]) -> list[int]:
        """Every record (and its alert: same alert_id on any repeat) sent, then every ack awaited;
        the records' offsets."""
        futures, alerts = [], []
        for record in records:
            key = record["key"].encode() if record["key"] is not None else None
            value = record["value"].encode()
            futures.append(
                self.producer.send(self.topic, value, key, partition=partition, timestamp_ms=record["timestamp_ms"])
            )
            if record.get("alert") is not None:
                alerts.append(self.producer.send(self.alerts_topic, record["alert"].encode(), key))
        return self.producer.offsets([*futures, *alerts], self.timeout_s)[: len(futures)]

    def _apply(self, partition: int, token: str, pending: dict, *, release: bool = False) -> None:
        self.store.commit(
            partition,
            token,
            clock_us=pending["clock_us"],
            histories=pending["histories"],
            decisions={key: _json(decision) for key, decision in pending["decisions"].items()},
            release=release,
        )

    def finish_pending(self, partition: int, token: str, pending: dict | None = None) -> None:
        """A batch whose holder died between its write-ahead record and its state write
        (``pending``, else read from the store): its records are appended again (the stream keeps
        the first copies) and its state written; the lease stays held."""
        pending = pending if pending is not None else self.store.pending(partition)
        if pending is not None:
            self._send(partition, pending["records"])
            self._apply(partition, token, pending)

    def _keep(self, body: bytes, timestamp_ms: int) -> None:
        """A rejected request's record on the stream, where ingest quarantines it with its reason
        (keyed by its user id when it has a usable one)."""
        key = _raw_key(body)
        sent = self.producer.send(self.topic, body, None if key is None else key.encode(), timestamp_ms=timestamp_ms)
        self.producer.offsets([sent], self.timeout_s)


@dataclass(frozen=True)
class Request:
    """A request that passed the contract, waiting for its partition's batch."""

    values: dict[str, Any]
    key: str  # its Idempotency-Key, else its transaction_id
    digest: str  # of its body: a retry with the same key must send the same request
    now_ms: int  # its record's Kafka timestamp
    explain: bool
    parsed_s: float


@dataclass
class _Batch:
    """A batch of one partition's decisions while it is taken: the partition's lateness clock and
    the users' histories as its steps move them, and what it has to send and write."""

    partition: int
    clock_us: int | None
    histories: dict[str, History]
    outcomes: list[Any] = field(default_factory=list)  # per request: its answer, Rejected, or its twin's key
    records: list[dict] = field(default_factory=list)  # to append, in order (and their alerts)
    accepted: list[tuple[int, Step, dict]] = field(default_factory=list)  # (request, its step, its record)
    changed: set[str] = field(default_factory=set)  # users whose history moved
    deciding: set[str] = field(default_factory=set)  # the keys decided in this batch
    decided: dict[str, dict] = field(default_factory=dict)  # key → its answer (with the request's digest)
    explained: dict[int, dict] = field(default_factory=dict)  # request → its features, when asked

    def pending(self) -> dict:
        """The write-ahead record: what to send again and to write if the holder dies."""
        return {
            "clock_us": self.clock_us,
            "records": self.records,
            "histories": {user: _json(list(self.histories[user].to_state())) for user in self.changed},
            "decisions": self.decided,
        }


def _replayed(stored: dict | None, digest: str) -> dict | None:
    if stored is None:
        return None
    if stored.pop("request_sha256", digest) != digest:
        raise Rejected(409, "idempotency_key_reused", "this Idempotency-Key was used for a different request")
    return stored | {"replayed": True}


def _json(record: dict) -> str:
    return json.dumps(record, separators=(",", ":"))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _plain(value) -> float | None:
    """A feature value as JSON has it: None for a missing one (None, NA or NaN)."""
    import pandas as pd

    return None if pd.isna(value) else float(value)


def _raw_key(body: bytes) -> str | None:
    """The user id of a rejected record when it has a usable one (for its partition), else None."""
    try:
        user = json.loads(body).get("user_id")
    except (ValueError, AttributeError, UnicodeDecodeError):
        return None
    return user if isinstance(user, str) and user.strip() else None


_MESSAGES = {
    "malformed_json": "the body is not a JSON object",
    "late_event": "the transaction's time is older than the lateness allowance of its partition",
    "duplicate": "this transaction_id was already seen for this user",
}


def _message(reason: str) -> str:
    if reason in _MESSAGES:
        return _MESSAGES[reason]
    field = field_of(reason)
    return f"{reason}: the field {field!r} breaks the transaction contract" if field else reason
