"""Reading one alert record: :func:`parse_alert` turns a Kafka record's value into the alert, or says
what is wrong with it. Pure: no I/O.
"""

from __future__ import annotations

import json
from typing import Any

from lakehouse.contract.alerts import ALERT_FIELDS


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
