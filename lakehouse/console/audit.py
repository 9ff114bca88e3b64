"""The console's audit trail, ``gold.console_audit``: every state-changing action (a login, a
decision, a promotion or a rollback, a refused request), one row each, with who and when.

A Delta table in the catalog like every other, so ``fraudlake sql`` answers who decided what. An
action is appended to the table before the console counts it as done (a write that fails fails
the action, and says so); the trail is also kept in memory, read back from the table at start, so a
case page shows its history and a restarted console its decisions without a query per page. One
console writes one trail: the queue itself lives in that console's memory.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from lakehouse.console.queue import Decision
from lakehouse.contract.tables import AUDIT_COLUMNS

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from lakehouse.settings import Settings

FIELDS = tuple(name for name, _ in AUDIT_COLUMNS)
DECIDE = "decide:"


def iso(moment: datetime) -> str:
    """An instant as the console shows it: UTC, milliseconds, ``Z``."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def decisions_of(entries: Iterable[dict]) -> dict[str, list[Decision]]:
    """The decisions of every case, in the trail's order (what a restarted console shows again)."""
    made: dict[str, list[Decision]] = {}
    for entry in entries:
        action = entry.get("action") or ""
        if action.startswith(DECIDE) and entry.get("alert_id"):
            decision = Decision(
                action.removeprefix(DECIDE), entry["actor"], entry.get("note") or "", entry["at"], entry.get("label_id")
            )
            made.setdefault(entry["alert_id"], []).append(decision)
    return made


class AuditTrail:
    """Appends an action with ``write`` (which raises when it cannot), then keeps it in memory.
    An entry has ``actor``, ``action`` and, where they apply, ``at`` (ISO instant; now when not
    given), ``alert_id``, ``transaction_id``, ``label_id``, ``model_version`` and ``note``."""

    def __init__(self, write: Callable[[dict], None], past: Iterable[dict] = ()) -> None:
        self._write = write
        self._entries = list(past)
        self._lock = threading.Lock()

    def __call__(self, entry: dict) -> None:
        unknown = set(entry) - set(FIELDS)
        if unknown:
            raise ValueError(f"audit entries have no field {', '.join(sorted(unknown))}")
        now = datetime.now(UTC)
        row = {name: entry.get(name) for name in FIELDS}
        row["at"] = row["at"] or iso(now)
        row["recorded_at"] = now.isoformat()  # microseconds: the trail's order
        self._write(row)
        with self._lock:
            self._entries.append(row)

    def entries(self, alert_id: str | None = None) -> list[dict]:
        with self._lock:
            return [e for e in self._entries if alert_id is None or e.get("alert_id") == alert_id]

    def decisions(self) -> dict[str, list[Decision]]:
        return decisions_of(self.entries())


def audit_table(spark: SparkSession, settings: Settings) -> AuditTrail:
    """The trail on ``gold.console_audit`` (created with the other tables), read back in order."""
    from pyspark.sql import functions as F

    from lakehouse.contract.tables import create_tables
    from lakehouse.platform.delta import retry_on_conflict

    name = create_tables(spark, settings).console_audit
    schema = ", ".join(f"`{column}` {kind}" for column, kind in AUDIT_COLUMNS)
    instants = [column for column, kind in AUDIT_COLUMNS if kind == "TIMESTAMP"]

    def write(row: dict) -> None:
        values = {k: (datetime.fromisoformat(v) if k in instants and v else v) for k, v in row.items()}
        frame = spark.createDataFrame([tuple(values[c] for c in FIELDS)], schema)
        retry_on_conflict(lambda: frame.write.format("delta").mode("append").saveAsTable(name), what="console audit")

    as_text = [  # the instants as the console writes them (the session's time zone is UTC)
        F.date_format(c, "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'").alias(c) if c in instants else F.col(c) for c in FIELDS
    ]
    ordered = spark.table(name).orderBy("recorded_at", "at").select(*as_text)
    past = [row.asDict() for row in ordered.collect()]
    return AuditTrail(write, past)
