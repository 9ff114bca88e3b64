"""Waiting with a deadline: the one polling loop of the code base and its tests.

Nothing waits by sleeping a fixed time: a wait polls a condition until it holds, gives up early when
what it waits on has died (``check`` raises), and fails at the deadline with an error that says what
was not seen and for how long.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

#: How often a condition is polled unless a caller says otherwise.
POLL_INTERVAL_S = 0.25


class Deadline:
    """A point ``timeout_s`` from now on the monotonic clock."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.end = time.monotonic() + timeout_s

    def remaining(self) -> float:
        return max(0.0, self.end - time.monotonic())

    def expired(self) -> bool:
        return time.monotonic() >= self.end


def wait_until(
    condition: Callable[[], T],
    *,
    timeout_s: float,
    what: str,
    poll_s: float = POLL_INTERVAL_S,
    check: Callable[[], None] | None = None,
    on_timeout: Callable[[], Exception] | None = None,
) -> T:
    """Polls ``condition()`` until it returns something truthy, and returns that.

    ``check()`` runs before each poll and raises to give up early (a process that died, a query
    that failed). At the deadline, raises ``on_timeout()`` if given, else a ``TimeoutError`` that
    names ``what`` and the timeout.
    """
    deadline = Deadline(timeout_s)
    while True:
        if check is not None:
            check()
        result = condition()
        if result:
            return result
        if deadline.expired():
            raise on_timeout() if on_timeout is not None else TimeoutError(f"{what} not seen within {timeout_s:g}s")
        time.sleep(min(poll_s, max(deadline.remaining(), 0.01)))
