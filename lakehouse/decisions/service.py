"""One decision: a transaction in the stream's contract → approve, review or decline, before the
money moves, on the stream scorer's own features and model.

For a request, under its Kafka partition's lease (:class:`lakehouse.decisions.store.OnlineStore`):

1. the record is checked by the stream's contract rules (:mod:`lakehouse.ingest.record_rules`);
2. the history step runs on the user's history and the partition's lateness clock from the store
   (:func:`lakehouse.scoring.event.history_step`, the stream operator's step);
3. the table features, the compiled champion and the reasons come from the stream scorer's serving
   folder (:mod:`lakehouse.scoring.serving`: the very bundles the scorer's tasks read, so a
   promotion reaches both, and a request never waits for a model load);
4. the transaction, with its decision, is appended to ``transaction_stream`` (on the partition
   Kafka's default partitioner gives its user, waiting for the ack), so the lakehouse, training and
   the stream scorer see it as any other; a review or decline also appends the alert the stream
   would give (same ``alert_id``: consumers keep one);
5. the state after it and the decision (for retries) are written at once, and the lease given back
   in the same step.

Under the lease a decision makes four round trips to Redis: take the lease, read what it needs
(one ``MGET``), write its write-ahead record, commit.

The partition's decisions are serialised, so the order of the records on the partition is the
order the service decided in: the stream scorer then computes the same features (and the same
lateness and duplicate decisions) for the same transactions. Records other producers append to the
partition meanwhile are not seen by the service (see the README: the service owns the users it
decides for).

A request that breaks the contract, is late or repeats a transaction already seen is answered 4xx
and its record is still appended: ingest quarantines it with the same reason, so nothing is lost.
A retry (same ``Idempotency-Key``, else the same ``transaction_id``) gets the first answer again.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakehouse.contract.features import NUMERIC_FEATURES
from lakehouse.errors import FraudlakeError
from lakehouse.features.history import ACCEPTED, DUPLICATE, History, history_settings
from lakehouse.ingest.record_rules import check_transaction, field_of
from lakehouse.platform import faults
from lakehouse.platform.kafka.topics import partition_of
from lakehouse.scoring import serving
from lakehouse.scoring.event import EventScorer, event_columns
from lakehouse.scoring.kernel import alert_values

if TYPE_CHECKING:
    from lakehouse.decisions.store import OnlineStore
    from lakehouse.settings import Settings

APPROVE, REVIEW, DECLINE = "approve", "review", "decline"
#: The fault-injection step (``FRAUDLAKE_FAULT``, :mod:`lakehouse.platform.faults`): a decision's
#: record and alert are acknowledged, its state is not written yet.
AFTER_SEND = "decision_after_send"
#: Where a decision's time goes (milliseconds in the answer's ``latency``).
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
    def __init__(self, settings: Settings, store: OnlineStore, producer, serving_dir: Path) -> None:
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

    def model(self):
        try:
            return serving.current(self.serving_dir)[0]
        except RuntimeError as exc:
            raise NotServing(f"no model to decide with yet: {exc}") from None

    def decide(self, body: bytes, idempotency_key: str | None = None, *, explain: bool = False) -> dict[str, Any]:
        """The answer to one request (raises :class:`Rejected` for a 4xx)."""
        clock, began = time.perf_counter, time.perf_counter()
        timings = dict.fromkeys(DECISION_STEPS, 0.0)
        now_ms = time.time_ns() // 1_000_000
        checked = check_transaction(
            body, kafka_timestamp=datetime.fromtimestamp(now_ms / 1000, UTC), contract=self.contract
        )
        if checked.reason is not None:
            self._keep(body, now_ms)
            raise Rejected(422 if checked.reason != "malformed_json" else 400, checked.reason, _message(checked.reason))
        values = checked.values
        user_id = values["user_id"]
        key = idempotency_key or values["transaction_id"]
        digest = hashlib.sha256(body).hexdigest()
        partition = partition_of(user_id, self.partitions)
        timings["parse"] = clock() - began
        with self.store.lease(partition, timeout_s=self.timeout_s) as token:
            read = clock()
            seen = self.store.read(partition, user_id, key)
            if seen.pending is not None:  # a decision whose holder died: finished first, then read again
                self.finish_pending(partition, token, seen.pending)
                seen = self.store.read(partition, user_id, key)
            replay = self._replayed(seen.decision, digest)  # a retry (or a concurrent one that finished first)
            if replay is not None:
                return replay
            history, partition_clock = History.from_state(seen.history), seen.clock
            stepped = clock()
            timings["state_read"] = stepped - read
            rows = event_columns(values, partition=partition, offset=-1, timestamp_ms=now_ms)
            step = self.scorer.step(rows, history, partition_clock)
            timings["features"] = clock() - stepped  # the history step's state features; the table's follow
            record = values | {"timestamp": _iso(values["timestamp"])}
            entry = {"key": user_id, "timestamp_ms": now_ms, "clock_us": step.clock_us, "user_id": user_id}
            if step.status != ACCEPTED:
                self._append(partition, token, entry | {"value": _json(record)}, timings)
                reason = "duplicate" if step.status == DUPLICATE else "late_event"
                raise Rejected(409 if step.status == DUPLICATE else 422, reason, _message(reason))
            model = self.model()
            features, (row,) = self.scorer.score(step.state, model, timings=timings)
            levels = thresholds(model.threshold, self.decline_score)
            answer = {
                "transaction_id": values["transaction_id"],
                "decision": levels.outcome(row["score"]),
                "score": row["score"],
                "thresholds": {"review": levels.review, "decline": levels.decline},
                "model_version": model.version,
                "reasons": row["reasons"] or [],
                "alert_id": row["alert_id"],
            }
            explained = {name: _plain(features[name][0]) for name in NUMERIC_FEATURES} if explain else None
            stamped = record | {"decision": {k: answer[k] for k in ("decision", "score", "model_version")}}
            entry |= {
                "value": _json(stamped),
                "history": list(step.history.to_state()),
                "alert": alert_values([row])[0] if answer["decision"] != APPROVE else None,
                "decision_key": key,
                "answer": answer | {"request_sha256": digest},
            }
            self._append(partition, token, entry, timings)
        answer |= {"kafka": entry["answer"]["kafka"], "replayed": False}
        if explain:
            answer["features"] = explained
        timings["total"] = clock() - began
        answer["latency_ms"] = {name: round(seconds * 1000, 3) for name, seconds in timings.items()}
        return answer

    # ------------------------------------------------------------------ steps
    @staticmethod
    def _replayed(stored: dict | None, digest: str) -> dict | None:
        if stored is None:
            return None
        if stored.pop("request_sha256", digest) != digest:
            raise Rejected(409, "idempotency_key_reused", "this Idempotency-Key was used for a different request")
        return stored | {"replayed": True}

    def _append(self, partition: int, token: str, entry: dict, timings: dict[str, float]) -> None:
        """Append the transaction's record (its write-ahead entry first) and its alert if any, then
        write the state after it."""
        began = time.perf_counter()
        self.store.write_pending(partition, entry)
        offset = self._send(partition, entry)
        faults.reached(AFTER_SEND)
        sent = time.perf_counter()
        if entry.get("answer") is not None:
            entry["answer"]["kafka"] = {"partition": partition, "offset": offset}
        self._apply(partition, token, entry, release=True)
        timings["publish"] += sent - began
        timings["state_write"] += time.perf_counter() - sent

    def _send(self, partition: int, entry: dict) -> int:
        sent = self.producer.send(
            self.topic,
            key=entry["key"].encode() if entry["key"] is not None else None,
            value=entry["value"].encode(),
            partition=partition,
            timestamp_ms=entry["timestamp_ms"],
        )
        alert = None  # sent beside the record (same alert_id on any repeat), both acks awaited
        if entry.get("alert") is not None:
            alert = self.producer.send(self.alerts_topic, key=entry["key"].encode(), value=entry["alert"].encode())
        offset = sent.get(timeout=self.timeout_s).offset
        if alert is not None:
            alert.get(timeout=self.timeout_s)
        return offset

    def _apply(self, partition: int, token: str, entry: dict, *, release: bool = False) -> None:
        self.store.commit(
            partition,
            token,
            clock_us=entry["clock_us"],
            user_id=entry["user_id"],
            history=entry.get("history"),
            decision_key=entry.get("decision_key"),
            decision=entry.get("answer"),
            release=release,
        )

    def finish_pending(self, partition: int, token: str, entry: dict | None = None) -> None:
        """A decision whose holder died between its write-ahead record and its state write
        (``entry``, else read from the store): its record is appended again (the stream keeps the
        first copy) and its state written; the lease stays held."""
        entry = entry if entry is not None else self.store.pending(partition)
        if entry is not None:
            self._send(partition, entry)
            self._apply(partition, token, entry)

    def _keep(self, body: bytes, timestamp_ms: int) -> None:
        """A rejected request's record on the stream, where ingest quarantines it with its reason
        (keyed by its user id when it has a usable one)."""
        key = _raw_key(body)
        sent = self.producer.send(
            self.topic, key=None if key is None else key.encode(), value=body, timestamp_ms=timestamp_ms
        )
        sent.get(timeout=self.timeout_s)


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
