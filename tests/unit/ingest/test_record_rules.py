"""The Python twin of parse_records (`lakehouse.ingest.record_rules`) against Spark itself: each
hostile record goes through parse_records (one static DataFrame, one action) and through
check_transaction, and both must give the same reason, and for a valid record the same values."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from lakehouse.contract.schemas import TRANSACTION_FIELDS
from lakehouse.ingest.record_rules import EPOCH, check_transaction, field_of
from lakehouse.ingest.transforms import bronze_records, parse_records
from tests.helpers import GOOD_TRANSACTION

pytestmark = [pytest.mark.unit]

KAFKA_TIMESTAMP = datetime(2026, 10, 2, tzinfo=UTC)
GOOD = GOOD_TRANSACTION
GOOD_TEXT = json.dumps(GOOD)
STRINGS = ["transaction_id", "user_id", "merchant_id", "currency", "device_ip", "fraud_scenario"]


def good(**changes) -> dict:
    """GOOD with fields changed; ``...`` removes one."""
    return {k: v for k, v in {**GOOD, **changes}.items() if v is not ...}


def raw_json(**changes: str) -> str:
    """GOOD as JSON text with fields set to raw JSON text (what json.dumps does not write)."""
    text = json.dumps({**GOOD, **{k: f"@{k}@" for k in changes}})
    for k, v in changes.items():
        text = text.replace(f'"@{k}@"', v)
    return text


CASES: list[bytes | str | dict] = [
    # Valid, in Spark's reading of them.
    GOOD,
    GOOD_TEXT.encode(),
    good(transaction_id=12345, user_id=12.5, merchant_id=True),  # ids as numbers: their JSON text
    good(amount="12.5"),
    good(amount=" 12 ", is_fraud="  TRUE "),
    good(amount="0x1p3", is_fraud="yes"),
    good(amount="12.5d", is_fraud=1),
    good(amount="1e3", is_fraud="n"),
    good(timestamp="2026-10-01T12:00:00"),  # no zone: the session's (UTC)
    good(timestamp="2026-10-01T12:00:00+02:00"),
    good(timestamp="2026-10-01 12:00:00.123456789"),  # 9 fraction digits: cut to 6
    good(timestamp="2026-10-01T12:00:00.5 Europe/Paris"),
    good(timestamp="2026-03-29T02:30:00 Europe/Paris"),  # in the spring gap
    good(timestamp="2026-10-01T12:00:00 PST"),
    good(timestamp="2026-10-01T12:00:00GMT+2"),
    good(timestamp="2026-1-1T1:2:3"),
    good(timestamp="2026"),
    good(timestamp=2026),  # a JSON number: its text "2026", a year
    good(timestamp="  2026-10-01T12:00:00Z\t"),
    good(device_ip="2001:db8::1", fraud_scenario={"kind": ["card", 2.50, None], "x": "é\u0001"}),
    good(device_ip="1.2.3.4\n"),  # Java's $ matches before a final line terminator
    good(device_ip=None, is_fraud=None),
    good(device_ip=..., is_fraud=...),
    good(extra={"nested": [1, 2]}, new_flag=True, user_id="Ünïcødé-😀"),
    good(transaction_id="T" * 256),
    GOOD_TEXT + " trailing garbage",  # Jackson stops after the object
    GOOD_TEXT.replace('"', "'"),  # single quotes
    GOOD_TEXT[:-1] + ', "user_id": "U2"}',  # a repeated key: the last wins
    raw_json(user_id='"U\\ud800"'),  # a lone surrogate: "U?"
    raw_json(merchant_id='{"id": "M1"}', extra="NaN"),  # try_parse_json refuses NaN: not seen as an object
    raw_json(extra="[" * 999 + "]" * 999),  # 1000 levels with the object: Jackson's limit
    good(_corrupt_record="x"),  # not parse_records' corrupt-record column: ignored
    # malformed_json
    b"\xff\xfe\x00garbage",
    b"",
    "   ",
    json.dumps([GOOD]),
    "null",
    "12",
    GOOD_TEXT[:40],
    "\ufeff" + GOOD_TEXT,
    raw_json(extra="INF"),
    raw_json(extra="[" * 1000 + "]" * 1000),  # 1001 levels
    raw_json(extra="1" * 1001),  # a number longer than Jackson reads
    raw_json(extra="-NaN"),
    # missing_field
    {},
    good(merchant_id=...),
    good(amount=None),
    GOOD_TEXT[:-1] + ', "user_id": null}',
    # bad_type
    good(amount="12,50 EUR"),
    good(amount=float("nan")),  # a NaN token: Jackson writes it quoted, not a number
    raw_json(amount="1e400"),  # Infinity, written quoted
    good(timestamp="yesterday at noon"),
    good(timestamp=2026.0),
    good(timestamp="2026-02-30"),
    good(timestamp="2026-10-01T12:00Z"),
    good(timestamp="+300000-01-01"),  # beyond a long of microseconds
    good(timestamp="2026-10-01T12:00:00 Mars/Olympus"),
    good(timestamp="2026-10-01T12:00:00+19:00"),
    good(is_fraud="maybe"),
    good(is_fraud=2),
    good(merchant_id={"id": "M1"}),
    good(user_id=["U1"]),
    good(user_id=["U1"], transaction_id=" T1"),  # transaction_id's id rules come first
    # bad_id
    good(user_id=""),
    good(user_id=" U1"),
    good(user_id="U1\u00a0"),
    good(user_id="\u2028U1"),
    good(merchant_id="M\u00851"),
    good(merchant_id="M\u00001"),
    good(transaction_id="T" * 257),
    GOOD_TEXT.encode().replace(b'"U1"', b'"U\xff"'),
    # not_finite
    good(amount="NaN"),
    good(amount="-Infinity"),
    good(amount=" inf "),
    good(amount="1e400"),
    # out_of_range
    good(timestamp="0001-01-01T00:00:00Z"),
    good(timestamp="9999-12-31T23:59:59.999Z"),
    good(timestamp="2200-01-01T00:00:00Z"),
    good(timestamp="1969-12-31T23:59:59.999999Z"),
    good(timestamp="+200000-01-01"),
    good(timestamp="-0001-01-01 Europe/Paris"),
    # future_time
    good(timestamp="2026-10-02T00:10:00.001Z"),
    good(timestamp="2026-10-02T00:10:00Z"),  # exactly max_ahead_minutes: valid
    good(timestamp="2199-12-31"),
    # the value rules
    good(amount=-3.0),
    good(amount=0),
    good(amount="-0"),
    good(amount=5e9),
    good(currency="XBT"),
    good(currency="eur"),
    good(currency=978),
    good(device_ip="300.12.7.1"),
    good(device_ip="1.2.3.4 "),
    good(device_ip=1.5),
    good(device_ip={"ip": "1.2.3.4"}),
]


def spark_rows(spark, contract, records: list) -> list:
    """parse_records over the records as Kafka values (one action)."""
    from pyspark.sql import functions as F

    values = [r if isinstance(r, bytes) else (json.dumps(r) if isinstance(r, dict) else r).encode() for r in records]
    kafka = spark.createDataFrame(
        [(b"U1", v, "transaction_stream", 0, i, KAFKA_TIMESTAMP) for i, v in enumerate(values)],
        "key BINARY, value BINARY, topic STRING, partition INT, offset BIGINT, timestamp TIMESTAMP",
    )
    parsed = parse_records(bronze_records(kafka), TRANSACTION_FIELDS, contract)
    columns = [*STRINGS, "amount", "is_fraud", F.unix_micros("event_time").alias("event_micros")]
    rows = parsed.select("offset", "quarantine_reason", *columns).collect()  # no shuffle: in offset order
    assert [row.offset for row in rows] == list(range(len(records)))
    return rows


def differences(spark, contract, records: list) -> list[str]:
    found = []
    for record, row in zip(records, spark_rows(spark, contract, records), strict=True):
        checked = check_transaction(record, kafka_timestamp=KAFKA_TIMESTAMP, contract=contract)
        ours: dict = {"reason": checked.reason}
        theirs: dict = {"reason": row.quarantine_reason}
        if row.quarantine_reason is None and checked.values is not None:
            ours |= {k: checked.values[k] for k in [*STRINGS, "amount", "is_fraud"]}
            ours["event_micros"] = (checked.values["timestamp"] - EPOCH) // timedelta(microseconds=1)
            theirs |= {k: row[k] for k in [*STRINGS, "amount", "is_fraud", "event_micros"]}
        if ours != theirs:
            found.append(f"{record!r:.120}\n  spark:  {theirs}\n  python: {ours}")
    return found


def test_check_transaction_gives_parse_records_reasons_and_values(spark, settings) -> None:
    found = differences(spark, settings.data, CASES)
    assert not found, "\n".join(found)
    # Every rule is met at least once (and so is a valid record).
    reasons = {check_transaction(r, kafka_timestamp=KAFKA_TIMESTAMP, contract=settings.data).reason for r in CASES}
    every = {None, "malformed_json", "missing_field:amount", "bad_type:amount", "bad_type:timestamp"}
    every |= {"bad_type:is_fraud", "bad_type:user_id", "bad_id:user_id", "not_finite:amount", "out_of_range:timestamp"}
    every |= {"future_time:timestamp", "negative_amount", "absurd_amount", "unknown_currency", "invalid_ip"}
    assert every <= reasons, every - reasons


def test_field_of_names_the_field_of_a_reason() -> None:
    expected = {"missing_field:amount": "amount", "bad_id:user_id": "user_id", "bad_type:timestamp": "timestamp"}
    expected |= {"negative_amount": "amount", "absurd_amount": "amount", "unknown_currency": "currency"}
    expected |= {"invalid_ip": "device_ip", "malformed_json": None}
    assert {reason: field_of(reason) for reason in expected} == expected


# Generated records: every field may be replaced by values near the rules' edges.
_texts = st.text(st.characters(codec="utf-8"), max_size=6)
_nice_floats = st.sampled_from([1.5, 0.25, 1e10, 1e-5, -0.0, 100.0])  # Java writes these as Python does
_ids = st.one_of(
    _texts,
    st.integers(-(10**30), 10**30),
    _nice_floats,
    st.booleans(),
    st.sampled_from(["", " ", "U1\u00a0", "\u3000", "U\u0085", "[U1]", "{", "x" * 257]),
    st.lists(_texts, max_size=2),
    st.dictionaries(_texts, _texts, max_size=1),
)
_zones = st.sampled_from(["", "Z", "z", "+02:00", "-0530", "+2", " Europe/Paris", " PST", "UTC", "GMT+2", " EST"])
_times = st.one_of(
    st.builds(
        lambda d, sep, zone: d.isoformat(sep=sep) + zone,
        st.datetimes(datetime(1, 1, 1), datetime(9999, 12, 31, 23, 59, 59)),
        st.sampled_from(["T", " "]),
        _zones,
    ),
    st.builds(
        lambda d, zone: d.isoformat(timespec="milliseconds") + zone,
        st.datetimes(datetime(2026, 10, 1, 23), datetime(2026, 10, 2, 1)),
        _zones,
    ),
    st.sampled_from(["2026", "2026-10", "20261001", "2026-10-01T", "+02026-10-01", "2026-10-01T25:00:00", " "]),
    st.integers(0, 30000),
)
_amounts = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers(-5, 2 * 10**6),
    st.sampled_from(["12.5", " 1 ", "1d", "0x1p3", "inf", "-0", "1e400", "12,5", "+NaN", "-nan", "Infinity", ""]),
)
_values = {
    "transaction_id": _ids,
    "user_id": _ids,
    "merchant_id": _ids,
    "timestamp": _times,
    "amount": _amounts,
    "currency": st.sampled_from(["EUR", "USD", "XBT", "eur", " EUR", 978]),
    "device_ip": st.one_of(st.ip_addresses().map(str), st.sampled_from(["::", "1.2.3", "01.2.3.4", "::1\n", 7])),
    "is_fraud": st.one_of(st.booleans(), st.sampled_from(["yes", "no", " t ", "maybe", "TRUE", 0, 1, 2, 1.0])),
    "fraud_scenario": st.one_of(_ids, st.none()),
}
_records = st.builds(
    lambda changes, dropped, nulls: json.dumps(
        {k: None if k in nulls else v for k, v in {**GOOD, **changes}.items() if k not in dropped}
    ),
    st.fixed_dictionaries({}, optional=_values),
    st.sets(st.sampled_from(list(GOOD)), max_size=1),
    st.sets(st.sampled_from(list(GOOD)), max_size=1),
)
_bodies = st.integers(0, 19).flatmap(
    lambda k: (
        _records
        if k < 17
        else _records.map(lambda v: v[: len(v) // 2])
        if k < 18
        else _records.map(lambda v: v.replace('"', "'"))
        if k < 19
        else _records.map(lambda v: v.encode().replace(b"1", b"\xc3"))
    )
)


def draw(count: int) -> list:
    drawn: list = []

    @hypothesis_settings(
        max_examples=count, database=None, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
    )
    @given(_bodies)
    def collect(body) -> None:
        drawn.append(body)

    collect()
    return drawn[:count]


def test_generated_records_get_the_same_reasons_and_values(spark, settings) -> None:
    found = differences(spark, settings.data, draw(200))
    assert not found, f"{len(found)} differ:\n" + "\n".join(found[:15])
