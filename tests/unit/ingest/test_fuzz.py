"""Fuzzing the parse and validate path (`parse_records`) with 10,000 generated hostile records:
hypothesis draws the records (every field may be absent, null, of any JSON type, an extreme number,
NaN, a date in year 1 or 9999, text with control characters or lone surrogates; whole values may be
broken JSON), and one Spark job parses them all. Nothing may crash, nothing may be lost or doubled,
every record is accepted or quarantined with a known reason, and what is accepted converts to
Python and pandas, which the silver batch, the scorer and the features build use."""

from __future__ import annotations

import json
import re
from datetime import datetime, time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lakehouse.contract.schemas import TRANSACTION_FIELDS
from lakehouse.ingest.transforms import parse_records
from tests.unit.ingest.test_transforms import BRONZE, GOOD

RECORDS = 10_000
KNOWN_REASON = re.compile(
    r"malformed_json|(missing_field|bad_type|bad_id|not_finite|out_of_range|future_time):[a-z_]+|"
    r"negative_amount|absurd_amount|unknown_currency|invalid_ip"
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["NaN", "-Infinity", "1e400", " ", "", "\x00", "\ud800", "0x1F", "12,50", "EUR", "::1"]),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)).map(
        lambda d: d.isoformat() + "Z"
    ),
    st.sampled_from(["0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999Z", "+275760-09-13T00:00:00Z", "2026-02-30"]),
)
values = st.one_of(scalars, st.lists(scalars, max_size=2), st.dictionaries(st.text(max_size=3), scalars, max_size=2))
#: A good transaction with some fields replaced by anything, some removed, and extra ones added.
records = st.builds(
    lambda changes, dropped, extra: json.dumps(
        {**{k: v for k, v in GOOD.items() if k not in dropped}, **changes, **extra}, allow_nan=True
    ),
    st.dictionaries(st.sampled_from(list(GOOD)), values, max_size=4),
    st.sets(st.sampled_from(list(GOOD)), max_size=2),
    st.dictionaries(st.text(max_size=5), values, max_size=1),
)
#: Mostly well-formed JSON (the rules see it), some cut short or not JSON at all.
raw = st.integers(0, 9).flatmap(
    lambda k: records if k < 7 else records.map(lambda v: v[: len(v) // 2]) if k < 9 else st.text(max_size=30)
)


def draw_records(count: int) -> list[str]:
    drawn: list[str] = []

    @settings(
        max_examples=count,
        database=None,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(raw)
    def collect(value: str) -> None:
        drawn.append(value)

    collect()
    return drawn[:count]


def test_ten_thousand_hostile_records_are_each_accepted_or_quarantined_with_a_reason(spark, settings) -> None:
    values = draw_records(RECORDS)
    assert len(values) == RECORDS
    now = datetime(2026, 10, 2)
    bronze = spark.createDataFrame(
        [("U1", v, "transaction_stream", 0, i, now, now, now.date()) for i, v in enumerate(values)], BRONZE
    )

    parsed = parse_records(bronze, TRANSACTION_FIELDS, settings.data).persist()
    reasons = parsed.select("offset", "quarantine_reason").collect()
    accepted = parsed.where("quarantine_reason IS NULL").select(
        "event_time", "event_date", "amount", "transaction_id", "user_id", "merchant_id", "currency", "device_ip"
    )

    assert sorted(r.offset for r in reasons) == list(range(RECORDS))  # nothing lost, nothing doubled
    unknown = [(r.offset, r.quarantine_reason) for r in reasons if r.quarantine_reason is not None]
    unknown = [(o, reason, values[o]) for o, reason in unknown if not KNOWN_REASON.fullmatch(reason)]
    assert unknown == [], unknown[:5]
    frame = accepted.toPandas()  # accepted rows must convert: the silver batch and the scorer do
    rows = accepted.collect()
    assert len(frame) == len(rows) > 0
    low, high = (datetime.combine(d, time()) for d in settings.data.time_range)
    assert all(low <= r.event_time < high and 0 < r.amount < float("inf") for r in rows)
    assert all(r.user_id.strip() == r.user_id != "" for r in rows)
    parsed.unpersist()
