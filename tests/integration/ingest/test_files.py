"""`fraudlake import` on outside files: a CSV with its own column names, no device_ip, no currency
and no user or merchant files lands in silver through the streams' validation (bad rows in
quarantine with their reason, counts reconcile), and features are computed for it."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from lakehouse.cli import app
from lakehouse.contract.tables import table_names
from lakehouse.errors import ConfigError
from lakehouse.features.materialize import build_features
from lakehouse.ingest.files import import_files, parse_mapping
from lakehouse.ingest.queries import run_ingest
from lakehouse.ingest.reconcile import reconcile
from lakehouse.platform.isolation import drop_schemas, isolated

pytestmark = pytest.mark.integration

CSV = """txn,customer,shop,when,value,label
a1,c1,s1,2026-10-01 09:00:00,12.50,0
a2,c1,s2,2026-10-01 10:30:00,80.00,0
a3,c2,s1,2026-10-02 11:00:00,-5.00,0
a4,c2,s1,not a time,20.00,0
a5,c1,s1,2026-10-02 12:00:00,999.00,1
a1,c1,s1,2026-10-01 09:00:00,12.50,0
"""
MAPPING = [
    "transaction_id=txn",
    "user_id=customer",
    "merchant_id=shop",
    "timestamp=when",
    "amount=value",
    "is_fraud=label",
]


@pytest.fixture
def own_schemas(settings, spark):
    own = isolated(settings)
    yield own
    drop_schemas(spark, own)


def test_import_csv_with_a_mapping_and_missing_optional_fields(own_schemas, spark, tmp_path) -> None:
    path = tmp_path / "payments.csv"
    path.write_text(CSV)
    [report] = import_files(
        spark, own_schemas, transactions=str(path), mapping=parse_mapping(MAPPING), currency="EUR", name="shop_export"
    )

    names = table_names(own_schemas)
    assert (report.rows, report.accepted, report.quarantined) == (6, 3, 3)
    reasons = sorted(r.reason for r in spark.table(names.quarantine).collect())
    assert reasons == ["bad_type:timestamp", "duplicate", "negative_amount"]
    silver = {r.transaction_id: r for r in spark.table(names.silver("transactions")).collect()}
    assert set(silver) == {"a1", "a2", "a5"}
    assert silver["a5"].is_fraud is True and silver["a1"].currency == "EUR" and silver["a1"].device_ip is None
    assert all(r.ok for r in reconcile(spark, own_schemas) if r.stream == "transactions")

    build_features(spark, own_schemas)
    features = {r.transaction_id: r for r in spark.table(names.features).collect()}
    assert features["a2"].user_tx_count_24h == 1 and features["a2"].home_distance_km is None  # no user file
    assert features["a1"].is_new_device_ip is None


def test_an_import_then_the_stream_keeps_each_imported_row_once_and_drops_a_streamed_repeat(
    kafka_broker, spark, tmp_path
) -> None:
    """The streams' silver query reads bronze, which the import also wrote: it must not land the
    imported rows a second time, and a streamed transaction that repeats an imported id is a
    duplicate (the imported rows' batch id is a wall clock, above any stream batch's)."""
    from lakehouse.operations.smoke import produce_json
    from lakehouse.platform.kafka.topics import delete_topics, ensure_topics

    settings = isolated(kafka_broker, topics=True, checkpoint_dir=tmp_path / "checkpoints")
    ensure_topics(settings.kafka)
    try:
        path = tmp_path / "payments.csv"
        path.write_text(CSV)
        import_files(spark, settings, transactions=str(path), mapping=parse_mapping(MAPPING), currency="EUR")
        streamed = [
            {"transaction_id": tx, "user_id": "c1", "merchant_id": "s2", "timestamp": f"2026-10-03T0{hour}:00:00Z"}
            | {"amount": 80.0, "currency": "EUR"}
            for tx, hour in (("a2", 1), ("b1", 2))
        ]
        produce_json(settings.kafka, settings.kafka.topics.transactions.name, streamed, key_field="user_id")
        run_ingest(spark, settings, once=True)

        names = table_names(settings)
        silver = [r.transaction_id for r in spark.table(names.silver("transactions")).collect()]
        assert sorted(silver) == ["a1", "a2", "a5", "b1"]
        repeat = spark.table(names.quarantine).where("_topic NOT LIKE 'import:%'").collect()
        assert [(r.reason, json.loads(r.value)["transaction_id"]) for r in repeat] == [("duplicate", "a2")]
        checked = [r for r in reconcile(spark, settings) if r.stream == "transactions"]
        assert all(r.ok for r in checked), checked
    finally:
        delete_topics(settings.kafka, [t.name for t in settings.kafka.topics.all()])
        drop_schemas(spark, settings)


def test_import_names_a_missing_required_column_and_a_bad_mapping(own_schemas, spark, tmp_path) -> None:
    """A wrong mapping of one file fails the import before any file is written (the users file
    beside it, imported first, was landed before: a defect)."""
    path = tmp_path / "payments.csv"
    path.write_text(CSV)
    users = tmp_path / "users.csv"
    users.write_text("customer,updated_at\nc1,2026-09-30T00:00:00Z\n")  # user_id=customer: the same mapping
    with pytest.raises(ConfigError, match="'amount'"):
        import_files(
            spark,
            own_schemas,
            users=str(users),
            transactions=str(path),
            mapping=parse_mapping(MAPPING[:4]),
            currency="EUR",
        )
    names = table_names(own_schemas)

    def rows(table: str) -> int:
        return spark.table(table).count() if spark.catalog.tableExists(table) else 0

    assert rows(names.bronze("users")) == rows(names.bronze("transactions")) == 0
    with pytest.raises(ConfigError, match="not a contract field"):
        parse_mapping(["amout=value"])
    result = CliRunner().invoke(app, ["import", "--transactions", str(path), "--map", "amount=value"])
    assert result.exit_code != 0


MIXED_OFFSETS = """txn,customer,shop,when,value
m1,c1,s1,2026-10-01T10:00:00Z,10.00
m2,c1,s1,2026-10-01T12:00:00+05:00,11.00
m3,c1,s1,2026-10-01T11:00:00Z,12.00
"""
MIXED_MAPPING = parse_mapping(["transaction_id=txn", "user_id=customer", "merchant_id=shop", "timestamp=when"])


def test_import_is_idempotent_resumes_after_a_crash_and_orders_rows_by_instant(
    own_schemas, spark, tmp_path, monkeypatch
) -> None:
    """Defects: a re-import doubled bronze and broke reconcile for good, an import stopped between
    bronze and silver could not be finished, and rows were ordered by their timestamp text, so
    12:00+05:00 (07:00 UTC) after 11:00Z was a false late_event."""
    from lakehouse.ingest.files import AFTER_BRONZE
    from lakehouse.platform import faults

    path = tmp_path / "mixed.csv"
    path.write_text(MIXED_OFFSETS)
    names = table_names(own_schemas)

    def run(file=path):
        return import_files(
            spark, own_schemas, transactions=str(file), mapping=dict(MIXED_MAPPING, amount="value"), currency="EUR"
        )

    monkeypatch.setenv(faults.FAULT_ENV, AFTER_BRONZE)
    monkeypatch.setenv(faults.MODE_ENV, "raise")
    with pytest.raises(faults.InjectedFault):
        run()
    monkeypatch.delenv(faults.FAULT_ENV)
    assert spark.table(names.bronze("transactions")).count() == 3
    assert not next(r for r in reconcile(spark, own_schemas) if r.stream == "transactions").ok

    [resumed] = run()  # the same import again finishes what the crash left

    assert (resumed.rows, resumed.accepted, resumed.quarantined, resumed.already) == (3, 3, 0, False)
    silver = spark.table(names.silver("transactions")).orderBy("_offset").collect()
    assert [r.transaction_id for r in silver] == ["m2", "m1", "m3"]
    assert all(r.ok for r in reconcile(spark, own_schemas) if r.stream == "transactions")

    [again] = run()

    assert (again.rows, again.accepted, again.already) == (3, 3, True)
    assert spark.table(names.bronze("transactions")).count() == 3
    assert spark.table(names.silver("transactions")).count() == 3

    other = tmp_path / "other" / "mixed.csv"  # the same default name (the file's stem), other rows
    other.parent.mkdir()
    other.write_text(MIXED_OFFSETS.replace("12.00", "13.00"))
    with pytest.raises(ConfigError, match="another --name"):
        run(other)
    assert spark.table(names.bronze("transactions")).count() == 3


def test_a_pandas_parquet_file_with_nanosecond_timestamps_imports(own_schemas, spark, tmp_path) -> None:
    """Defect: pandas writes nanosecond timestamps by default, and Spark refused the whole file
    (Illegal Parquet type: INT64 (TIMESTAMP(NANOS,false)))."""
    from datetime import datetime

    import pandas as pd
    import pyarrow.parquet as pq

    path = tmp_path / "payments.parquet"
    pd.DataFrame(
        {
            "txn": ["p1", "p2"],
            "customer": ["c1", "c1"],
            "shop": ["s1", "s1"],
            "when": pd.to_datetime(["2026-10-01 09:00:00.123456789", "2026-10-01 10:00:00.000000000"]),
            "value": [12.5, 20.0],
        }
    ).to_parquet(path)
    assert str(pq.read_schema(path).field("when").type) == "timestamp[ns]"

    [report] = import_files(
        spark, own_schemas, transactions=str(path), mapping=dict(MIXED_MAPPING, amount="value"), currency="EUR"
    )

    assert (report.rows, report.accepted) == (2, 2)
    silver = spark.table(table_names(own_schemas).silver("transactions"))
    # Event times in the contract are milliseconds, as in the stream.
    assert sorted(r.event_time for r in silver.collect()) == [
        datetime(2026, 10, 1, 9, 0, 0, 123000),
        datetime(2026, 10, 1, 10),
    ]
