"""An analyst's decision on a case: ``fraud`` and ``legitimate`` become a label event on
``fraud_labels`` (``source=analyst``, the analyst, the decision's time; the same contract as
chargebacks and customers' reports, so ingest lands it in ``silver.labels`` and training sees it
once it is known); ``escalate`` hands the case on without a label. Every decision is appended to
the audit trail (``gold.console_audit``). The label event is delivered (acknowledged by the
broker) before the decision is recorded, so a decision the console shows is one the lakehouse
will have."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

from lakehouse.console.audit import iso
from lakehouse.console.queue import Case, Decision
from lakehouse.errors import FraudlakeError
from lakehouse.simulator.labels import label_id

OUTCOMES = ("fraud", "legitimate", "escalate")
LABELS = {"fraud": "fraud", "legitimate": "legitimate"}  # escalate makes no label
NOTE_MAX = 2000


def label_event(case: Case, outcome: str, analyst: str, note: str, decided_at: datetime) -> dict:
    """The ``fraud_labels`` record of a decision (fields of ``LABEL_EVENT_FIELDS``)."""
    alert = case.alert
    millis = int(decided_at.timestamp() * 1000)
    return {
        "label_id": label_id(alert["transaction_id"], "analyst", millis),
        "transaction_id": alert["transaction_id"],
        "user_id": alert["user_id"],
        "label": LABELS[outcome],
        "source": "analyst",
        "reported_at": iso(decided_at),
        "analyst": analyst,
        "note": note or None,
    }


class Decider:
    """Makes decisions: ``send(key, value)`` delivers a label event or raises; ``audit(entry)``
    appends to the audit trail (``gold.console_audit``)."""

    def __init__(
        self,
        send: Callable[[bytes, bytes], None],
        audit: Callable[[dict], None],
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.send = send
        self.audit = audit
        self.clock = clock

    def __call__(self, outcome: str, analyst: str, note: str) -> Callable[[Case], Decision]:
        if outcome not in OUTCOMES:
            raise FraudlakeError(f"decision {outcome!r} is not one of {', '.join(OUTCOMES)}")
        note = note.strip()[:NOTE_MAX]

        def make(case: Case) -> Decision:
            decided_at = self.clock()
            event = label_event(case, outcome, analyst, note, decided_at) if outcome in LABELS else None
            if event is not None:
                self.send(event["user_id"].encode(), json.dumps(event, separators=(",", ":")).encode())
            decision = Decision(outcome, analyst, note, iso(decided_at), event["label_id"] if event else None)
            self.audit(
                {
                    "at": decision.decided_at,
                    "actor": analyst,
                    "action": f"decide:{outcome}",
                    "alert_id": case.alert_id,
                    "transaction_id": case.alert["transaction_id"],
                    "label_id": decision.label_id,
                    "note": note or None,
                }
            )
            return decision

        return make
