"""Reading one alert record: :func:`parse_alert` turns a Kafka record's value into the alert, or says
what is wrong with it. Pure: no I/O.
"""

from __future__ import annotations

import json
import re
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
    return _without_lone_surrogates(alert)


#: A UTF-16 surrogate code point on its own: JSON can spell one (``"\\ud800"``), UTF-8 cannot encode it.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _without_lone_surrogates(value: Any) -> Any:
    """``value`` with every lone surrogate in its strings (keys too) replaced by U+FFFD.

    An alert carries fields that came from outside (merchant ids). A lone surrogate in one would
    make every output fail to encode the alert, on every redelivery, and so stop its partition for
    good; the replacement character keeps the alert deliverable and shows where the bad code was.
    """
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_without_lone_surrogates(key): _without_lone_surrogates(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_lone_surrogates(item) for item in value]
    return value


def _preview(value: bytes, limit: int = 60) -> str:
    text = value.decode("utf-8", errors="replace")
    return repr(text if len(text) <= limit else text[:limit] + "…")
