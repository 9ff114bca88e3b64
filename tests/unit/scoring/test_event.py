"""The Quix Streams pipeline's per-event scorer is the Spark scorer's kernel cut into one event per
call: fed one record at a time, with the user's history through JSON as Quix's state store keeps
it, it gives the records the batch kernel gives for the same events, late and repeated ones
dropped alike. (The benchmark also compares the two pipelines' scores on every transaction.)"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from lakehouse.features.history import History, advance_users, late_events
from lakehouse.features.offline import event_arrays, state_columns_frame
from lakehouse.scoring import serving
from lakehouse.scoring.event import EventScorer, event_columns
from lakehouse.scoring.kernel import kafka_records, score_state_rows
from tests.unit.scoring.test_serving import model, snapshot

LATENESS_US = 600 * 1_000_000
MAX_EVENTS = 50
CREATED_MS = 1_796_323_197_637


def records() -> list[tuple[int, int, dict]]:
    """(partition, offset, value): users on two partitions, a late record and a repeated id."""
    out, offsets = [], {0: 0, 1: 0}
    for i in range(40):
        user = f"u{i % 4}"
        partition = i % 4 % 2
        minute = 3 * i if i != 21 else 3 * i - 30  # record 21 is 30 minutes behind its partition
        value = {
            "transaction_id": f"t{i if i != 33 else 1}",  # record 33 repeats t1 (same user u1)
            "user_id": user,
            "merchant_id": "m1",
            "timestamp": f"2026-11-01T{8 + minute // 60:02d}:{minute % 60:02d}:07.250Z",
            "amount": 5.0 + i * 1.5,
            "currency": "EUR",
            "device_ip": None if i % 5 == 0 else f"10.0.0.{i % 3}",
            "is_fraud": i % 7 == 0,
        }
        out.append((partition, offsets[partition], value))
        offsets[partition] += 1
    return out


def batch_records(folder) -> list[tuple[str, str, str]]:
    """The same records through the batch kernel, one call per partition (as a scorer task)."""
    out = []
    for partition in (0, 1):
        rows = pd.concat(
            [
                pd.DataFrame(event_columns(v, partition=p, offset=o, timestamp_ms=CREATED_MS))
                for p, o, v in records()
                if p == partition
            ],
            ignore_index=True,
        )
        late, _ = late_events(rows["time_us"].to_numpy(np.int64), None, lateness_us=LATENESS_US)
        rows = rows[~late].reset_index(drop=True)
        user_ids, users = np.unique(rows["user_id"].to_numpy().astype(str), return_inverse=True)
        histories = [History.empty() for _ in user_ids]
        found, duplicate, _ = advance_users(histories, users, event_arrays(rows), max_events=MAX_EVENTS)
        state = state_columns_frame(rows, found)[~duplicate].reset_index(drop=True)
        current, dims = serving.current(folder)
        _, _, scored = score_state_rows(state, dims, current, feedback_delay_days=7, scored_at_us=0)
        out += list(zip(*kafka_records(scored, "scored", "alerts"), strict=True))
    return out


def settings(folder) -> dict:
    return {
        "serving_dir": str(folder),
        "feedback_delay_days": 7,
        "lateness_us": LATENESS_US,
        "max_events": MAX_EVENTS,
        "scored_topic": "scored",
        "alerts_topic": "alerts",
    }


def without_clock(record: tuple[str, str, str]) -> tuple:
    topic, key, value = record
    fields = json.loads(value)
    fields.pop("scored_at", None)
    fields.pop("emitted_at", None)
    return topic, key, json.dumps(fields, sort_keys=True)


def test_one_event_per_call_gives_the_records_of_the_batch_kernel(tmp_path) -> None:
    serving.publish_model(tmp_path, model(1))
    serving.publish_snapshot(tmp_path, snapshot(1))
    scorer = EventScorer(**settings(tmp_path))
    store: dict[str, str] = {}  # Quix's state: a JSON value per key
    per_event = []
    for partition, offset, value in records():
        stored = store.get(value["user_id"])
        sent, history = scorer(
            value,
            None if stored is None else json.loads(stored),
            partition=partition,
            offset=offset,
            timestamp_ms=CREATED_MS,
        )
        if history is not None:
            store[value["user_id"]] = json.dumps(history)
        per_event += sent

    expected = batch_records(tmp_path)
    scored = [key for topic, key, _ in per_event if topic == "scored"]
    assert len(scored) == len(set(scored)) == 38 and "t21" not in scored  # t21 late, t1 repeated: not scored
    assert 0 < sum(topic == "alerts" for topic, _, _ in per_event) < 38
    assert sorted(map(without_clock, per_event)) == sorted(map(without_clock, expected))
    assert scorer.skipped == 0 and sum(scorer.timings.values()) > 0
