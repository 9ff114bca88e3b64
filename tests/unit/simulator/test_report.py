"""Scenario report: history features see only the past, and each scenario stands out where it should."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lakehouse.settings import load_settings
from lakehouse.simulator.entities import HOUR_MS, haversine_km
from lakehouse.simulator.report import (
    HISTORY_FEATURES,
    LEGITIMATE,
    history_features,
    render_markdown,
    scenario_statistics,
    write_report,
)
from lakehouse.simulator.simulation import Simulation, midnight_ms
from lakehouse.simulator.traffic import SCENARIOS, TxBatch

START = date(2026, 10, 1)


@pytest.fixture(scope="module")
def sim() -> Simulation:
    small = load_settings("test", environ={}).simulator.model_copy(
        update={"users": 300, "merchants": 80, "cities": 12, "days": 5, "transactions": 6000, "fraud_rate": 0.05}
    )
    return Simulation(small, START)


@pytest.fixture(scope="module")
def batch(sim: Simulation) -> TxBatch:
    return TxBatch.concat([b for _, b in sim.offline_batch()])


@pytest.fixture(scope="module")
def features(sim: Simulation, batch: TxBatch) -> pd.DataFrame:
    return history_features(sim, batch)


@pytest.fixture(scope="module")
def stats(features: pd.DataFrame) -> pd.DataFrame:
    return scenario_statistics(features)


def test_history_features_first_transaction_of_each_user_has_no_history(batch: TxBatch, features: pd.DataFrame) -> None:
    first = pd.DataFrame({"user": batch.user, "ts": batch.ts_ms}).groupby("user")["ts"].idxmin().to_numpy()
    rows = features.iloc[first]
    assert (rows[["user_tx_1h", "user_tx_24h", "user_distinct_merchants_1h"]] == 0).all().all()
    assert rows[["amount_to_user_median", "new_device_ip", "speed_kmh_since_prev"]].isna().all().all()


def test_history_features_ignore_changes_to_a_users_last_transaction(
    sim: Simulation, batch: TxBatch, features: pd.DataFrame
) -> None:
    user = np.bincount(batch.user).argmax()
    mine = np.flatnonzero(batch.user == user)
    last = mine[np.argmax(batch.ts_ms[mine])]
    earlier = mine[batch.ts_ms[mine] < batch.ts_ms[last]]
    changed = replace(
        batch, amount=batch.amount.copy(), device_ip=batch.device_ip.copy(), merchant=batch.merchant.copy()
    )
    changed.amount[last] *= 100
    changed.device_ip[last] = "203.0.113.7"
    changed.merchant[last] = (batch.merchant[last] + 1) % len(sim.population.merchant_id)

    again = history_features(sim, changed)

    assert len(earlier) >= 5
    pd.testing.assert_frame_equal(again.iloc[earlier], features.iloc[earlier])
    assert again.loc[last, "amount"] != features.loc[last, "amount"]


def test_history_features_match_when_later_transactions_are_dropped(
    sim: Simulation, batch: TxBatch, features: pd.DataFrame
) -> None:
    cutoff = midnight_ms(START) + 2 * 24 * HOUR_MS + 13 * HOUR_MS
    kept = np.flatnonzero(batch.ts_ms < cutoff)

    truncated = history_features(sim, batch.take(kept))

    pd.testing.assert_frame_equal(truncated, features.iloc[kept].reset_index(drop=True))


def test_history_features_hand_built_batch_gives_exact_values(sim: Simulation) -> None:
    pop = sim.population
    t0 = midnight_ms(START) + 12 * HOUR_MS
    a, b = pop.city_merchants[1][0], pop.city_merchants[0][0]  # two shops with coordinates
    minute = 60_000
    # user 0 pays at a, b, a, and twice in the same millisecond at b; user 1 pays at a in between.
    rows = [
        # (minute, user, merchant, amount, ip)
        (0, 0, a, 10.0, "1.1.1.1"),
        (5, 1, a, 50.0, "2.2.2.2"),
        (10, 0, b, 30.0, "1.1.1.1"),
        (30, 0, a, 100.0, "3.3.3.3"),
        (90, 0, b, 20.0, "3.3.3.3"),
        (90, 0, b, 40.0, "4.4.4.4"),
    ]
    batch = TxBatch(
        transaction_id=np.array([f"T{i}" for i in range(len(rows))], dtype=object),
        ts_ms=np.array([t0 + r[0] * minute for r in rows], dtype=np.int64),
        user=np.array([r[1] for r in rows]),
        merchant=np.array([r[2] for r in rows]),
        amount=np.array([r[3] for r in rows]),
        device_ip=np.array([r[4] for r in rows], dtype=object),
        scenario=np.array([None, None, "card_testing", None, None, None], dtype=object),
    )

    f = history_features(sim, batch)

    assert f["fraud_scenario"].tolist() == [LEGITIMATE, LEGITIMATE, "card_testing", LEGITIMATE, LEGITIMATE, LEGITIMATE]
    assert f["hour"].tolist() == [12, 12, 12, 12, 13, 13]
    # Rows 4 and 5 share a timestamp: neither sees the other, both see user 0's rows at 30 min (and 0, 10 for 24 h).
    assert f["user_tx_1h"].tolist() == [0, 0, 1, 2, 1, 1]
    assert f["user_tx_24h"].tolist() == [0, 0, 1, 2, 3, 3]
    assert f["user_distinct_merchants_1h"].tolist() == [0, 0, 1, 2, 1, 1]
    np.testing.assert_allclose(f["amount_to_user_median"], [np.nan, np.nan, 3.0, 5.0, 20 / 30, 40 / 30])
    np.testing.assert_array_equal(f["new_device_ip"], [np.nan, np.nan, 0.0, 1.0, 0.0, 1.0])
    assert f["merchant_tx_24h"].tolist() == [0, 1, 0, 2, 1, 1]
    ab_km = haversine_km(pop.merchant_lat[a], pop.merchant_lon[a], pop.merchant_lat[b], pop.merchant_lon[b])
    hops = [np.nan, np.nan, ab_km / (10 / 60), ab_km / (20 / 60), ab_km, ab_km]  # km over hours since the previous
    np.testing.assert_allclose(f["speed_kmh_since_prev"], hops)
    home_km = haversine_km(pop.home_lat[0], pop.home_lon[0], pop.merchant_lat[a], pop.merchant_lon[a])
    assert f.loc[0, "home_distance_km"] == pytest.approx(home_km)


def test_scenario_statistics_card_testing_has_higher_user_tx_1h(stats: pd.DataFrame) -> None:
    assert stats.loc["card_testing", "user_tx_1h"] >= stats.loc[LEGITIMATE, "user_tx_1h"] + 2


def test_scenario_statistics_amount_anomaly_has_much_higher_amount_to_user_median(stats: pd.DataFrame) -> None:
    assert stats.loc["amount_anomaly", "amount_to_user_median"] >= 5 * stats.loc[LEGITIMATE, "amount_to_user_median"]


def test_scenario_statistics_impossible_travel_has_higher_speed(stats: pd.DataFrame) -> None:
    assert stats.loc["impossible_travel", "speed_kmh_since_prev"] > 10 * stats.loc[LEGITIMATE, "speed_kmh_since_prev"]


def test_scenario_statistics_one_row_per_group_legitimate_first(stats: pd.DataFrame, batch: TxBatch) -> None:
    assert stats.index.tolist() == [LEGITIMATE, *SCENARIOS]
    assert stats["count"].sum() == len(batch)
    assert {*HISTORY_FEATURES, "amount_p50", "amount_p99", "night_share"} <= set(stats.columns)


def test_render_markdown_has_meta_table_and_a_section_per_scenario(stats: pd.DataFrame) -> None:
    text = render_markdown(stats, {"seed": 42, "transactions": 6000, "fraud": 300, "start": "2026-10-01", "days": 5})

    table = [line for line in text.splitlines() if line.startswith("|")]
    assert len(table) == 2 + len(stats)
    assert all(line.count("|") == len(stats.columns) + 2 for line in table)
    assert "seed 42; 6,000 transactions; 300 fraudulent (5.00%); span from 2026-10-01, 5 days." in text
    for name in SCENARIOS:
        assert f"## {name}" in text
    assert "median amount_to_user_median" in text.split("## amount_anomaly")[1].split("##")[0]


def test_write_report_writes_the_rendered_markdown(sim: Simulation, batch: TxBatch, tmp_path: Path) -> None:
    path = tmp_path / "reports" / "scenarios.md"

    stats = write_report(path, sim, batch)

    assert path.read_text().startswith("# Fraud scenarios vs legitimate traffic")
    assert stats.loc[LEGITIMATE, "count"] == int((~batch.is_fraud.astype(bool)).sum())
