"""The outside-style data of `fraudlake bench detection`: its own schema, its three fraud patterns,
deterministic for a seed."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from lakehouse.benchmarks.outside_data import AMOUNT_LIMIT, MAPPING, generate


@pytest.fixture(scope="module")
def frame():
    return generate(customers=300, terminals=600, days=40, start=date(2026, 1, 1), seed=3)


def test_the_file_has_its_own_columns_in_time_order_and_maps_onto_the_contract(frame) -> None:
    assert set(MAPPING.values()) <= set(frame.columns)
    assert not {"user_id", "merchant_id", "timestamp", "currency", "device_ip"} & set(frame.columns)
    assert frame["TRANSACTION_ID"].is_unique
    assert frame["TX_DATETIME"].is_monotonic_increasing
    assert frame["TX_DATETIME"].iloc[0] >= "2026-01-01" and frame["TX_DATETIME"].iloc[-1] < "2026-02-10"
    assert (frame["TX_AMOUNT"] >= 0).all()


def test_each_fraud_pattern_occurs_and_the_amount_rule_is_exact(frame) -> None:
    fraud = frame["TX_FRAUD"].astype(bool)
    scenario = frame["TX_FRAUD_SCENARIO"]
    assert set(scenario.unique()) == {0, 1, 2, 3}
    assert (fraud == (scenario > 0)).all()
    assert not (frame["TX_AMOUNT"][scenario == 0] > AMOUNT_LIMIT).any()  # every payment over 220 is fraud
    assert 0.002 < fraud.mean() < 0.03
    # A compromised terminal: every payment there on its compromised days is fraud.
    by_day = frame[scenario == 2].groupby(["TERMINAL_ID", "TX_TIME_DAYS"]).size().index
    at = frame.set_index(["TERMINAL_ID", "TX_TIME_DAYS"]).loc[by_day]
    assert at["TX_FRAUD"].all()


def test_the_same_seed_makes_the_same_data_and_another_seed_other_data(frame) -> None:
    again = generate(customers=300, terminals=600, days=40, start=date(2026, 1, 1), seed=3)
    other = generate(customers=300, terminals=600, days=40, start=date(2026, 1, 1), seed=4)
    assert again.equals(frame)
    assert len(other) != len(frame) or not np.array_equal(other["TX_AMOUNT"], frame["TX_AMOUNT"])
