"""How `fraudlake import` turns a file's rows into contract JSON (pure, on static DataFrames):
every way a time is written becomes the same UTC instant, and rows are ordered by that instant."""

from __future__ import annotations

import json
from datetime import datetime

from lakehouse.ingest.files import as_contract_json

SAME_INSTANT = "2026-10-01T07:00:00.000Z"
WRITTEN = [
    "2026-10-01T07:00:00Z",
    "2026-10-01T12:00:00+05:00",
    "2026-10-01 07:00:00",
    "1790838000",  # epoch seconds
    "1790838000000",  # milliseconds
    "1790838000000000",  # microseconds
    "1790838000000000000",  # nanoseconds
    "1790838000.0",
]


def test_every_way_of_writing_a_time_gives_the_same_utc_instant_and_order(spark) -> None:
    rows = spark.createDataFrame(
        [(f"t{i}", "u1", "m1", when, "9.5") for i, when in enumerate(WRITTEN)] + [("late", "u1", "m1", "oops", "1")],
        "transaction_id string, user_id string, merchant_id string, timestamp string, amount string",
    )

    out = as_contract_json(rows, "transactions", {}, currency="EUR", source="test").collect()

    stamps = [json.loads(r.value)["timestamp"] for r in out]
    assert stamps == [SAME_INSTANT] * len(WRITTEN) + ["oops"]  # text that is no time stays, for bad_type
    assert {r._order for r in out[:-1]} == {datetime(2026, 10, 1, 7, 0)} and out[-1]._order is None
