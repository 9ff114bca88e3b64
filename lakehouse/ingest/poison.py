"""The poison-pill guard: a record that passes validation yet makes its micro-batch fail is found
and quarantined, so that the stream goes on.

A failing batch is first taken for a passing fault (a broker, a disk, memory): the query fails and
is restarted from its checkpoint, which replays the same batch. Every failure is counted per batch
in a small file beside the query's checkpoint (``fraudlake-failures.json``), so restarts of the
job count too. At the ``lakehouse.poison_after_failures``-th failure of one batch, the batch's rows
are bisected: each half is run through the batch's own transforms without writing, and the halves
that fail are split again, down to single records. The records that fail alone go to quarantine
with the reason ``poison_record:<error>``; the rest of the batch lands as usual, in the same
micro-batch (so the idempotent appends still hold). When the batch fails with no record at all
(a fault of the code, a table or the machine), no single record fails, or every record of the
batch fails alone, the failure is not a record's: the batch fails again, and the job's restarts
and service manager take over.

Only records are isolated that fail *on their own*; with ``k`` of them in a batch of ``n`` rows,
the search costs about ``2 k log2 n`` dry runs.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from lakehouse.errors import FraudlakeError
from lakehouse.platform.checkpoints import local_path

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

log = logging.getLogger(__name__)

POISON_REASON = "poison_record"
FAILURES_FILE = "fraudlake-failures.json"
COORDINATES = ("topic", "partition", "offset")
#: The reason's error text is cut to this length (the full error is in the job's log).
REASON_CHARS = 160


class FailureCounts:
    """Failures per batch id of one query, kept beside its checkpoint (in memory when the
    checkpoint is not a local folder)."""

    _memory: dict[str, dict[str, int]] = {}  # noqa: RUF012 - shared by the queries of this process

    def __init__(self, checkpoint: str) -> None:
        self.key = checkpoint
        try:
            self.path: Path | None = local_path(checkpoint) / FAILURES_FILE
        except FraudlakeError:
            self.path = None

    def _read(self) -> dict[str, int]:
        if self.path is None:
            return dict(self._memory.get(self.key, {}))
        try:
            return {str(k): int(v) for k, v in json.loads(self.path.read_text()).items()}
        except (OSError, ValueError):
            return {}

    def _write(self, counts: dict[str, int]) -> None:
        if self.path is None:
            self._memory[self.key] = counts
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(counts))
        os.replace(tmp, self.path)

    def add(self, batch_id: int) -> int:
        """Count one more failure of ``batch_id``; returns its failures so far."""
        counts = self._read()
        counts[str(batch_id)] = counts.get(str(batch_id), 0) + 1
        self._write({k: v for k, v in counts.items() if int(k) >= batch_id - 100})  # old batches: done
        return counts[str(batch_id)]

    def clear(self, batch_id: int) -> None:
        counts = self._read()
        if counts.pop(str(batch_id), None) is not None:
            self._write(counts)


def bisect_failures(size: int, failure: Callable[[int, int], str | None]) -> list[tuple[int, str]]:
    """The indices in ``[0, size)`` that fail alone, with their errors. ``failure(lo, hi)`` runs the
    rows ``[lo, hi)`` and returns the error, or None when they pass."""
    found: list[tuple[int, str]] = []
    pending = [(0, size)]
    while pending:
        lo, hi = pending.pop()
        error = failure(lo, hi) if hi > lo else None
        if error is None:
            continue
        if hi - lo == 1:
            found.append((lo, error))
            continue
        mid = (lo + hi) // 2
        pending += [(mid, hi), (lo, mid)]
    return sorted(found)


def records_to_blame(size: int, failure: Callable[[int, int], str | None]) -> list[tuple[int, str]]:
    """The rows that fail on their own (:func:`bisect_failures`), each confirmed by a second run (a
    passing fault does not fail twice); none when every row of a batch of several fails alone: then
    the fault is the code's, a table's or the model's, and quarantining the whole stream would hide it."""
    found = [(i, reason) for i, reason in bisect_failures(size, failure) if failure(i, i + 1) is not None]
    return [] if len(found) == size > 1 else found


def error_reason(exc: BaseException) -> str:
    """``poison_record:<error>``: Spark's error class when it has one, else the exception's type,
    then the first line of its message."""
    kind = getattr(exc, "getCondition", lambda: None)() or type(exc).__name__
    first = (str(exc).strip().splitlines() or [""])[0]
    return f"{POISON_REASON}:{kind}: {first}"[:REASON_CHARS]


def _between(lo: tuple, hi: tuple) -> Column:
    """Kafka coordinates within ``[lo, hi]``, in (topic, partition, offset) order."""
    from pyspark.sql import functions as F

    def coordinates(topic, partition, offset) -> Column:
        return F.struct(
            topic.cast("string").alias("t"), partition.cast("bigint").alias("p"), offset.cast("bigint").alias("o")
        )

    row = coordinates(*(F.col(c) for c in COORDINATES))
    return (row >= coordinates(*map(F.lit, lo))) & (row <= coordinates(*map(F.lit, hi)))


def find_poison(rows: DataFrame, dry_run: Callable[[DataFrame], None]) -> DataFrame | None:
    """The rows of ``rows`` (bronze columns) that make ``dry_run`` fail on their own, with their
    ``quarantine_reason``; None when none does (the failure was not a record's)."""
    from pyspark.sql import functions as F

    def error(selection: DataFrame) -> str | None:
        try:
            dry_run(selection)
        except Exception as exc:
            return error_reason(exc)
        return None

    empty = error(rows.limit(0))
    if empty is not None:  # it fails without any record: a fault of the code, the tables or the machine
        log.warning("the batch fails without any record (%s): no record is to blame", empty)
        return None
    coordinates = sorted(tuple(r) for r in rows.select(*COORDINATES).collect())
    found = records_to_blame(
        len(coordinates), lambda lo, hi: error(rows.where(_between(coordinates[lo], coordinates[hi - 1])))
    )
    if not found:
        return None
    for index, reason in found:
        log.error("poison record %s quarantined: %s", "/".join(map(str, coordinates[index])), reason)
    reasons = rows.sparkSession.createDataFrame(
        [(*coordinates[i], reason) for i, reason in found],
        "topic STRING, partition INT, offset BIGINT, quarantine_reason STRING",
    )
    return rows.join(F.broadcast(reasons), list(COORDINATES))


def without(rows: DataFrame, poison: DataFrame) -> DataFrame:
    """``rows`` less the ``poison`` rows (by Kafka coordinates)."""
    return rows.join(poison.select(*COORDINATES), list(COORDINATES), "left_anti")
