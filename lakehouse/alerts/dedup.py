"""Dropping repeated alerts: :class:`Deduplicator`, the last N alert ids in memory, and its state file
(one id per line) that carries them across restarts of the tail.

The in-memory part is pure; :meth:`Deduplicator.load` and :meth:`Deduplicator.save` read and write
the state file.
"""

from __future__ import annotations

import collections
import logging
import os
from pathlib import Path

from lakehouse.alerts.errors import TailError, error_reason

log = logging.getLogger(__name__)


class Deduplicator:
    """The last ``capacity`` alert ids, oldest evicted first.

    ``path`` (set by :meth:`load`) is where :meth:`save` writes them, one id per line, so that a
    restarted tail still recognises alerts it delivered before the restart.
    """

    def __init__(self, capacity: int = 100_000, *, path: Path | str | None = None) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self.path = Path(path) if path is not None else None
        self._ids: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._changed = False

    def __contains__(self, alert_id: object) -> bool:
        return alert_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, alert_id: str) -> None:
        """Remember ``alert_id`` (evicting the oldest beyond capacity)."""
        if alert_id in self._ids:
            return
        self._ids[alert_id] = None
        self._changed = True
        while len(self._ids) > self.capacity:
            self._ids.popitem(last=False)

    def seen(self, alert_id: str) -> bool:
        """True when ``alert_id`` was already seen; otherwise remember it and return False."""
        if alert_id in self._ids:
            return True
        self.add(alert_id)
        return False

    @property
    def changed(self) -> bool:
        """Whether ids were added since the last load or save."""
        return self._changed

    @classmethod
    def load(cls, path: Path | str, capacity: int = 100_000) -> Deduplicator:
        """The ids saved at ``path`` (the last ``capacity`` of them); empty when the file does not exist yet."""
        dedup = cls(capacity, path=path)
        try:
            with open(path, encoding="utf-8") as handle:
                ids = [line.strip() for line in handle]
        except FileNotFoundError:
            return dedup
        except (OSError, UnicodeDecodeError) as exc:
            raise TailError(f"cannot read the dedup state file {path}: {error_reason(exc)}") from None
        for alert_id in ids[-capacity:]:
            if alert_id:
                dedup.add(alert_id)
        dedup._changed = False
        log.debug("loaded %d alert ids from %s", len(dedup), path)
        return dedup

    def save(self, path: Path | str | None = None) -> None:
        """Write the ids to ``path`` (default: where they were loaded from), atomically."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise ValueError("no path to save the dedup state to")
        tmp = target.with_name(f".{target.name}.tmp")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "w", encoding="utf-8") as handle:
                handle.writelines(f"{alert_id}\n" for alert_id in self._ids)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except OSError as exc:
            raise TailError(f"cannot write the dedup state file {target}: {error_reason(exc)}") from None
        self._changed = False
