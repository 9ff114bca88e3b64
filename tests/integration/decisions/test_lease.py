"""The partition lease between instances of the decision service, on the session's real Redis."""

from __future__ import annotations

import itertools
import threading
import time
import uuid

from lakehouse.decisions.serve import online_store

HOLD_S = 0.002  # a batch's work under the lease
RUN_S = 1.5


def test_two_instances_hammering_one_partition_take_its_lease_in_turn(redis_server) -> None:
    settings = redis_server.model_copy(
        update={"decisions": redis_server.decisions.model_copy(update={"key_prefix": f"lease-{uuid.uuid4().hex}"})}
    )
    stores = {"a": online_store(settings), "b": online_store(settings)}  # two instances: own clients, own local locks
    taken = dict.fromkeys(stores, 0)
    order: list[str] = []
    failures: list[BaseException] = []
    deadline = time.monotonic() + RUN_S

    def hammer(name: str) -> None:
        try:
            while time.monotonic() < deadline:
                with stores[name].lease(0, timeout_s=5):
                    taken[name] += 1
                    order.append(name)
                    time.sleep(HOLD_S)
        except BaseException as exc:  # reported by the assertions below
            failures.append(exc)

    threads = [threading.Thread(target=hammer, args=(name,)) for name in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not failures, failures
    assert min(taken.values()) >= 0.4 * max(taken.values()), taken  # neither starves the other...
    switches = sum(1 for before, after in itertools.pairwise(order) if before != after)
    assert switches >= 0.5 * len(order), (switches, len(order))  # ...even for a while: they take turns
