"""The partition lease between instances of the decision service, on the session's real Redis."""

from __future__ import annotations

import itertools
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from lakehouse.decisions.serve import online_store
from lakehouse.platform.isolation import updated

HOLD_S = 0.002  # a batch's work under the lease
RUN_S = 1.5


def test_two_instances_hammering_one_partition_take_its_lease_in_turn(redis_server) -> None:
    settings = updated(redis_server, {"decisions": {"key_prefix": f"lease-{uuid.uuid4().hex}"}})
    stores = {"a": online_store(settings), "b": online_store(settings)}  # two instances: own clients, own local locks
    order: list[str] = []  # who held the lease, lease after lease
    deadline = time.monotonic() + RUN_S

    def hammer(name: str) -> None:
        while time.monotonic() < deadline:
            with stores[name].lease(0, timeout_s=5):
                order.append(name)
                time.sleep(HOLD_S)

    with ThreadPoolExecutor(len(stores)) as pool:
        list(pool.map(hammer, stores))  # a thread's error is raised here
    taken = Counter(order)
    assert len(taken) == 2 and min(taken.values()) >= 0.4 * max(taken.values()), taken  # neither starves the other...
    switches = sum(1 for before, after in itertools.pairwise(order) if before != after)
    assert switches >= 0.5 * len(order), (switches, len(order))  # ...even for a while: they take turns
