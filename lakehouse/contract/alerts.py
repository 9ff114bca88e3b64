"""Fraud alerts: the JSON record the scorer appends to ``fraud_alerts`` (keyed by user_id), and the
downstream consumer (:mod:`lakehouse.alerts.tail`).

One alert per transaction whose score is at or over its model's threshold::

    {
      "alert_id": "3f0c…",                 # deterministic: sha256("fraudlake-alert:" + transaction_id), 32 hex chars
      "transaction_id": "…", "user_id": "…", "merchant_id": "…",
      "amount": 812.4, "currency": "EUR",
      "event_time": "2026-11-30T08:12:03.120Z",          # the payment's own time
      "transaction_created_at": "2026-11-30T08:12:03.250Z", # when it was written to transaction_stream
      "score": 0.93, "threshold": 0.41, "model_version": 3,
      "reasons": [{"feature": "user_amount_ratio_30d", "value": 14.2,
                   "text": "Amount / the user's 30-day mean amount: 14.20 (typical 0.98; higher than 99% of
                            legitimate payments)"}, …],
      "emitted_at": "2026-11-30T08:12:05.004Z"            # when the scorer decided the alert
    }

Delivery is at least once with a stable ``alert_id``: a scorer restarted after a crash can append
an alert again, and consumers drop it by ``alert_id``. A repeat is the stored alert itself when the
batch had committed its rows, else the batch scored again: the same decision from the same
restored state and model, with a later ``emitted_at`` (and, had the champion changed in between,
that model's score and version).
"""

from __future__ import annotations

#: Every field of an alert, in order.
ALERT_FIELDS: tuple[str, ...] = (
    "alert_id",
    "transaction_id",
    "user_id",
    "merchant_id",
    "amount",
    "currency",
    "event_time",
    "transaction_created_at",
    "score",
    "threshold",
    "model_version",
    "reasons",
    "emitted_at",
)
ALERT_ID_PREFIX = "fraudlake-alert:"
ALERT_ID_HEX = 32


def alert_id(transaction_id: str) -> str:
    """The alert id of a transaction (the scorer computes the same in Spark SQL)."""
    import hashlib

    return hashlib.sha256((ALERT_ID_PREFIX + transaction_id).encode()).hexdigest()[:ALERT_ID_HEX]


def example_alert(transaction_id: str, **fields: object) -> dict:
    """A complete alert as the scorer writes it, for tests and benchmarks: every field of
    :data:`ALERT_FIELDS`, ``fields`` replacing the defaults (``alert_id`` follows the transaction)."""
    alert = {
        "alert_id": alert_id(transaction_id),
        "transaction_id": transaction_id,
        "user_id": "user-0",
        "merchant_id": "merchant-0",
        "amount": 100.0,
        "currency": "EUR",
        "event_time": "2026-11-30T08:00:03.120Z",
        "transaction_created_at": "2026-11-30T08:00:03.250Z",
        "score": 0.9,
        "threshold": 0.41,
        "model_version": 3,
        "reasons": [
            {"feature": "user_amount_ratio_30d", "value": 14.2, "text": "Amount / the user's 30-day mean amount: 14.20"}
        ],
        "emitted_at": "2026-11-30T08:00:05.004Z",
    }
    return {**alert, **fields}


def created_ms(value: bytes | str) -> float:
    """When the alerted transaction was written to Kafka (epoch ms), from an alert's JSON: the
    start of the alert latency clock (its end is the alert record's append time)."""
    import json
    from datetime import datetime

    return datetime.fromisoformat(json.loads(value)["transaction_created_at"]).timestamp() * 1000
