"""Bronze → silver transforms on static DataFrames: one reason per bad record, late and duplicate
decided by the log alone."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from lakehouse.contract.schemas import LABEL_EVENT_FIELDS, TRANSACTION_FIELDS, USER_FIELDS
from lakehouse.ingest.transforms import (
    bronze_records,
    duplicates,
    late_or_duplicate,
    oldest_to_deduplicate,
    parse_records,
    with_lateness,
)
from tests.helpers import GOOD_TRANSACTION

GOOD = GOOD_TRANSACTION
BRONZE = (
    "key STRING, value STRING, topic STRING, partition INT, offset BIGINT, kafka_timestamp TIMESTAMP, "
    "ingested_at TIMESTAMP, ingest_date DATE"
)


def bronze(spark, values: list[str | None], partition: int = 0):
    now = datetime(2026, 10, 2)
    rows = [("U1", v, "transaction_stream", partition, i, now, now, now.date()) for i, v in enumerate(values)]
    return spark.createDataFrame(rows, BRONZE)


def with_changes(**changes) -> str:
    record = {**GOOD, **changes}
    return json.dumps({k: v for k, v in record.items() if v is not ...})


CASES = [
    (with_changes(), None),
    (with_changes(extra_field={"nested": [1, 2]}, new_flag=True), None),  # schema drift is ignored
    (with_changes(device_ip="2001:db8::1"), None),
    (with_changes(device_ip=None), None),  # device_ip is optional
    ('{"transaction_id": "T1", "amount": ', "malformed_json"),
    ("[1, 2, 3]", "malformed_json"),
    ("", "malformed_json"),
    (None, "malformed_json"),
    (with_changes(merchant_id=...), "missing_field:merchant_id"),
    (with_changes(amount=None), "missing_field:amount"),
    (with_changes(amount="12,50 EUR"), "bad_type:amount"),
    (with_changes(timestamp="yesterday at noon"), "bad_type:timestamp"),
    (with_changes(is_fraud="maybe"), "bad_type:is_fraud"),
    (with_changes(amount=-3.0), "negative_amount"),
    (with_changes(amount=0), "negative_amount"),
    (with_changes(amount=5e9), "absurd_amount"),
    (with_changes(currency="XBT"), "unknown_currency"),
    (with_changes(device_ip="300.12.7.1"), "invalid_ip"),
    (with_changes(device_ip="not-an-ip"), "invalid_ip"),
    (with_changes(merchant_id=..., amount=-1), "missing_field:merchant_id"),  # the first rule wins
    # Hostile values that Spark holds but Python's datetime, pandas or the features do not.
    (with_changes(timestamp="0001-01-01T00:00:00.000Z"), "out_of_range:timestamp"),
    (with_changes(timestamp="9999-12-31T23:59:59.999Z"), "out_of_range:timestamp"),
    (with_changes(timestamp="1600-02-29T00:00:00Z"), "out_of_range:timestamp"),
    (with_changes(timestamp="2200-01-01T00:00:00Z"), "out_of_range:timestamp"),  # the range ends before it
    (with_changes(timestamp="2199-12-31T23:59:59.999Z"), "future_time:timestamp"),  # in range, not yet sent
    # The Kafka timestamp is 2026-10-02T00:00: data.max_ahead_minutes (10) later is the last plausible time.
    (with_changes(timestamp="2026-10-02T00:10:00.000Z"), None),
    (with_changes(timestamp="2026-10-02T00:10:00.001Z"), "future_time:timestamp"),
    (with_changes(timestamp="2026-10-02T00:30:00+05:00"), None),  # an instant: 2026-10-01T19:30Z
    (with_changes(amount=float("nan")), "bad_type:amount"),  # a bare NaN token: not JSON, not a number
    (with_changes(amount=float("inf")), "bad_type:amount"),
    (with_changes(amount="NaN"), "not_finite:amount"),  # a number as text, as many producers send
    (with_changes(amount="-Infinity"), "not_finite:amount"),
    # Ids: a blank one would pool unrelated payments into one history; an object is not an id.
    (with_changes(user_id=""), "bad_id:user_id"),
    (with_changes(user_id="   "), "bad_id:user_id"),
    (with_changes(user_id=" U1"), "bad_id:user_id"),
    (with_changes(merchant_id="M\u00001"), "bad_id:merchant_id"),
    # Defect (found by the fuzz test): whitespace that Spark's trim keeps and Python's strip removes.
    (with_changes(user_id="U1\u00a0"), "bad_id:user_id"),
    (with_changes(user_id="\u2028U1"), "bad_id:user_id"),
    (with_changes(user_id="U1\u0085"), "bad_id:user_id"),
    (with_changes(merchant_id="M\u00851"), "bad_id:merchant_id"),
    (with_changes(transaction_id="T" * 257), "bad_id:transaction_id"),
    (with_changes(merchant_id={"id": "M1"}), "bad_type:merchant_id"),
    (with_changes(user_id=["U1"]), "bad_type:user_id"),
    (with_changes(user_id="[U1]", merchant_id="{M1}", transaction_id=12345), None),  # odd text, numbers: ids
]


def test_parse_records_gives_each_record_one_reason(spark, settings) -> None:
    parsed = parse_records(bronze(spark, [v for v, _ in CASES]), TRANSACTION_FIELDS, settings.data)
    # Only the reasons come back to Python: a year-1 event time is not a Python datetime.
    reasons = [r.quarantine_reason for r in parsed.orderBy("offset").select("quarantine_reason").collect()]
    assert reasons == [expected for _, expected in CASES]


def test_bytes_that_are_not_utf8_never_stop_the_parse_and_land_somewhere(spark, settings) -> None:
    """Kafka values are bytes: invalid UTF-8 in a field or in the whole value is quarantined with a
    reason, never a crash, and the bronze value stays text (invalid bytes read as U+FFFD)."""
    good = with_changes().encode()
    values = [
        good,
        good.replace(b'"U1"', b'"U\xff\xfe"'),  # invalid bytes inside the user id
        b"\xff\xfe\x00garbage",  # not text at all
        good.replace(b'"EUR"', b'"\xc3"'),  # a cut multi-byte sequence in the currency
    ]
    now = datetime(2026, 10, 2)
    kafka = spark.createDataFrame(
        [(b"U1", v, "transaction_stream", 0, i, now) for i, v in enumerate(values)],
        "key BINARY, value BINARY, topic STRING, partition INT, offset BIGINT, timestamp TIMESTAMP",
    )

    parsed = parse_records(bronze_records(kafka), TRANSACTION_FIELDS, settings.data)
    rows = parsed.orderBy("offset").select("value", "quarantine_reason", "user_id").collect()

    # An id read with replacement characters could be anyone's: quarantined, not pooled.
    assert [r.quarantine_reason for r in rows] == [None, "bad_id:user_id", "malformed_json", "unknown_currency"]
    assert all(isinstance(r.value, str) for r in rows)


def test_parse_records_types_the_contract_fields(spark, settings) -> None:
    row = parse_records(bronze(spark, [with_changes()]), TRANSACTION_FIELDS, settings.data).first()
    assert row.event_time == datetime(2026, 10, 1, 12, 0)
    assert row.event_date.isoformat() == "2026-10-01"
    assert (row.amount, row.currency, row.is_fraud, row.fraud_scenario) == (12.5, "EUR", False, None)


def test_parse_records_users_need_updated_at_and_values_in_range(spark, settings) -> None:
    user = {
        "user_id": "U1",
        "age": 40,
        "gender": "F",
        "location": "Lyon, FR",
        "latitude": 45.7,
        "longitude": 4.8,
        "signup_date": "2020-01-02",
        "updated_at": "2026-10-01T00:00:00.000Z",
    }
    values = [
        json.dumps(user),
        json.dumps({k: v for k, v in user.items() if k != "updated_at"}),
        json.dumps({**user, "age": "old"}),
        json.dumps({**user, "latitude": 91.0}),
        json.dumps({**user, "longitude": "NaN"}),
        json.dumps({**user, "signup_date": "0001-01-01"}),
        json.dumps({**user, "updated_at": "9999-12-31T00:00:00Z"}),
        json.dumps({**user, "updated_at": "2026-11-01T00:00:00Z"}),  # a month after it reached Kafka
    ]
    reasons = [
        r.quarantine_reason
        for r in parse_records(bronze(spark, values), USER_FIELDS, settings.data)
        .orderBy("offset")
        .select("quarantine_reason")
        .collect()
    ]
    assert reasons == [
        None,
        "missing_field:updated_at",
        "bad_type:age",
        "out_of_range:latitude",
        "not_finite:longitude",
        "out_of_range:signup_date",
        "out_of_range:updated_at",
        "future_time:updated_at",
    ]


def transactions(spark, rows):
    """rows: (transaction_id, minute of event time, partition, offset)"""
    data = [
        (tid, datetime(2026, 10, 1, 12, 0).replace(hour=12 + m // 60, minute=m % 60), "tx", p, o)
        for tid, m, p, o in rows
    ]
    return spark.createDataFrame(
        data, "transaction_id STRING, event_time TIMESTAMP, topic STRING, partition INT, offset BIGINT"
    )


def decide(spark, batch, prior_max=(), prior_ids=(), delay_minutes=30.0, run=None) -> dict[str, str | None]:
    prior = spark.createDataFrame(list(prior_max), "topic STRING, partition INT, prior_max_event_time TIMESTAMP")
    ids = spark.createDataFrame([(i,) for i in prior_ids], "transaction_id STRING")
    out = late_or_duplicate(with_lateness(transactions(spark, batch), prior, delay_minutes, run), ids)
    return {f"{r.transaction_id}@{r.partition}:{r.offset}": r.quarantine_reason for r in out.collect()}


def test_a_record_from_the_far_past_does_not_widen_the_duplicate_check(spark) -> None:
    ancient = spark.createDataFrame([("ANCIENT", datetime(1971, 1, 1), "tx", 0, 2)], transactions(spark, []).schema)
    batch = transactions(spark, [("A", 100, 0, 0), ("B", 90, 0, 1)]).unionByName(ancient)
    prior = spark.createDataFrame([], "topic STRING, partition INT, prior_max_event_time TIMESTAMP")
    timed = with_lateness(batch, prior, 30.0)
    assert oldest_to_deduplicate(timed) == datetime(2026, 10, 1, 13, 30)  # B's time, not ANCIENT's
    all_late = [("A", 100, 0, 0), ("OLD", 0, 0, 1)]
    timed = with_lateness(transactions(spark, all_late), prior, 30.0).where("transaction_id = 'OLD'")
    assert oldest_to_deduplicate(timed) is None


@pytest.mark.parametrize("run", [None, 1, 2])  # one ordered pass, or runs of offsets (an import's)
def test_late_is_judged_against_earlier_offsets_of_the_same_partition(spark, run) -> None:
    batch = [("A", 100, 0, 0), ("B", 60, 0, 1), ("C", 75, 0, 2), ("D", 10, 1, 0), ("E", 0, 1, 1)]
    assert decide(spark, batch, run=run) == {
        "A@0:0": None,
        "B@0:1": "late_event",  # 40 minutes behind A, beyond the 30-minute delay
        "C@0:2": None,  # 25 minutes behind: out of order, still accepted
        "D@1:0": None,  # partition 1 has its own history
        "E@1:1": None,
    }


def test_late_uses_earlier_batches_of_the_partition(spark) -> None:
    prior = [("tx", 0, datetime(2026, 10, 1, 14, 0))]
    assert decide(spark, [("A", 60, 0, 5), ("B", 60, 1, 5)], prior_max=prior) == {"A@0:5": "late_event", "B@1:5": None}


def test_duplicates_keep_the_first_occurrence_and_earlier_batches_count(spark) -> None:
    batch = [("A", 0, 1, 7), ("A", 0, 0, 3), ("B", 1, 0, 4), ("K", 2, 0, 5)]
    assert decide(spark, batch, prior_ids=["K"]) == {
        "A@0:3": None,
        "A@1:7": "duplicate",
        "B@0:4": None,
        "K@0:5": "duplicate",
    }


@pytest.mark.parametrize("cut", [1, 2, 3])
def test_decisions_do_not_depend_on_how_the_log_is_cut_into_batches(spark, cut) -> None:
    log = [("A", 100, 0, 0), ("A", 100, 0, 1), ("B", 60, 0, 2), ("C", 90, 0, 3)]
    first = decide(spark, log[:cut])
    accepted = [tid for key, reason in first.items() if reason is None for tid in [key.split("@")[0]]]
    prior_max = [("tx", 0, max(datetime(2026, 10, 1, 12 + m // 60, m % 60) for _, m, _, _ in log[:cut]))]
    second = decide(spark, log[cut:], prior_max=prior_max, prior_ids=accepted)
    assert {**first, **second} == decide(spark, log)


def test_the_latest_view_takes_the_newest_version_and_a_tie_goes_to_the_later_kafka_record(spark) -> None:
    from lakehouse.contract.tables import latest_select_sql

    rows = [
        ("U1", datetime(2026, 1, 1), 0, 1),
        ("U1", datetime(2026, 3, 1), 0, 2),
        ("U1", datetime(2026, 2, 1), 0, 3),
        ("U2", datetime(2026, 1, 1), 0, 4),
        ("U2", datetime(2026, 1, 1), 0, 5),  # the same updated_at, sent again later
    ]
    spark.createDataFrame(
        rows, "user_id STRING, updated_at TIMESTAMP, _partition INT, _offset BIGINT"
    ).createOrReplaceTempView("versions_probe")
    select = latest_select_sql("versions_probe", "user_id", "updated_at", ["user_id", "_offset"])
    try:
        assert {(r.user_id, r._offset) for r in spark.sql(select).collect()} == {("U1", 2), ("U2", 5)}
    finally:
        spark.catalog.dropTempView("versions_probe")  # the session is shared: temp views show in every schema


LABEL = {
    "label_id": "L1",
    "transaction_id": "T1",
    "user_id": "U1",
    "label": "fraud",
    "source": "chargeback",
    "reported_at": "2026-10-01T12:00:00.000Z",
}


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({}, None),
        ({"source": "analyst", "analyst": "ana", "note": "called the customer"}, None),
        ({"label": "legitimate", "source": "customer_report"}, None),
        ({"label": "Fraud"}, "unknown_label"),
        ({"source": "rumour"}, "unknown_source"),
        ({"label_id": " "}, "bad_id:label_id"),
        ({"transaction_id": None}, "missing_field:transaction_id"),
        ({"reported_at": "0001-01-01T00:00:00Z"}, "out_of_range:reported_at"),
        ({"reported_at": "2026-11-01T00:00:00Z"}, "future_time:reported_at"),
    ],
)
def test_parse_records_label_events_take_known_labels_and_sources_only(spark, settings, changes, reason) -> None:
    parsed = parse_records(bronze(spark, [json.dumps({**LABEL, **changes})]), LABEL_EVENT_FIELDS, settings.data)
    assert parsed.select("quarantine_reason").first().quarantine_reason == reason


def test_a_repeated_label_event_is_a_duplicate_of_the_first(spark) -> None:
    rows = [("L1", 0, 3), ("L1", 1, 1), ("L2", 0, 4), ("K", 0, 5)]
    batch = spark.createDataFrame(rows, "label_id STRING, partition INT, offset BIGINT")
    prior = spark.createDataFrame([("K",)], "label_id STRING")
    out = {(r.label_id, r.partition): r.quarantine_reason for r in duplicates(batch, prior, "label_id").collect()}
    assert out == {("L1", 0): None, ("L1", 1): "duplicate", ("L2", 0): None, ("K", 0): "duplicate"}
