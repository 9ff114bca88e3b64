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

from dataclasses import dataclass

import numpy as np

from lakehouse.contract.features import DISTINCT_WINDOWS, HISTORY_S, STATE_FEATURES, USER_WINDOWS

US = 1_000_000
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
    n_old, n_new = len(history), len(events["time_us"])
    columns = [np.empty(n_old + n_new, dtype=old.dtype) for old in history.columns()]
    for target, old in zip(columns, history.columns(), strict=True):
        target[:n_old] = old
    time_us, amount, merchant, ip, txid, seq = columns
    seen = set(history.transaction_id.tolist())
    next_seq = int(history.seq[-1]) + 1 if n_old else 0
    out: dict[str, list] = {f.name: [None] * n_new for f in STATE_FEATURES}
    out["prev_merchant_id"] = [None] * n_new
    out["prev_time_us"] = [None] * n_new
    duplicate = np.zeros(n_new, bool)
    length = n_old
    for i in range(n_new):
        tx = events["transaction_id"][i]
        if tx in seen:
            duplicate[i] = True
            continue
        t, a = int(events["time_us"][i]), float(events["amount"][i])
        # The previous max_events arrivals (pruned ones were never visible to this event anyway).
        start = int(np.searchsorted(seq[:length], next_seq - max_events))
        window = slice(start, length)
        row = _features(t, a, events["device_ip"][i], time_us[window], amount[window], merchant[window], ip[window])
        for name, value in row.items():
            out[name][i] = value
        time_us[length], amount[length], merchant[length] = t, a, events["merchant_id"][i]
        ip[length], txid[length], seq[length] = events["device_ip"][i], tx, next_seq
        seen.add(tx)
        next_seq += 1
        length += 1
    return Advanced(out, duplicate, History(*(column[:length] for column in columns)))


def _features(
    t: int, a: float, device_ip, times: np.ndarray, amounts: np.ndarray, merchants: np.ndarray, ips: np.ndarray
) -> dict:
    row: dict = {}
    known = (times <= t) & (times > t - HISTORY_S * US)
    for name, seconds in USER_WINDOWS.items():
        in_window = known & (times > t - seconds * US)
        count = int(in_window.sum())
        total = float(amounts[in_window].sum()) if count else 0.0
        row[f"user_tx_count_{name}"] = count
        row[f"user_amount_sum_{name}"] = total
        row[f"user_amount_mean_{name}"] = total / count if count else None
        if name in DISTINCT_WINDOWS:
            row[f"user_distinct_merchants_{name}"] = len(set(merchants[in_window].tolist()))
            row[f"user_distinct_ips_{name}"] = len({x for x in ips[in_window].tolist() if x is not None})
    count = row["user_tx_count_30d"]
    mean = row["user_amount_mean_30d"]
    row["user_amount_ratio_30d"] = a / mean if mean else None
    std = float(np.std(amounts[known], ddof=1)) if count >= 2 else 0.0
    row["user_amount_zscore_30d"] = (a - mean) / std if std > 0 else None
    if count:
        index = np.flatnonzero(known)
        latest = index[len(index) - 1 - int(np.argmax(times[index][::-1]))]  # ties: the later arrival
        row["seconds_since_prev_tx"] = (t - int(times[latest])) / US
        row["prev_merchant_id"] = merchants[latest]
        row["prev_time_us"] = int(times[latest])
    else:
        row["seconds_since_prev_tx"] = row["prev_merchant_id"] = row["prev_time_us"] = None
    if device_ip is None:
        row["is_new_device_ip"] = None
    else:
        row["is_new_device_ip"] = 0 if device_ip in set(ips[known].tolist()) else 1
    return row


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
