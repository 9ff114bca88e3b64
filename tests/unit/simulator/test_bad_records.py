"""Bad-record injection: each kind carries the defect its manifest entry promises."""

from __future__ import annotations

import ipaddress
import json
from datetime import date

import numpy as np
import pytest

from lakehouse.settings import load_settings
from lakehouse.simulator.bad_records import ACCEPTED, KINDS, BadRecordInjector
from lakehouse.simulator.simulation import Simulation


@pytest.fixture(scope="module")
def clean():
    settings = load_settings("test", environ={})
    sim = settings.simulator.model_copy(
        update={"users": 200, "merchants": 60, "cities": 8, "days": 3, "transactions": 3000}
    )
    simulation = Simulation(sim, date(2026, 10, 1))
    batch = simulation.day(2)
    values = simulation.transaction_json(batch)
    keys = simulation.population.user_id[batch.user].tolist()
    users = [json.dumps(e.record).encode() for e in simulation.users_at(0)[:5]]
    merchants = [json.dumps(e.record).encode() for e in simulation.merchant_records()[:5]]
    return values, keys, batch.ts_ms, users, merchants


def derive_all(clean, rate: float):
    values, keys, ts, users, merchants = clean
    injector = BadRecordInjector(rate, late_by_ms=3_600_000, out_of_order_ms=600_000, seed=1, max_amount=1e6)
    return injector.derive(values, keys, ts, users, merchants)


def test_bad_records_every_kind_in_turn_with_exact_count(clean) -> None:
    bad = derive_all(clean, rate=0.05)
    assert len(bad) == int(0.05 * len(clean[0]))
    assert {b.kind for b in bad} == set(KINDS)


def test_bad_records_rate_zero_injects_nothing(clean) -> None:
    assert derive_all(clean, rate=0.0) == []


def test_bad_records_carry_the_promised_defect(clean) -> None:
    values = set(clean[0])
    for bad in derive_all(clean, rate=0.05):
        assert bad.expected == KINDS[bad.kind][1]
        if bad.kind in ("malformed_json", "merchant_malformed_json"):
            with pytest.raises(json.JSONDecodeError):
                json.loads(bad.value)
            continue
        record = json.loads(bad.value)
        if bad.kind == "duplicate":
            assert bad.value in values and bad.transaction_id == bad.source_id
        elif bad.kind == "missing_field":
            assert "merchant_id" not in record
        elif bad.kind == "null_field":
            assert record["amount"] is None
        elif bad.kind == "bad_type_amount":
            assert isinstance(record["amount"], str)
        elif bad.kind == "bad_type_timestamp":
            with pytest.raises(ValueError):
                np.datetime64(record["timestamp"].rstrip("Z"))
        elif bad.kind == "negative_amount":
            assert record["amount"] < 0
        elif bad.kind == "absurd_amount":
            assert record["amount"] > 1e6
        elif bad.kind == "unknown_currency":
            assert record["currency"] == "XBT"
        elif bad.kind == "invalid_ip":
            with pytest.raises(ValueError):
                ipaddress.ip_address(record["device_ip"])
        elif bad.kind == "late_event":
            assert np.datetime64(record["timestamp"].rstrip("Z"), "ms").astype(np.int64) == clean[2].max() - 3_600_000
        elif bad.kind == "out_of_order":
            assert bad.expected == ACCEPTED
        elif bad.kind in ("ancient_timestamp", "far_future_timestamp"):
            assert record["timestamp"][:4] in ("0001", "9999")
        elif bad.kind == "nan_amount":
            assert np.isnan(float(record["amount"]))
        elif bad.kind == "blank_user_id":
            assert record["user_id"].strip() == ""
        elif bad.kind == "object_merchant_id":
            assert isinstance(record["merchant_id"], dict)
        elif bad.kind == "user_missing_field":
            assert "updated_at" not in record and bad.stream == "users"
        if bad.kind not in ("duplicate", "user_missing_field"):
            assert bad.transaction_id != bad.source_id  # an extra record, never a replaced one
