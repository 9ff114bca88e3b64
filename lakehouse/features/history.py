"""The user-history features, in plain Python and numpy: the one implementation both paths run.

Offline, :func:`advance` replays each user's silver transactions from an empty history; online,
the streaming scorer's stateful operator calls it with the history kept in the state store and
the user's new transactions of a micro-batch. Each transaction's features are computed from the
history *before* it (see :mod:`lakehouse.contract.features` for "known at"), so the result
does not depend on how the transactions are cut into calls: the parity the feature check and
the tests verify.

History is bounded two ways that never change a feature: features only look at the user's
previous ``max_events`` transactions (by arrival sequence number, so a card-testing bot cannot
make the state grow without limit), and :func:`prune` drops what no future accepted transaction
can see: entries older than the user's latest event time minus the longest window and the
lateness allowance, and entries more than ``max_events`` arrivals back.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from lakehouse.contract.features import DISTINCT_WINDOWS, HISTORY_S, STATE_FEATURES, USER_WINDOWS
from lakehouse.features.columns import SMALL
from lakehouse.settings import Settings

US = 1_000_000
#: What the history step makes of an event (the ``status`` of the online state rows).
ACCEPTED, LATE, DUPLICATE = "accepted", "late_event", "duplicate"
log = logging.getLogger(__name__)
#: History columns, in the order the state stores them.
HISTORY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("time_us", "long"),
    ("amount", "double"),
    ("merchant_id", "string"),
    ("device_ip", "string"),
    ("transaction_id", "string"),
    ("seq", "long"),
)
#: Input columns :func:`advance` needs (arrival order is the caller's).
EVENT_COLUMNS: tuple[str, ...] = ("transaction_id", "time_us", "amount", "merchant_id", "device_ip")


@dataclass
class History:
    """One user's recent transactions in arrival order."""

    time_us: np.ndarray  # int64
    amount: np.ndarray  # float64
    merchant_id: np.ndarray  # object
    device_ip: np.ndarray  # object (None when unknown)
    transaction_id: np.ndarray  # object
    seq: np.ndarray  # int64: the user's arrival number (increasing; gaps where pruned)

    @classmethod
    def empty(cls) -> History:
        return cls(
            np.empty(0, np.int64),
            np.empty(0, np.float64),
            *(np.empty(0, object) for _ in range(3)),
            np.empty(0, np.int64),
        )

    @classmethod
    def from_state(cls, value: tuple | None) -> History:
        if value is None:
            return cls.empty()
        times, amounts, merchants, ips, ids, seq = value
        return cls(
            np.asarray(times, np.int64),
            np.asarray(amounts, np.float64),
            np.asarray(merchants, object),
            np.asarray(ips, object),
            np.asarray(ids, object),
            np.asarray(seq, np.int64),
        )

    def columns(self) -> tuple[np.ndarray, ...]:
        return (self.time_us, self.amount, self.merchant_id, self.device_ip, self.transaction_id, self.seq)

    def to_state(self) -> tuple:
        return tuple(column.tolist() for column in self.columns())

    def __len__(self) -> int:
        return len(self.time_us)


@dataclass(frozen=True)
class Advanced:
    """What :func:`advance` returns: per input row its features (None for duplicates), whether
    it was a duplicate, and the user's history after it."""

    features: dict[str, list]
    duplicate: np.ndarray  # bool
    history: History


def advance(history: History, events: dict[str, np.ndarray], *, max_events: int) -> Advanced:
    """Features of each event (given in arrival order) from the history before it; returns the
    history with the accepted events appended. An event whose transaction_id is already in the
    history (or earlier in ``events``) is a duplicate: no features, not appended."""
    users = np.zeros(len(events["time_us"]), np.int64)
    features, duplicate, histories = advance_users([history], users, events, max_events=max_events)
    return Advanced(features, duplicate, histories[0])


#: Pairs (event, earlier entry) evaluated at once: bounds the working arrays of one step.
MAX_PAIRS = 2_000_000


def advance_users(
    histories: list[History], users: np.ndarray, events: dict[str, np.ndarray], *, max_events: int
) -> tuple[dict[str, list], np.ndarray, list[History]]:
    """:func:`advance` for many users at once: ``users[i]`` is the index in ``histories`` of
    event ``i``'s user (events in arrival order). Returns each event's features (None for
    duplicates), the duplicate flags, and each user's history after the events.

    Vectorised over the whole batch: every user's history and new events are laid end to end
    (one segment per user, in arrival order), each accepted event is paired with the entries it
    may see (the earlier entries of its segment within its last ``max_events`` arrivals), and
    every feature is a masked reduction over those pairs. A sum runs over the event's own entries
    in arrival order (``np.add.reduceat`` on the compacted pairs), so it does not depend on the
    other events of the call: the result is the same however the events are cut into calls."""
    n_users, n_new = len(histories), len(users)
    users = np.asarray(users, np.int64)
    order = np.argsort(users, kind="stable")  # new events grouped by user, arrival order kept
    new_count = np.bincount(users, minlength=n_users)
    old_count = np.array([len(h) for h in histories], np.int64)
    size = old_count + new_count
    seg_start = np.concatenate([[0], np.cumsum(size)[:-1]]).astype(np.int64)
    total = int(size.sum())
    # Where each history entry and each new event goes in the laid-out arrays.
    is_new = np.zeros(total, bool)
    new_at = seg_start[users[order]] + old_count[users[order]] + _rank_within(users[order])
    is_new[new_at] = True
    columns = {}
    for index, (name, kind) in enumerate(HISTORY_COLUMNS):
        dtype = np.int64 if kind == "long" else np.float64 if kind == "double" else object
        laid = np.empty(total, dtype)
        old_values = [h.columns()[index] for h in histories]
        if any(len(v) for v in old_values):
            laid[~is_new] = np.concatenate(old_values)
        if name != "seq":
            laid[new_at] = np.asarray(events[name], dtype)[order]
        columns[name] = laid
    segment = np.repeat(np.arange(n_users), size)
    # Duplicates: a transaction_id seen earlier in its user's segment (history or new events).
    repeated = _repeated(segment, columns["transaction_id"])
    duplicate = np.zeros(n_new, bool)
    duplicate[order] = repeated[new_at]
    keep = ~repeated
    # Arrival numbers of the accepted new events continue each user's sequence.
    last_seq = np.array([int(h.seq[-1]) if len(h) else -1 for h in histories], np.int64)
    accepted_new = is_new & keep
    columns["seq"][accepted_new] = last_seq[segment[accepted_new]] + 1 + _rank_within(segment[accepted_new])
    laid = {name: values[keep] for name, values in columns.items()}
    segment, is_new = segment[keep], is_new[keep]
    kept_size = np.bincount(segment, minlength=n_users)
    kept_start = np.concatenate([[0], np.cumsum(kept_size)[:-1]]).astype(np.int64)
    # Where each accepted event sits in ``events`` (its features go there).
    event_of = np.full(total, -1, np.int64)
    event_of[new_at] = order
    event_at = event_of[keep][is_new]

    out: dict[str, list] = {f.name: [None] * n_new for f in STATE_FEATURES}
    out["prev_merchant_id"] = [None] * n_new
    out["prev_time_us"] = [None] * n_new
    rows = np.flatnonzero(is_new)
    if len(rows):
        seq = laid["seq"]
        # The first entry each event may see: its segment's start, or max_events arrivals back.
        # Exact integers (a float key loses the low bits past 4,096 users): segments apart, seq ascending within one.
        span = np.int64(2**41)
        key = segment.astype(np.int64) * span + seq
        first = np.searchsorted(key, segment[rows].astype(np.int64) * span + (seq[rows] - max_events))
        first = np.maximum(first, kept_start[segment[rows]])
        codes = {"merchant_id": _codes(laid["merchant_id"]), "device_ip": _codes(laid["device_ip"])}
        pairs = rows - first
        bounds = np.concatenate([[0], np.cumsum(pairs)])
        begin = 0
        while begin < len(rows):
            end = int(np.searchsorted(bounds, bounds[begin] + MAX_PAIRS, side="right")) - 1
            end = max(end, begin + 1)
            _pair_features(laid, codes, rows[begin:end], first[begin:end], event_at[begin:end], out)
            begin = end
    after = [
        History(*(laid[name][kept_start[u] : kept_start[u] + kept_size[u]] for name, _ in HISTORY_COLUMNS))
        for u in range(n_users)
    ]
    return out, duplicate, after


def _rank_within(groups: np.ndarray) -> np.ndarray:
    """0, 1, 2... within each run of equal values of a grouped (sorted) array."""
    if not len(groups):
        return np.zeros(0, np.int64)
    starts = np.flatnonzero(np.concatenate([[True], groups[1:] != groups[:-1]]))
    lengths = np.diff(np.concatenate([starts, [len(groups)]]))
    return np.arange(len(groups)) - np.repeat(starts, lengths)


def _repeated(segment: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Per position: whether the same (segment, id) came earlier."""
    if len(ids) > SMALL:
        import pandas as pd

        return pd.DataFrame({"u": segment, "tx": ids}).duplicated().to_numpy()
    seen: set = set()
    out = np.zeros(len(ids), bool)
    for at, pair in enumerate(zip(segment.tolist(), ids.tolist(), strict=True)):
        out[at] = pair in seen
        seen.add(pair)
    return out


def _codes(values: np.ndarray) -> np.ndarray:
    """Integer codes of strings in order of first appearance (None or NaN → -1): cheap to compare."""
    if len(values) > SMALL:
        import pandas as pd

        return pd.factorize(values, use_na_sentinel=True)[0].astype(np.int64)
    codes: dict = {}
    return np.array([-1 if v is None or v != v else codes.setdefault(v, len(codes)) for v in values.tolist()], np.int64)


def _segment_sum(values: np.ndarray, event: np.ndarray, n: int) -> np.ndarray:
    """Per event 0..n-1: the sum of its ``values`` (grouped by event, in order); 0 when none."""
    out = np.zeros(n)
    if len(values):
        starts = np.flatnonzero(np.concatenate([[True], event[1:] != event[:-1]]))
        out[event[starts]] = np.add.reduceat(values, starts)
    return out


def _pair_features(
    laid: dict[str, np.ndarray],
    codes: dict[str, np.ndarray],
    rows: np.ndarray,
    first: np.ndarray,
    event_at: np.ndarray,
    out: dict[str, list],
) -> None:
    """The features of the events at ``rows`` (laid-out indices) from the entries ``first..row``."""
    n = len(rows)
    lengths = rows - first
    event = np.repeat(np.arange(n), lengths)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    entry = np.arange(int(lengths.sum())) - np.repeat(offsets, lengths) + np.repeat(first, lengths)
    times, amounts = laid["time_us"][entry], laid["amount"][entry]
    t = laid["time_us"][rows]
    known = (times <= t[event]) & (times > t[event] - HISTORY_S * US)
    values: dict[str, np.ndarray] = {}
    for name, seconds in USER_WINDOWS.items():
        inside = known & (times > t[event] - seconds * US)
        count = np.bincount(event[inside], minlength=n)
        total = _segment_sum(amounts[inside], event[inside], n)
        values[f"user_tx_count_{name}"] = count
        values[f"user_amount_sum_{name}"] = total
        with np.errstate(divide="ignore", invalid="ignore"):
            values[f"user_amount_mean_{name}"] = np.where(count > 0, total / count, np.nan)
        if name in DISTINCT_WINDOWS:
            for column, label in (("merchant_id", "merchants"), ("device_ip", "ips")):
                chosen = codes[column][entry[inside]]
                named = chosen >= 0
                span = int(codes[column].max(initial=0)) + 1
                distinct = np.unique(event[inside][named] * span + chosen[named]) // span
                values[f"user_distinct_{label}_{name}"] = np.bincount(distinct, minlength=n)
    count, mean = values["user_tx_count_30d"], values["user_amount_mean_30d"]
    a = laid["amount"][rows]
    with np.errstate(divide="ignore", invalid="ignore"):
        values["user_amount_ratio_30d"] = np.where((count > 0) & (mean != 0), a / mean, np.nan)
        squares = _segment_sum((amounts[known] - mean[event[known]]) ** 2, event[known], n)
        std = np.where(count >= 2, np.sqrt(squares / np.maximum(count - 1, 1)), 0.0)
        values["user_amount_zscore_30d"] = np.where(std > 0, (a - mean) / std, np.nan)
    # The latest known entry (ties: the later arrival).
    latest = np.full(n, -1, np.int64)
    if known.any():
        k_event, k_times, k_entry = event[known], times[known], entry[known]
        best = np.full(n, np.iinfo(np.int64).min)
        np.maximum.at(best, k_event, k_times)
        on_top = k_times == best[k_event]
        np.maximum.at(latest, k_event[on_top], k_entry[on_top])
    has = latest >= 0
    values["seconds_since_prev_tx"] = np.where(has, (t - laid["time_us"][np.maximum(latest, 0)]) / US, np.nan)
    own_ip = codes["device_ip"][rows]
    same_ip = known & (codes["device_ip"][entry] == own_ip[event])
    seen_ip = np.bincount(event[same_ip], minlength=n) > 0
    positions = event_at.tolist()
    for name, column in values.items():
        target = out[name]
        for position, value in zip(positions, column.tolist(), strict=True):
            target[position] = None if value != value else value  # NaN: no value
    is_new_ip = np.where(seen_ip, 0, 1).tolist()
    for k, position in enumerate(positions):
        out["is_new_device_ip"][position] = None if own_ip[k] < 0 else is_new_ip[k]
        if has[k]:
            out["prev_merchant_id"][position] = laid["merchant_id"][latest[k]]
            out["prev_time_us"][position] = int(laid["time_us"][latest[k]])


def prune(history: History, *, lateness_us: int, max_events: int) -> History:
    """Drop what no future accepted transaction of this user can see: entries older than the
    user's latest event time minus the longest window and the lateness allowance (an accepted
    transaction is never older than its partition's latest event time minus that allowance), and
    entries more than ``max_events`` arrivals back."""
    if not len(history):
        return history
    horizon = int(history.time_us.max()) - HISTORY_S * US - lateness_us
    keep = (history.time_us > horizon) & (history.seq > int(history.seq[-1]) - max_events)
    return History(*(column[keep] for column in history.columns()))


def late_events(times_us: np.ndarray, prior_us: int | None, *, lateness_us: int) -> tuple[np.ndarray, int]:
    """One Kafka partition's lateness clock over its next events (in offset order): an event is
    late when it is older than the latest event time seen before it in the partition (``prior_us``
    from earlier calls, None for none yet) minus ``lateness_us``, as silver decides. Returns the
    late flags and the clock after the events (late ones included)."""
    times = np.asarray(times_us, np.int64)
    start = np.iinfo(np.int64).min if prior_us is None else prior_us
    seen_before = np.maximum.accumulate(np.concatenate([[start], times]))[:-1]
    late = times < seen_before - lateness_us
    if prior_us is None and len(times):
        late[0] = False
    return late, int(max(times.max(), start)) if len(times) else prior_us


def history_settings(settings: Settings) -> dict:
    """The :class:`UserHistoryProcessor` arguments from config."""
    if settings.features.state_ttl_hours * 3600 < HISTORY_S + settings.lakehouse.watermark_delay_minutes * 60:
        log.warning("features.state_ttl_hours is below the 30-day window: returning users may lose history")
    return {
        "lateness_us": int(settings.lakehouse.watermark_delay_minutes * 60 * US),
        "max_events": settings.features.max_history_events,
        "ttl_ms": int(settings.features.state_ttl_hours * 3600 * 1000),
    }
