"""The offline batch on disk (``fraudlake simulate``): Parquet files the rest of the platform reads.

<out>/transactions.parquet   the contract's transaction fields, one row group per day
<out>/users.parquet          every version of every user profile in the span (updated_at)
<out>/merchants.parquet
<out>/labels.parquet         the label events reported by the batch's end (a chargeback file as of then)
<out>/manifest.json          seed, span, counts per scenario: what the files hold
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from lakehouse.contract.schemas import (
    LABEL_EVENT_FIELDS,
    MERCHANT_FIELDS,
    TRANSACTION_FIELDS,
    USER_FIELDS,
    arrow_schema,
)
from lakehouse.simulator.entities import DAY_MS
from lakehouse.simulator.labels import LabelQueue, label_events, label_json, label_rng
from lakehouse.simulator.simulation import EntityEvent, Simulation, midnight_ms


def write_offline_batch(
    simulation: Simulation, out_dir: Path, on_day: Callable[[int], None] | None = None
) -> dict[str, object]:
    """Write the batch of ``simulation.sim.days`` days; returns (and writes) the manifest."""
    out_dir.mkdir(parents=True, exist_ok=True)
    sim = simulation.sim
    scenarios: Counter[str] = Counter()
    total = 0
    schema = arrow_schema(TRANSACTION_FIELDS)
    labels = LabelQueue()
    with pq.ParquetWriter(out_dir / "transactions.parquet", schema) as writer:
        for day, batch in simulation.offline_batch():
            labels.add(label_events(batch, sim.labels, label_rng(simulation.traffic_seed, day)))
            columns = simulation.transaction_columns(batch)
            columns["timestamp"] = batch.ts_ms  # epoch ms → timestamp[ms, UTC]
            arrays = [pa.array(columns[f.name], type=schema.field(f.name).type) for f in TRANSACTION_FIELDS]
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
            scenarios.update(s for s in batch.scenario.tolist() if s is not None)
            total += len(batch)
            if on_day:
                on_day(day)

    users = simulation.users_at(0) + [e for day in range(sim.days) for e in simulation.user_events(day)]
    _write_entities(users, USER_FIELDS, out_dir / "users.parquet")
    merchants = simulation.merchant_records()
    _write_entities(merchants, MERCHANT_FIELDS, out_dir / "merchants.parquet")
    reported = labels.due(midnight_ms(simulation.start) + sim.days * DAY_MS)
    records = [json.loads(r) for r in label_json(reported, simulation.population.user_id)]
    _write_entities([EntityEvent(0, "labels", "", r) for r in records], LABEL_EVENT_FIELDS, out_dir / "labels.parquet")

    manifest: dict[str, object] = {
        "seed": sim.seed,
        "traffic_seed": simulation.traffic_seed,
        "start": simulation.start.isoformat(),
        "days": sim.days,
        "transactions": total,
        "fraud": sum(scenarios.values()),
        "fraud_rate": sim.fraud_rate,
        "scenarios": dict(sorted(scenarios.items())),
        "users": len({e.key for e in users}),
        "user_versions": len(users),
        "merchants": len(merchants),
        "labels": len(reported),
        "labels_reported_later": len(labels.pending),
    }
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def _write_entities(events: list[EntityEvent], fields, path: Path) -> None:
    schema = arrow_schema(fields)
    rows = [e.record for e in events]

    def column(field) -> pa.Array:
        values = [r.get(field.name) for r in rows]
        target = schema.field(field.name).type
        # Times travel as ISO text in the records; Arrow parses them into typed columns.
        if field.kind in ("timestamp", "date"):
            return pa.array(values, pa.string()).cast(target)
        return pa.array(values, type=target)

    pq.write_table(pa.Table.from_arrays([column(f) for f in fields], schema=schema), path)
