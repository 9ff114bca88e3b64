"""The decision service's group commit (:class:`lakehouse.decisions.batching.Lanes`), with real
threads: requests that queue while their partition is busy are decided together, in arrival
order, each getting its own outcome; a failing batch fails its own requests only; a request
that waits past its deadline without being taken is answered busy and never decided."""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from lakehouse.decisions.batching import LaneBusy, Lanes
from lakehouse.platform.waits import wait_until

pytestmark = pytest.mark.unit


class Held:
    """A work function whose first batch waits until released; it records every batch."""

    def __init__(self, outcome=lambda item: item * 10) -> None:
        self.batches: list[list] = []
        self.release = threading.Event()
        self.outcome = outcome

    def __call__(self, lane: int, items):
        self.batches.append(list(items))
        if len(self.batches) == 1:
            assert self.release.wait(30), "the test never released the first batch"
        return [self.outcome(item) for item in items]


def busy_lane(lanes: Lanes, work: Held, pool: ThreadPoolExecutor, queued: list) -> tuple[Future, list[Future]]:
    """One request in progress on lane 0, ``queued`` waiting behind it (in that order)."""
    first = pool.submit(lanes.submit, 0, 1, timeout_s=30)
    wait_until(lambda: len(work.batches) == 1, timeout_s=10, what="the first batch to start")
    behind = []
    for item in queued:
        behind.append(pool.submit(lanes.submit, 0, item, timeout_s=30))
        count = len(behind)
        wait_until(lambda n=count: lanes.queued(0) == n, timeout_s=10, what=f"{count} requests queued")
    return first, behind


def test_requests_queued_behind_a_busy_partition_are_decided_together_in_arrival_order() -> None:
    work = Held()
    lanes = Lanes(work, max_batch=3)
    with ThreadPoolExecutor(8) as pool:
        first, behind = busy_lane(lanes, work, pool, [2, 3, 4, 5])
        other = pool.submit(lanes.submit, 1, 7, timeout_s=30).result(timeout=10)  # another lane is not held up
        work.release.set()
        assert first.result(timeout=10) == 10
        assert [f.result(timeout=10) for f in behind] == [20, 30, 40, 50]
    assert other == 70
    assert work.batches == [[1], [7], [2, 3, 4], [5]]  # at most max_batch together, in arrival order
    assert lanes.queued(0) == 0


def test_a_failing_batch_fails_its_own_requests_and_the_partition_goes_on() -> None:
    def outcome(item):
        return ValueError(f"bad {item}") if item == 3 else item * 10

    work = Held(outcome)
    lanes = Lanes(work, max_batch=10)
    with ThreadPoolExecutor(8) as pool:
        first, behind = busy_lane(lanes, work, pool, [2, 3, 4])
        work.release.set()
        assert first.result(timeout=10) == 10
        assert behind[0].result(timeout=10) == 20 and behind[2].result(timeout=10) == 40
        with pytest.raises(ValueError, match="bad 3"):  # an item's own exception: that request only
            behind[1].result(timeout=10)

    def broken(lane, items):
        raise ConnectionError("the broker is gone")

    lanes.work = broken
    with pytest.raises(ConnectionError, match="the broker is gone"):
        lanes.submit(0, 9, timeout_s=5)
    lanes.work = work
    assert lanes.submit(0, 6, timeout_s=5) == 60  # the lane was handed on, not left taken


def test_a_request_that_waits_past_its_deadline_is_answered_busy_and_never_decided() -> None:
    work = Held()
    lanes = Lanes(work, max_batch=10)
    with ThreadPoolExecutor(4) as pool:
        first = pool.submit(lanes.submit, 0, 1, timeout_s=30)
        wait_until(lambda: len(work.batches) == 1, timeout_s=10, what="the first batch to start")
        with pytest.raises(LaneBusy, match="partition 0 stayed busy"):
            lanes.submit(0, 2, timeout_s=0.2)
        work.release.set()
        assert first.result(timeout=10) == 10
    assert work.batches == [[1]] and lanes.queued(0) == 0


def test_a_write_ahead_record_of_the_release_before_batches_reads_as_a_batch_of_one() -> None:
    import json

    from lakehouse.decisions.store import read_pending

    answer = {"decision": "review", "score": 0.7}
    old = {
        "key": "U1",
        "timestamp_ms": 5,
        "clock_us": 9,
        "user_id": "U1",
        "value": "{}",
        "history": [[1], [2.0]],
        "alert": "{}",
        "decision_key": "T1",
        "answer": answer,
    }
    assert read_pending(json.dumps(old).encode()) == {
        "clock_us": 9,
        "records": [{"key": "U1", "value": "{}", "timestamp_ms": 5, "alert": "{}"}],
        "histories": {"U1": "[[1],[2.0]]"},
        "decisions": {"T1": answer},
    }
    rejected = {k: v for k, v in old.items() if k not in ("history", "alert", "decision_key", "answer")}
    assert read_pending(json.dumps(rejected).encode())["histories"] == {}
    assert read_pending(None) is None
