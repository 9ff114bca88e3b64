"""Reading a streaming query's checkpoint from outside the query, as files: its last committed
micro-batch and where that batch ended in its source. ``fraudlake stream status`` judges health
from it, and ``fraudlake reconcile`` how far silver has read bronze.

Checkpoints are read as local or mounted folders (``file:`` URIs too); other schemes are refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lakehouse.errors import FraudlakeError

#: Delta's ``DeltaSourceOffset.END_INDEX``: the offset is past the last file of its version.
DELTA_END_INDEX = 2**63 - 1 - 100


@dataclass(frozen=True)
class CommittedBatch:
    """The last micro-batch a query committed, as its checkpoint records it."""

    batch_id: int
    planned_at: datetime  # the batch's batchTimestampMs, else the time of its commit file
    source_offset: dict[str, Any]  # where the batch ended: Kafka {topic: {partition: offset}}, or a Delta source offset


def local_path(uri: str) -> Path:
    """A checkpoint or table location as a local path (``file:`` URIs too); other schemes are refused."""
    if uri.startswith("file:"):
        return Path("/" + uri.removeprefix("file:").lstrip("/"))
    if "://" in uri:
        raise FraudlakeError(
            f"{uri}: fraudlake stream status reads checkpoints and tables in local or mounted folders only"
        )
    return Path(uri)


class CheckpointError(FraudlakeError):
    """A checkpoint's files cannot be read as Spark writes them."""


def last_commit(checkpoint: Path) -> CommittedBatch | None:
    """The last committed micro-batch of a checkpoint (None before the first); :class:`CheckpointError`
    when its offsets file is missing, truncated or not what Spark writes."""
    commits = checkpoint / "commits"
    ids = [int(p.name) for p in commits.iterdir() if p.name.isdigit()] if commits.is_dir() else []
    if not ids:
        return None
    batch_id = max(ids)
    # offsets/<id>: the format version, the batch's metadata, then one line per source.
    offsets = checkpoint / "offsets" / str(batch_id)
    try:
        lines = offsets.read_text().splitlines()
        stamp_ms = json.loads(lines[1]).get("batchTimestampMs")
        source = json.loads(lines[2])
        if not isinstance(source, dict):
            raise ValueError(f"a source offset must be a JSON object, got {lines[2][:60]!r}")
    except (OSError, UnicodeDecodeError, IndexError, ValueError, AttributeError) as exc:
        what = "missing" if isinstance(exc, FileNotFoundError) else f"unreadable ({type(exc).__name__}: {exc})"
        raise CheckpointError(
            f"checkpoint file {offsets} of committed batch {batch_id} is {what}; see docs/operations.md, "
            "'A damaged checkpoint'"
        ) from None
    stamp_s = stamp_ms / 1000 if stamp_ms else (commits / str(batch_id)).stat().st_mtime
    return CommittedBatch(batch_id, datetime.fromtimestamp(stamp_s, UTC), source)


def processed_delta_version(offset: dict[str, Any]) -> int | None:
    """The last version of a Delta source that a query has read in full, from its committed offset
    (-1: none yet); None while it is still inside the first snapshot it reads."""
    if "reservoirVersion" not in offset:
        return None
    version, index = int(offset["reservoirVersion"]), int(offset["index"])
    if index == DELTA_END_INDEX:
        return version
    return None if offset.get("isStartingVersion") else version - 1
