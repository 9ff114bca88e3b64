"""The decision service's online store, in Redis: what the stream scorer keeps in its state store,
kept where every instance of the service reaches it.

Keys (all under ``<decisions.key_prefix>:<transactions topic>:``, so two worlds never meet):

- ``hist:<user_id>``: the user's history (:class:`lakehouse.features.history.History`, JSON of its
  columns), expiring after ``features.state_ttl_hours`` without a new transaction, as the stream's
  state entry does;
- ``clock:<partition>``: the Kafka partition's lateness clock (latest event time, microseconds);
- ``lock:<partition>``: the partition's lease. Decisions for one partition are taken one at a time,
  in the order their records reach the partition, so the stream sees the same order the service
  decided in (the lateness clock and the histories depend on it);
- ``pending:<partition>``: the write-ahead record of a batch of decisions whose records are being
  produced: the records and the state after them. Whoever takes the partition next finishes it
  (produces the records again, which the stream drops as duplicates when the first ones had
  landed, then writes the state), so a crash between the produce and the state write loses nothing
  and applies nothing twice;
- ``decision:<idempotency key>``: the decision returned, replayed on a retry (``decisions.idempotency_ttl_s``).

State writes check the lease: a holder that outlived its lease writes nothing (whoever took the
partition finished its pending record).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lakehouse.errors import FraudlakeError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping, Sequence

    import redis

# Take the lease (KEYS[1], for ARGV[2] ms) and read the keys after KEYS[2] in the same step; nil
# when taken. Fair between instances: KEYS[2] names the instance whose turn is next (a waiter
# registers there for ARGV[3] ms, again at each try), and no one else takes the lease before it,
# so an instance that releases and takes again at once cannot starve the others.
_TAKE = """
local turn = redis.call('get', KEYS[2])
if turn and turn ~= ARGV[1] then return nil end
if not redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  redis.call('set', KEYS[2], ARGV[1], 'PX', ARGV[3])
  return nil
end
if turn then redis.call('del', KEYS[2]) end
return redis.call('mget', unpack(KEYS, 3))
"""
#: How long a waiting instance keeps its turn without trying again (a dead waiter holds no one up longer).
TURN_MS = 50
# Delete the lease only when it is still ours.
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
# KEYS: lock, clock, pending, then the keys to set (histories, decisions). ARGV: token, clock, '1' to
# release the lease after, then for each key to set its value and TTL (s). Applies a batch of
# decisions' state when the lease is still ours; returns 1 when it did.
_COMMIT = """
if redis.call('get', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('set', KEYS[2], ARGV[2])
for i = 4, #KEYS do redis.call('set', KEYS[i], ARGV[2 * i - 4], 'EX', ARGV[2 * i - 3]) end
redis.call('del', KEYS[3])
if ARGV[3] == '1' then redis.call('del', KEYS[1]) end
return 1
"""


class PartitionBusy(FraudlakeError):
    """The partition's lease stayed taken until the request's deadline."""


@dataclass(frozen=True)
class Seen:
    """What a batch of decisions reads under its partition's lease, in one round trip."""

    pending: dict | None  # the partition's unfinished batch, if any
    clock: int | None  # the partition's lateness clock
    decisions: dict[str, dict]  # the decisions kept for the batch's idempotency keys (those found)
    histories: dict[str, list]  # the batch's users' histories (those found)


@dataclass(frozen=True)
class Taken:
    """A partition's lease held: its token, and what was read when it was taken."""

    token: str
    seen: Seen


class OnlineStore:
    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str,
        topic: str,
        history_ttl_s: int,
        decision_ttl_s: int,
        lock_ttl_ms: int,
    ) -> None:
        self.client = client
        self.root = f"{prefix}:{topic}:"
        self.history_ttl_s = history_ttl_s
        self.decision_ttl_s = decision_ttl_s
        self.lock_ttl_ms = lock_ttl_ms
        self._take = client.register_script(_TAKE)
        self._release = client.register_script(_RELEASE)
        self._commit = client.register_script(_COMMIT)
        self._local: dict[int, threading.Lock] = {}  # per partition: this instance's requests queue here
        self._held: dict[int, str] = {}  # per partition: the token of the lease held (by the local lock's holder)

    def key(self, kind: str, name: object) -> str:
        return f"{self.root}{kind}:{name}"

    # ---------------------------------------------------------------- reads
    def history(self, user_id: str) -> list | None:
        return _loads(self.client.get(self.key("hist", user_id)))

    def pending(self, partition: int) -> dict | None:
        return read_pending(self.client.get(self.key("pending", partition)))

    def read(self, partition: int, user_ids: Sequence[str] = (), decision_keys: Sequence[str] = ()) -> Seen:
        """The partition's pending batch and clock, the kept decisions for ``decision_keys`` and
        the histories of ``user_ids``, in one round trip."""
        names, parse = self._reads(partition, user_ids, decision_keys)
        return parse(self.client.mget(names))

    def _reads(
        self, partition: int, user_ids: Sequence[str], decision_keys: Sequence[str]
    ) -> tuple[list[str], Callable[[list], Seen]]:
        """The keys :meth:`read` reads, and what makes a :class:`Seen` of their values."""
        users, keys = list(dict.fromkeys(user_ids)), list(dict.fromkeys(decision_keys))
        names = [self.key("pending", partition), self.key("clock", partition)]
        names += [self.key("decision", k) for k in keys] + [self.key("hist", u) for u in users]

        def parse(values: list) -> Seen:
            pending, clock, *found = values
            decisions = {k: json.loads(v) for k, v in zip(keys, found[: len(keys)], strict=True) if v is not None}
            histories = {u: json.loads(v) for u, v in zip(users, found[len(keys) :], strict=True) if v is not None}
            return Seen(read_pending(pending), None if clock is None else int(clock), decisions, histories)

        return names, parse

    # ---------------------------------------------------------------- the lease
    @contextmanager
    def lease(
        self, partition: int, *, timeout_s: float, user_ids: Sequence[str] = (), decision_keys: Sequence[str] = ()
    ) -> Iterator[Taken]:
        """Hold the partition's lease for the block, and read what :meth:`read` reads for
        ``user_ids`` and ``decision_keys`` in the same round trip; waits up to ``timeout_s``. The
        instance's own requests queue on a local lock first (no polling among them); Redis then
        settles it between instances, in turn (see ``_TAKE``)."""
        deadline = time.monotonic() + timeout_s
        local = self._local.setdefault(partition, threading.Lock())
        if not local.acquire(timeout=timeout_s):
            raise PartitionBusy(f"partition {partition} stayed busy for {timeout_s:g} s")
        try:
            name, token, pause = self.key("lock", partition), uuid.uuid4().hex, 0.0002
            names, parse = self._reads(partition, user_ids, decision_keys)
            keys = [name, self.key("turn", partition), *names]
            while (values := self._take(keys=keys, args=[token, self.lock_ttl_ms, TURN_MS])) is None:
                if time.monotonic() >= deadline:
                    raise PartitionBusy(f"partition {partition} stayed busy for {timeout_s:g} s")
                time.sleep(pause)
                pause = min(pause * 2, 0.001)
            self._held[partition] = token
            try:
                yield Taken(token, parse(values))
            finally:
                if self._held.pop(partition, None) == token:  # not released by the commit
                    self._release(keys=[name], args=[token])
        finally:
            local.release()

    # ---------------------------------------------------------------- writes (under the lease)
    def write_pending(self, partition: int, entry: dict) -> None:
        self.client.set(self.key("pending", partition), json.dumps(entry, separators=(",", ":")))

    def commit(
        self,
        partition: int,
        token: str,
        *,
        clock_us: int,
        histories: Mapping[str, str] | None = None,
        decisions: Mapping[str, str] | None = None,
        release: bool = False,
    ) -> bool:
        """Apply a batch's state (the clock, its users' histories and its decisions to replay, as
        JSON text) and drop the pending record, at once, and with ``release`` give the lease back
        in the same step (the batch's last); False (nothing written) when the lease is no longer ours."""
        keys = [self.key("lock", partition), self.key("clock", partition), self.key("pending", partition)]
        args: list[object] = [token, clock_us, "1" if release else "0"]
        for kind, values, ttl in (
            ("hist", histories, self.history_ttl_s),
            ("decision", decisions, self.decision_ttl_s),
        ):
            for name, value in (values or {}).items():
                keys.append(self.key(kind, name))
                args += [value, ttl]
        applied = bool(self._commit(keys=keys, args=args))
        if applied and release:
            self._held.pop(partition, None)
        return applied

    def replace(self, *, clocks: dict[int, int], histories: dict[str, list]) -> None:
        """Warm start (under every partition's lease): the partitions' clocks and the users'
        histories become these; decisions kept for retries stay."""
        for kind in ("hist", "clock"):
            stale = list(self.client.scan_iter(match=f"{self.root}{kind}:*", count=1000))
            for at in range(0, len(stale), 1000):
                self.client.delete(*stale[at : at + 1000])
        pipe = self.client.pipeline(transaction=False)
        for partition, clock in clocks.items():
            pipe.set(self.key("clock", partition), clock)
        for user_id, history in histories.items():
            pipe.set(self.key("hist", user_id), json.dumps(history, separators=(",", ":")), ex=self.history_ttl_s)
        pipe.execute()


def _loads(raw: bytes | None) -> Any:
    return None if raw is None else json.loads(raw)


def read_pending(raw: bytes | None) -> dict | None:
    """A write-ahead record; one of the release before batches (a single decision) as a batch's."""
    pending = _loads(raw)
    if pending is None or "records" in pending:
        return pending
    history, answer = pending.get("history"), pending.get("answer")
    return {
        "clock_us": pending["clock_us"],
        "records": [{k: pending.get(k) for k in ("key", "value", "timestamp_ms", "alert")}],
        "histories": {} if history is None else {pending["user_id"]: json.dumps(history, separators=(",", ":"))},
        "decisions": {} if answer is None else {pending["decision_key"]: answer},
    }
