"""Bad records for the lakehouse to handle (``fraudlake produce --bad-rate``), each listed in a
ground-truth manifest with the quarantine reason the lakehouse must give it.

Bad records are *extra* records derived from clean ones (a clean transaction is never replaced),
so a run reconciles exactly: every clean record lands in silver, every manifest entry whose
``expected`` is a reason lands in quarantine with that reason, and ``accepted`` ones in silver.
Kinds are taken in turn, so a run with at least ``len(KINDS)`` bad records has every kind.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

import numpy as np

from lakehouse.simulator.simulation import iso_ms

ACCEPTED = "accepted"
#: How far ahead of the wall clock an ``ahead_of_clock`` record is dated (30 days).
AHEAD_MS = 30 * 24 * 3600 * 1000

#: kind → (stream, expected outcome: a quarantine reason, or "accepted")
KINDS: dict[str, tuple[str, str]] = {
    "malformed_json": ("transactions", "malformed_json"),
    "missing_field": ("transactions", "missing_field:merchant_id"),
    "null_field": ("transactions", "missing_field:amount"),
    "bad_type_amount": ("transactions", "bad_type:amount"),
    "bad_type_timestamp": ("transactions", "bad_type:timestamp"),
    "negative_amount": ("transactions", "negative_amount"),
    "absurd_amount": ("transactions", "absurd_amount"),
    "unknown_currency": ("transactions", "unknown_currency"),
    "invalid_ip": ("transactions", "invalid_ip"),
    "duplicate": ("transactions", "duplicate"),
    "late_event": ("transactions", "late_event"),
    "out_of_order": ("transactions", ACCEPTED),
    "ancient_timestamp": ("transactions", "out_of_range:timestamp"),
    "far_future_timestamp": ("transactions", "out_of_range:timestamp"),
    "ahead_of_clock": ("transactions", "future_time:timestamp"),
    "nan_amount": ("transactions", "not_finite:amount"),
    "blank_user_id": ("transactions", "bad_id:user_id"),
    "object_merchant_id": ("transactions", "bad_type:merchant_id"),
    "user_missing_field": ("users", "missing_field:updated_at"),
    "merchant_malformed_json": ("merchants", "malformed_json"),
}


@dataclass(frozen=True)
class BadRecord:
    kind: str
    stream: str  # transactions | users | merchants
    key: str
    value: bytes
    expected: str  # the quarantine reason, or "accepted"
    transaction_id: str | None  # the id the record carries (None when unreadable)
    source_id: str  # the clean record it was derived from

    def manifest_entry(self, topic: str) -> dict:
        entry = asdict(self)
        entry["value"] = self.value.decode(errors="replace")
        entry["topic"] = topic
        return entry


class BadRecordInjector:
    """Derives bad records from clean ones at ``rate`` (a fraction of clean transactions)."""

    def __init__(self, rate: float, *, late_by_ms: int, out_of_order_ms: int, seed: int, max_amount: float) -> None:
        if not 0 <= rate <= 1:
            raise ValueError("bad rate must be between 0 and 1")
        self.rate = rate
        self.late_by_ms = late_by_ms
        self.out_of_order_ms = out_of_order_ms
        self.max_amount = max_amount
        self.rng = np.random.default_rng([seed, 99])
        self._owed = 0.0
        self._turn = 0
        self._first_ts: int | None = None

    def derive(
        self, transactions: list[bytes], keys: list[str], ts_ms: np.ndarray, users: list[bytes], merchants: list[bytes]
    ) -> list[BadRecord]:
        """Bad records for one chunk of clean records (sent after it, so duplicates follow their source)."""
        if not transactions or self.rate == 0:
            return []
        if self._first_ts is None:
            self._first_ts = int(ts_ms.min())
        self._owed += self.rate * len(transactions)
        due = int(self._owed)
        self._owed -= due
        chunk_max = int(ts_ms.max())
        out: list[BadRecord] = []
        for _ in range(due):
            kind = self._next_kind(chunk_max, bool(users), bool(merchants))
            i = int(self.rng.integers(len(transactions)))
            out.append(self._make(kind, transactions[i], keys[i], chunk_max, users, merchants))
        return out

    def _next_kind(self, chunk_max: int, have_users: bool, have_merchants: bool) -> str:
        names = list(KINDS)
        for _ in range(len(names)):
            kind = names[self._turn % len(names)]
            self._turn += 1
            # A late event only exists once the stream has moved on by more than the lateness.
            if kind == "late_event" and chunk_max - self._first_ts <= self.late_by_ms:
                continue
            if (kind == "user_missing_field" and not have_users) or (
                kind == "merchant_malformed_json" and not have_merchants
            ):
                continue
            return kind
        return "malformed_json"

    def _make(
        self, kind: str, clean: bytes, key: str, chunk_max: int, users: list[bytes], merchants: list[bytes]
    ) -> BadRecord:
        stream, expected = KINDS[kind]
        record = json.loads(clean)
        source = record["transaction_id"]
        bad_id = f"X{self._turn:06d}{source}"

        def tx(changes: dict, drop: str | None = None) -> BadRecord:
            changed = {**record, "transaction_id": bad_id, **changes}
            if drop:
                changed.pop(drop)
            return BadRecord(kind, stream, key, json.dumps(changed).encode(), expected, bad_id, source)

        if kind == "malformed_json":
            return BadRecord(kind, stream, key, clean[: len(clean) // 2], expected, None, source)
        if kind == "missing_field":
            return tx({}, drop="merchant_id")
        if kind == "null_field":
            return tx({"amount": None})
        if kind == "bad_type_amount":
            return tx({"amount": "12,50 EUR"})
        if kind == "bad_type_timestamp":
            return tx({"timestamp": "yesterday at noon"})
        if kind == "negative_amount":
            return tx({"amount": -abs(record["amount"])})
        if kind == "absurd_amount":
            return tx({"amount": round(self.max_amount * 1000, 2)})
        if kind == "unknown_currency":
            return tx({"currency": "XBT"})
        if kind == "invalid_ip":
            return tx({"device_ip": "300.12.7.1"})
        if kind == "duplicate":
            return BadRecord(kind, stream, key, clean, expected, source, source)
        if kind == "late_event":
            return tx({"timestamp": str(iso_ms(np.array([chunk_max - self.late_by_ms]))[0])})
        if kind == "out_of_order":
            stamp = np.datetime64(record["timestamp"].rstrip("Z"), "ms").astype(np.int64) - self.out_of_order_ms
            return tx({"timestamp": str(iso_ms(np.array([stamp]))[0])})
        if kind == "ancient_timestamp":  # valid for Spark, not for Python's datetime or pandas
            return tx({"timestamp": "0001-01-01T00:00:00.000Z"})
        if kind == "far_future_timestamp":
            return tx({"timestamp": "9999-12-31T23:59:59.999Z"})
        if kind == "ahead_of_clock":  # a plausible date, but weeks after the moment it was sent
            return tx({"timestamp": str(iso_ms(np.array([int(time.time() * 1000) + AHEAD_MS]))[0])})
        if kind == "nan_amount":  # a number as text, as many producers send it
            return tx({"amount": "NaN"})
        if kind == "blank_user_id":  # would pool every such payment into one "user"
            return tx({"user_id": "  "})
        if kind == "object_merchant_id":  # a nested object where a producer should have sent its id
            return tx({"merchant_id": {"id": record["merchant_id"]}})
        if kind == "user_missing_field":
            user = json.loads(users[int(self.rng.integers(len(users)))])
            user.pop("updated_at")
            return BadRecord(kind, stream, user["user_id"], json.dumps(user).encode(), expected, None, user["user_id"])
        if kind == "merchant_malformed_json":
            raw = merchants[int(self.rng.integers(len(merchants)))]
            merchant_id = json.loads(raw)["merchant_id"]
            return BadRecord(kind, stream, merchant_id, raw[:-7], expected, None, merchant_id)
        raise ValueError(f"unknown bad record kind {kind}")
