"""Small measuring helpers shared by the demo's summary and the benchmarks' reports."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (NaN without values)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))] if ordered else float("nan")


@dataclass
class Steps:
    """Seconds spent in named steps, summed per name in the order first seen::

    steps = Steps()
    with steps("silver append"):
        ...
    """

    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - began


def busy_seconds(progress: Iterable[Mapping]) -> float:
    """The time during which at least one micro-batch of the given Structured Streaming progress
    reports (of one query or several running side by side) was executing: the union of the intervals
    [``timestamp``, ``timestamp`` + ``durationMs.triggerExecution``]. Query start-up, idle polls
    and the gaps between queries are left out, the same for every pipeline measured this way."""
    intervals = sorted(
        (start, start + p["durationMs"].get("triggerExecution", 0) / 1000)
        for p in progress
        for start in [datetime.fromisoformat(p["timestamp"].replace("Z", "+00:00")).timestamp()]
    )
    busy, end = 0.0, float("-inf")
    for start, stop in intervals:
        if stop > end:
            busy += stop - max(start, end)
            end = stop
    return busy
