"""The alert queue: once per alert_id, bounded by score, decisions joined back after a restart
(from the audit table, gold.console_audit)."""

from __future__ import annotations

from lakehouse.console.audit import AuditTrail, audit_table
from lakehouse.console.decisions import Decider
from lakehouse.console.queue import AlertQueue


def alert(n: int, score: float) -> dict:
    return {"alert_id": f"a{n}", "transaction_id": f"t{n}", "user_id": "u", "score": score, "amount": 1.0}


def test_a_full_queue_drops_its_lowest_open_score_and_keeps_decided_cases() -> None:
    audit = AuditTrail(lambda row: None)
    queue = AlertQueue(limit=2)
    assert queue.add(alert(1, 0.2)) and not queue.add(alert(1, 0.2))
    queue.decide("a1", 0, Decider(lambda k, v: None, audit)("escalate", "ana", ""))
    queue.add(alert(2, 0.5))
    queue.add(alert(3, 0.9))  # over the limit: a2 (the lowest open one) leaves, decided a1 stays
    assert queue.get("a2") is None and queue.get("a1") is not None and queue.get("a3") is not None


def test_a_restarted_console_joins_the_audited_decisions_to_the_alerts_it_reads_again(spark, settings) -> None:
    audit = audit_table(spark, settings)  # gold.console_audit
    sent: list[bytes] = []
    before = AlertQueue(limit=10)
    before.add(alert(1, 0.9))
    decide = Decider(lambda k, v: sent.append(v), audit)
    before.decide("a1", 0, decide("fraud", "ana", "seen"))
    before.decide("a1", 1, decide("legitimate", "bob", ""))

    after = AlertQueue(limit=10, decided=audit_table(spark, settings).decisions())  # read back from the table
    assert after.get("a1") is None  # not read yet
    after.add(alert(1, 0.9))
    case = after.get("a1")
    assert [(d.outcome, d.analyst) for d in case.decisions] == [("fraud", "ana"), ("legitimate", "bob")]
    assert case.decision.label_id is not None and len(sent) == 2
    assert [d.decided_at for d in case.decisions] == [d.decided_at for d in audit.decisions()["a1"]]
