"""Group commit for the decision service's partitions.

A partition's decisions are taken one batch at a time. A request that finds its partition free
decides at once, alone; requests that arrive while it is busy queue, and the next of them to run
decides every queued request (up to ``max_batch``, in arrival order) in one go: one lease, one
read, one feature and model pass, one produce and one state write for all of them. Under light
load each decision is still its own batch; under heavy load the fixed cost per decision shrinks
as the batches grow, instead of the queue growing until requests time out.

:class:`Lanes` knows nothing of decisions: ``work(lane, items)`` returns one outcome per item, a
value or an exception to raise in that item's request; if ``work`` itself raises, every request of
the batch gets that exception.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from lakehouse.errors import FraudlakeError


class LaneBusy(FraudlakeError):
    """A request waited in its lane's queue until its deadline without being taken into a batch."""


@dataclass(eq=False)
class _Ticket:
    item: Any
    done: bool = False
    lead: bool = False  # this request's thread runs the next batch
    outcome: Any = None
    event: threading.Event = field(default_factory=threading.Event)


class Lanes:
    def __init__(self, work: Callable[[int, Sequence[Any]], Sequence[Any]], *, max_batch: int) -> None:
        self.work = work
        self.max_batch = max_batch
        self._mutex = threading.Lock()
        self._queues: dict[int, deque[_Ticket]] = {}
        self._busy: set[int] = set()

    def submit(self, lane: int, item: Any, *, timeout_s: float) -> Any:
        """``item``'s outcome, decided in a batch of its lane; raises :class:`LaneBusy` when it
        waited ``timeout_s`` without being taken into a batch (nothing of it was done)."""
        ticket = _Ticket(item)
        with self._mutex:
            queue = self._queues.setdefault(lane, deque())
            queue.append(ticket)
            ticket.lead = lane not in self._busy
            self._busy.add(lane)
        if not ticket.lead and not ticket.event.wait(timeout_s):
            with self._mutex:
                if not (ticket.done or ticket.lead) and ticket in queue:
                    queue.remove(ticket)
                    raise LaneBusy(f"partition {lane} stayed busy for {timeout_s:g} s")
            ticket.event.wait()  # taken into a batch meanwhile: its outcome comes
        if ticket.lead and not ticket.done:
            self._run_batch(lane, queue)
        if isinstance(ticket.outcome, BaseException):
            raise ticket.outcome
        return ticket.outcome

    def _run_batch(self, lane: int, queue: deque[_Ticket]) -> None:
        """The queue's head batch (the leading ticket is its first), then the lead to the next in
        the queue, or the lane free."""
        with self._mutex:
            batch = [queue.popleft() for _ in range(min(len(queue), self.max_batch))]
        try:
            outcomes = list(self.work(lane, [t.item for t in batch]))
            if len(outcomes) != len(batch):
                raise RuntimeError(f"a batch of {len(batch)} decided {len(outcomes)}")
        except Exception as exc:  # every request of the batch answers it
            outcomes = [exc] * len(batch)
        with self._mutex:
            for ticket, outcome in zip(batch, outcomes, strict=True):
                ticket.outcome, ticket.done = outcome, True
            if queue:
                queue[0].lead = True
                batch.append(queue[0])
            else:
                self._busy.discard(lane)
        for ticket in batch:
            ticket.event.set()

    def queued(self, lane: int) -> int:
        """Requests of ``lane`` waiting for a batch (not the one in progress)."""
        with self._mutex:
            return len(self._queues.get(lane, ()))
