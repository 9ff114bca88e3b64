"""The user-history core shared by the offline and online paths: window arithmetic, "known at"
semantics for out-of-order events, duplicates, and results independent of how the events are
cut into calls (with pruning in between, as the online state does)."""

from __future__ import annotations

import numpy as np
import pytest

from lakehouse.features import history
from lakehouse.features.history import US, History, advance, advance_users, prune

HOUR = 3600 * US
T0 = 1_790_000_000 * US


def events(rows: list[tuple]) -> dict[str, np.ndarray]:
    """rows: (transaction_id, hours after T0, amount, merchant_id, device_ip)."""
    ids, hours, amounts, merchants, ips = zip(*rows, strict=True)
    return {
        "transaction_id": np.array(ids, object),
        "time_us": np.array([T0 + int(h * HOUR) for h in hours], np.int64),
        "amount": np.array(amounts, float),
        "merchant_id": np.array(merchants, object),
        "device_ip": np.array(ips, object),
    }


def run(rows: list[tuple], max_events: int = 100):
    return advance(History.empty(), events(rows), max_events=max_events)


def test_history_windows_count_only_what_was_known_before() -> None:
    result = run(
        [
            ("a", 0, 10.0, "m1", "ip1"),
            ("b", 0.5, 30.0, "m2", "ip1"),
            ("c", 2, 20.0, "m1", "ip2"),  # a and b are older than 1h
            ("d", 2.5, 100.0, "m3", None),
        ]
    )
    f = result.features
    assert f["user_tx_count_1h"] == [0, 1, 0, 1]
    assert f["user_tx_count_24h"] == [0, 1, 2, 3]
    assert f["user_amount_sum_24h"] == [0.0, 10.0, 40.0, 60.0]
    assert f["user_amount_mean_24h"] == [None, 10.0, 20.0, 20.0]
    assert f["user_amount_ratio_30d"][3] == pytest.approx(5.0)
    assert f["user_amount_zscore_30d"][3] == pytest.approx((100 - 20) / 10.0)
    assert f["seconds_since_prev_tx"] == [None, 1800.0, 5400.0, 1800.0]
    assert f["prev_merchant_id"] == [None, "m1", "m2", "m1"]
    assert f["user_distinct_merchants_24h"] == [0, 1, 2, 2]
    assert f["user_distinct_ips_24h"] == [0, 1, 1, 2]
    assert f["is_new_device_ip"] == [1, 0, 1, None]


def test_history_out_of_order_event_does_not_see_later_ones_and_arrives_too_late_for_earlier_ones() -> None:
    # "late" happened at 1h but arrived after "x" (2h): x was scored without it, and late only
    # sees what happened before 1h.
    result = run(
        [
            ("a", 0, 10.0, "m1", "ip1"),
            ("x", 2, 50.0, "m2", "ip1"),
            ("late", 1, 7.0, "m3", "ip1"),
            ("y", 3, 5.0, "m1", "ip1"),
        ]
    )
    f = result.features
    assert f["user_tx_count_24h"] == [0, 1, 1, 3]
    assert f["prev_merchant_id"] == [None, "m1", "m1", "m2"]
    assert f["seconds_since_prev_tx"][2] == 3600.0


def test_history_duplicate_gets_no_features_and_is_not_counted() -> None:
    result = run([("a", 0, 10.0, "m1", "ip1"), ("a", 0, 10.0, "m1", "ip1"), ("b", 1, 20.0, "m1", "ip1")])
    assert result.duplicate.tolist() == [False, True, False]
    assert result.features["user_tx_count_24h"] == [0, None, 1]
    assert len(result.history) == 2


def test_history_features_see_at_most_max_events_previous_transactions() -> None:
    rows = [(f"t{i}", i * 0.01, 1.0, "m", "ip") for i in range(10)]
    assert run(rows, max_events=3).features["user_tx_count_1h"] == [0, 1, 2, 3, 3, 3, 3, 3, 3, 3]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_history_results_do_not_depend_on_how_events_are_cut_into_batches(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 1500
    hours = np.cumsum(rng.exponential(3.0, n))
    hours[::9] -= rng.random(len(hours[::9])) * 1.5  # out of order within the lateness allowance
    rows = [
        (
            f"t{i}",
            float(h),
            float(rng.gamma(2, 30)),
            f"m{rng.integers(0, 15)}",
            None if rng.random() < 0.1 else f"ip{rng.integers(0, 4)}",
        )
        for i, h in enumerate(hours)
    ]
    rows[700] = rows[650]  # a duplicate
    whole = run(rows, max_events=50)

    history, pieces, start = History.empty(), {name: [] for name in whole.features}, 0
    while start < n:
        size = int(rng.integers(1, 120))
        chunk = advance(History.from_state(history.to_state()), events(rows[start : start + size]), max_events=50)
        for name in pieces:
            pieces[name] += chunk.features[name]
        history = prune(chunk.history, lateness_us=2 * HOUR, max_events=50)
        start += size

    assert pieces == whole.features
    assert len(history) <= 50  # pruned: bounded whatever the stream length


def test_many_users_at_once_equal_each_user_alone() -> None:
    """The batch kernel (all users of a micro-batch in one call, as the scorer and the offline
    replay run it) gives each user exactly what a call with that user alone gives: interleaved
    arrivals, histories of different lengths, the same transaction_id under two users (not a
    duplicate), a repeat within one user (a duplicate)."""
    rng = np.random.default_rng(9)
    per_user = {
        u: [
            (
                f"{'shared' if i == 0 else u}-{i}",
                float(i * rng.uniform(0.2, 3)),
                float(rng.gamma(2, 20)),
                f"m{i % 4}",
                f"ip{i % 3}",
            )
            for i in range(n)
        ]
        for u, n in (("a", 40), ("b", 3), ("c", 0), ("d", 25))
    }
    per_user["d"].append(per_user["d"][5])  # a repeat: duplicate
    names = list(per_user)
    histories, batches, alone = [], {}, {}
    for u in names:
        rows = per_user[u]
        cut = len(rows) // 2
        histories.append(
            advance(History.empty(), events(rows[:cut]), max_events=20).history if cut else History.empty()
        )
        batches[u] = rows[cut:]
        alone[u] = advance(histories[-1], events(rows[cut:]), max_events=20) if rows[cut:] else None
    # Interleave the users' new events, keeping each user's own order.
    queue = [(u, row) for u in names for row in batches[u]]
    rng.shuffle(queue)
    queue.sort(key=lambda item: batches[item[0]].index(item[1]))  # stable: each user's order kept
    users = np.array([names.index(u) for u, _ in queue])
    features, duplicate, after = advance_users(histories, users, events([row for _, row in queue]), max_events=20)
    for index, u in enumerate(names):
        mine = np.flatnonzero(users == index)
        if alone[u] is None:
            assert len(mine) == 0 and len(after[index]) == len(histories[index])
            continue
        assert {k: [v[i] for i in mine] for k, v in features.items()} == alone[u].features, u
        assert duplicate[mine].tolist() == alone[u].duplicate.tolist()
        assert after[index].to_state() == alone[u].history.to_state()
    assert duplicate.sum() == 1


def test_feature_docs_list_every_feature_as_defined() -> None:
    from pathlib import Path

    from lakehouse.contract.features import markdown_table

    docs = (Path(__file__).resolve().parents[3] / "docs" / "features.md").read_text()
    assert markdown_table() in docs, (
        "regenerate the table in docs/features.md from lakehouse.contract.features.markdown_table()"
    )


def test_a_call_with_thousands_of_users_keeps_each_users_window_exact() -> None:
    """Past 4,096 users in one call (an offline bucket holds tens of thousands) the window search
    must still be exact: a user with more than max_events entries gets what it gets alone."""
    n_users, heavy = 5000, 300
    users = np.concatenate([np.arange(n_users - 1), np.full(heavy, n_users - 1)])
    rows = [(f"t{i}", i / 3600, float(i + 1), "m", "ip") for i in range(len(users))]
    features, _, _ = advance_users([History.empty() for _ in range(n_users)], users, events(rows), max_events=50)
    mine = np.flatnonzero(users == n_users - 1)
    alone = run([rows[i] for i in mine], max_events=50).features
    assert {k: [features[k][i] for i in mine] for k in alone} == alone


def test_the_small_call_path_hashes_as_pandas_does(monkeypatch) -> None:
    """A call with few events hashes ids and codes in plain Python (one event per call is the
    decision service's case); a large call uses pandas. Both give the same features and duplicates
    for the same events, None and NaN device addresses and repeated ids included."""
    rng = np.random.default_rng(7)
    rows = [
        (
            f"t{i if i % 9 else i // 2}",  # repeats
            i / 7,
            float(rng.integers(1, 500)),
            f"m{rng.integers(0, 5)}",
            [None, float("nan"), "ip1", "ip2"][i % 4],
        )
        for i in range(120)
    ]
    histories = [History.empty(), History.empty()]
    users = np.array([i % 2 for i in range(len(rows))])
    small = advance_users(histories, users, events(rows), max_events=30)
    monkeypatch.setattr(history, "SMALL", -1)  # every call takes pandas' path
    large = advance_users(histories, users, events(rows), max_events=30)
    assert small[1].tolist() == large[1].tolist() and small[1].any()
    for name, values in small[0].items():
        np.testing.assert_equal(np.array(values, object), np.array(large[0][name], object), err_msg=name)
    for before, after in zip(small[2], large[2], strict=True):
        for a, b in zip(before.columns(), after.columns(), strict=True):
            assert repr(a.tolist()) == repr(b.tolist())  # NaN as NaN, None as None
