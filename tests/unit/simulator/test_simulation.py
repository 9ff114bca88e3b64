"""The simulator: reproducible, exact counts, every scenario, consistent entities and labels."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date, timedelta

import numpy as np
import pyarrow.parquet as pq
import pytest

from lakehouse.settings import load_settings
from lakehouse.simulator.files import write_offline_batch
from lakehouse.simulator.simulation import Simulation
from lakehouse.simulator.traffic import SCENARIOS, TxBatch, largest_remainder

START = date(2026, 10, 1)


@pytest.fixture(scope="module")
def settings():
    return load_settings("test", environ={})


@pytest.fixture(scope="module")
def small(settings):
    """A small world: 400 users, 6 days, 8,000 transactions, 4% fraud."""
    return settings.simulator.model_copy(
        update={"users": 400, "merchants": 120, "cities": 12, "days": 6, "transactions": 8000, "fraud_rate": 0.04}
    )


@pytest.fixture(scope="module")
def default_batch(settings):
    simulation = Simulation(settings.simulator, START)
    return simulation, TxBatch.concat([b for _, b in simulation.offline_batch()])


def test_largest_remainder_adds_up_exactly() -> None:
    counts = largest_remainder(1000, np.array([0.2, 0.18, 0.2, 0.2, 0.12, 0.1]))
    assert counts.sum() == 1000
    assert counts.tolist() == [200, 180, 200, 200, 120, 100]


def test_simulation_same_seed_identical_records(small) -> None:
    first, second = Simulation(small, START), Simulation(small, START)
    for day in range(small.days):
        assert first.transaction_json(first.day(day)) == second.transaction_json(second.day(day))
    assert [e.record for e in first.users_at(0)] == [e.record for e in second.users_at(0)]
    assert [e.record for e in first.merchant_records()] == [e.record for e in second.merchant_records()]


def test_simulation_traffic_seed_changes_transactions_not_people(small) -> None:
    base, other = Simulation(small, START), Simulation(small, START, traffic_seed=7)
    assert base.transaction_json(base.day(0)) != other.transaction_json(other.day(0))
    assert [e.record for e in base.users_at(0)] == [e.record for e in other.users_at(0)]
    assert set(base.day(0).transaction_id).isdisjoint(other.day(0).transaction_id)


def test_default_batch_has_exact_counts_and_every_scenario(settings, default_batch) -> None:
    _, batch = default_batch
    sim = settings.simulator
    by_scenario = Counter(s for s in batch.scenario.tolist() if s is not None)

    assert len(batch) == sim.transactions == 100_000
    assert batch.is_fraud.sum() == round(sim.transactions * sim.fraud_rate)
    assert set(by_scenario) == set(SCENARIOS)
    expected = largest_remainder(int(batch.is_fraud.sum()), np.array(list(sim.scenarios.shares().values())))
    assert [by_scenario[name] for name in sim.scenarios.shares()] == expected.tolist()
    assert len(set(batch.transaction_id.tolist())) == len(batch)


@pytest.mark.parametrize("fraud_rate", [0.0, 0.01, 0.2])
def test_simulation_fraud_rate_is_the_configured_one(small, fraud_rate) -> None:
    simulation = Simulation(small.model_copy(update={"fraud_rate": fraud_rate}), START)
    batch = TxBatch.concat([b for _, b in simulation.offline_batch()])
    assert len(batch) == small.transactions
    assert batch.is_fraud.sum() == round(small.transactions * fraud_rate)


def test_simulation_records_respect_the_contract(settings, default_batch) -> None:
    simulation, batch = default_batch
    pop = simulation.population
    records = [json.loads(v) for v in simulation.transaction_json(batch.take(np.arange(0, len(batch), 97)))]
    currencies = set(settings.data.currencies)
    for record in records:
        assert set(record) == {
            "transaction_id",
            "user_id",
            "merchant_id",
            "timestamp",
            "amount",
            "currency",
            "device_ip",
            "is_fraud",
            "fraud_scenario",
        }
        assert record["amount"] > 0 and record["currency"] in currencies
        assert record["is_fraud"] == (record["fraud_scenario"] is not None)
        assert record["timestamp"].endswith("Z")
    for _, day in simulation.offline_batch():
        assert np.all(np.diff(day.ts_ms) >= 0)  # each day in time order (episodes may run past midnight)
    # Nobody pays before signing up.
    assert np.all(pop.signup_ms[batch.user] < batch.ts_ms)


def test_simulation_new_users_and_moves_are_published_before_they_pay(small) -> None:
    simulation = Simulation(small.model_copy(update={"new_user_share": 0.2, "profile_change_probability": 0.2}), START)
    known = {e.key for e in simulation.users_at(0)}
    moves = 0
    for day in range(small.days):
        events = simulation.user_events(day)
        moves += sum(1 for e in events if e.key in known)
        known |= {e.key for e in events}
        paying = set(simulation.population.user_id[simulation.day(day).user].tolist())
        assert paying <= known, f"day {day}: payments by unpublished users"
    assert moves > 0  # profile changes are published again


def test_offline_files_identical_for_a_seed(small, tmp_path) -> None:
    first = write_offline_batch(Simulation(small, START), tmp_path / "a")
    second = write_offline_batch(Simulation(small, START), tmp_path / "b")
    assert first == second
    assert first["transactions"] == small.transactions
    for name in ("transactions", "users", "merchants", "labels"):
        assert pq.read_table(tmp_path / "a" / f"{name}.parquet").equals(
            pq.read_table(tmp_path / "b" / f"{name}.parquet")
        )
    table = pq.read_table(tmp_path / "a" / "transactions.parquet")
    assert table.num_rows == small.transactions
    assert str(table.schema.field("timestamp").type) == "timestamp[ms, tz=UTC]"
    # The chargeback file as of the batch's end: reports after it are left for later.
    labels = pq.read_table(tmp_path / "a" / "labels.parquet").to_pylist()
    assert len(labels) == first["labels"] > 0 and first["labels_reported_later"] > 0
    end = max(table.column("timestamp").to_pylist())
    assert all(label["reported_at"] <= end + timedelta(days=1) for label in labels)
