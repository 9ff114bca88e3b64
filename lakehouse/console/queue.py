"""The alert queue the console shows: every alert read from ``fraud_alerts`` by the console's own
consumer group, once per ``alert_id`` (the scorer may repeat an alert), sorted by score, with the
analysts' decisions beside them. Held in memory, bounded (``console.queue_limit``: the lowest
scores leave first); the decisions themselves live on as label events and in the audit trail."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Decision:
    outcome: str  # fraud, legitimate or escalate
    analyst: str
    note: str
    decided_at: str  # ISO 8601 UTC
    label_id: str | None  # the label event it became (None for an escalation)


@dataclass
class Case:
    alert: dict
    received_at: float  # epoch seconds, when the console read it
    decisions: list[Decision] = field(default_factory=list)

    @property
    def decision(self) -> Decision | None:
        return self.decisions[-1] if self.decisions else None

    @property
    def alert_id(self) -> str:
        return self.alert["alert_id"]


@dataclass(frozen=True)
class Filters:
    model_version: int | None = None
    min_amount: float | None = None
    max_amount: float | None = None
    max_age_s: float | None = None  # received within this many seconds
    decided: bool | None = None  # None: both

    def keep(self, case: Case, now: float) -> bool:
        alert = case.alert
        amount = alert.get("amount")
        return (
            (self.model_version is None or alert.get("model_version") == self.model_version)
            and (self.min_amount is None or (amount is not None and amount >= self.min_amount))
            and (self.max_amount is None or (amount is not None and amount <= self.max_amount))
            and (self.max_age_s is None or now - case.received_at <= self.max_age_s)
            and (self.decided is None or (case.decision is not None) == self.decided)
        )


class AlertQueue:
    """Thread-safe: the consumer thread adds, request handlers read and decide."""

    def __init__(
        self, limit: int, clock: Callable[[], float] = time.time, decided: dict[str, list[Decision]] | None = None
    ) -> None:
        """``decided``: decisions made before (from the audit trail), joined to their alerts as the
        alerts are read again."""
        self.limit = limit
        self.clock = clock
        self._decided = dict(decided or {})
        self._cases: dict[str, Case] = {}
        self._case_locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self.changes = 0  # grows with every new alert or decision: the page's live view polls it

    def add(self, alert: dict) -> bool:
        """Queue an alert; False for a repeat of a queued one (same ``alert_id``)."""
        with self._lock:
            if alert["alert_id"] in self._cases:
                return False
            self._cases[alert["alert_id"]] = Case(alert, self.clock(), self._decided.pop(alert["alert_id"], []))
            if len(self._cases) > self.limit:
                undecided = [c for c in self._cases.values() if c.decision is None] or list(self._cases.values())
                lowest = min(undecided, key=lambda c: (c.alert.get("score") or 0.0, c.received_at))
                del self._cases[lowest.alert_id]
                self._case_locks.pop(lowest.alert_id, None)
            self.changes += 1
            return True

    def get(self, alert_id: str) -> Case | None:
        with self._lock:
            return self._cases.get(alert_id)

    def page(self, filters: Filters, offset: int, limit: int) -> tuple[list[Case], int]:
        """One page of the cases that pass ``filters``, highest score first; and how many pass."""
        now = self.clock()
        with self._lock:
            kept = [c for c in self._cases.values() if filters.keep(c, now)]
        kept.sort(key=lambda c: (-(c.alert.get("score") or 0.0), c.alert_id))
        return kept[offset : offset + limit], len(kept)

    def of_user(self, user_id: str, excluding: str) -> list[Case]:
        """The user's other open (undecided) alerts, highest score first."""
        with self._lock:
            others = [
                c
                for c in self._cases.values()
                if c.alert.get("user_id") == user_id and c.alert_id != excluding and c.decision is None
            ]
        return sorted(others, key=lambda c: -(c.alert.get("score") or 0.0))

    def decide(self, alert_id: str, expected: int, make: Callable[[Case], Decision]) -> tuple[Decision | None, bool]:
        """Record ``make()``'s decision on a case that has ``expected`` decisions so far; a request
        made from an older view of the case (a second click of the same button) records nothing.
        Returns (the case's latest decision, whether this call made it). ``make`` runs under the
        case's own lock, so two requests on one case never both act, while the queue and the
        other cases stay available (``make`` waits for the broker's acknowledgement)."""
        with self._lock:
            case = self._cases.get(alert_id)
            if case is None:
                return None, False
            lock = self._case_locks.setdefault(alert_id, threading.Lock())
        with lock:
            if len(case.decisions) != expected:
                return case.decision, False
            decision = make(case)
            with self._lock:
                case.decisions.append(decision)
                self.changes += 1
            return decision, True
