"""The GX suites of expectations/: they agree with the tables' code, refer only to known settings, and
catch what they are meant to catch when run for real (GX on Spark) on static DataFrames."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from lakehouse.contract.schemas import MERCHANT_FIELDS, TRANSACTION_FIELDS, USER_FIELDS
from lakehouse.contract.tables import feature_columns, silver_columns
from lakehouse.quality.suites import (
    QualityError,
    Validator,
    load_suite,
    suite_names,
    suite_parameters,
    with_derived_columns,
)

AS_OF = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
EXPECTED_SUITES = [
    "gold_transaction_features",
    "silver_merchants",
    "silver_transactions",
    "silver_users",
    "training_set",
]


def _parameters_used(node) -> set[str]:
    if isinstance(node, dict):
        if set(node) == {"$PARAMETER"}:
            return {node["$PARAMETER"]}
        return set().union(*(_parameters_used(v) for v in node.values())) if node else set()
    if isinstance(node, list):
        return set().union(*(_parameters_used(v) for v in node)) if node else set()
    return set()


def test_quality_suites_cover_every_table_and_match_the_tables_schemas(settings) -> None:
    assert suite_names(settings) == EXPECTED_SUITES
    table_columns = {
        "silver.transactions": [c for c, _ in silver_columns(TRANSACTION_FIELDS)],
        "silver.users": [c for c, _ in silver_columns(USER_FIELDS)],
        "silver.merchants": [c for c, _ in silver_columns(MERCHANT_FIELDS)],
        "gold.transaction_features": [c for c, _ in feature_columns()],
    }
    known = set(suite_parameters(settings))
    for name in EXPECTED_SUITES:
        suite = load_suite(settings, name)
        schema = [e for e in suite.document["expectations"] if e["type"] == "expect_table_columns_to_match_set"]
        assert len(schema) == 1, name
        assert schema[0]["kwargs"]["column_set"] == table_columns[suite.table] + list(suite.columns), name
        assert _parameters_used(suite.document) <= known, name


def test_quality_suites_parse_as_gx_suites(settings) -> None:
    import great_expectations as gx

    for name in EXPECTED_SUITES:
        suite = gx.ExpectationSuite(**load_suite(settings, name).document)
        assert len(suite.expectations) == load_suite(settings, name).expectation_count


def test_quality_unknown_or_broken_suite_is_a_clear_error(settings, tmp_path) -> None:
    with pytest.raises(QualityError, match=r"unknown suite 'silver_txn'.*silver_transactions"):
        load_suite(settings, "silver_txn")
    (tmp_path / "broken.json").write_text('{"name": "broken", ')
    (tmp_path / "nowhere.json").write_text(
        json.dumps({"name": "nowhere", "meta": {"fraudlake": {"table": "silver.nothing"}}, "expectations": []})
    )
    local = settings.model_copy(update={"quality": settings.quality.model_copy(update={"suites_dir": tmp_path})})
    with pytest.raises(QualityError, match=r"broken.json: not valid JSON"):
        load_suite(local, "broken")
    with pytest.raises(QualityError, match=r"meta.fraudlake.table must be one of .*'silver.nothing'"):
        load_suite(local, "nowhere")


def transactions(
    spark, n: int = 200, *, frauds: int = 4, null_users: int = 0, newest_hours_ago: float = 1.0, currency: str = "EUR"
):
    """``n`` silver transactions over the day before AS_OF, the newest ``newest_hours_ago`` old."""
    newest = AS_OF - timedelta(hours=newest_hours_ago)
    rows = []
    for i in range(n):
        at = newest - timedelta(minutes=5 * i)
        rows.append(
            (
                f"t{i}",
                None if i < null_users else f"u{i % 20}",
                f"m{i % 7}",
                at,
                10.0 + i,
                currency,
                "10.0.0.1",
                i < frauds,
                "card_testing" if i < frauds else None,
                at.date(),
                "transaction_stream",
                0,
                i,
                at,
                at,
                0,
            )
        )
    schema = ", ".join(f"`{c}` {t}" for c, t in silver_columns(TRANSACTION_FIELDS))
    return spark.createDataFrame(rows, schema)


@pytest.fixture(scope="module")
def validator(settings, tmp_path_factory) -> Validator:
    docs = tmp_path_factory.mktemp("data-docs")
    local = settings.model_copy(update={"quality": settings.quality.model_copy(update={"docs_dir": docs})})
    return Validator(local)


def check(validator, spark, frame):
    suite = load_suite(validator.settings, "silver_transactions")
    return validator.check(
        suite, with_derived_columns(frame, suite, AS_OF), table="silver.transactions", version=0, window="test"
    )


def test_quality_clean_transactions_pass_and_data_docs_are_written(spark, validator) -> None:
    result = check(validator, spark, transactions(spark))
    assert result.success, [f.describe() for f in result.failures]
    assert (
        result.rows == 200
        and result.evaluated == load_suite(validator.settings, "silver_transactions").expectation_count
    )
    index = validator.settings.data_docs_dir / "index.html"
    assert index.is_file() and "silver_transactions" in index.read_text()


@pytest.mark.parametrize(
    ("problem", "kwargs", "expectation", "column", "observed"),
    [
        (
            "30% null user_id",
            {"null_users": 60},
            "expect_column_values_to_not_be_null",
            "user_id",
            "60 of 200 unexpected (30.00%)",
        ),
        ("fraud rate far out of bounds", {"frauds": 100}, "expect_column_mean_to_be_between", "fraud_flag", "0.5"),
        ("stale data", {"newest_hours_ago": 72}, "expect_column_min_to_be_between", "hours_before_as_of", "72"),
        ("unknown currency", {"currency": "XYZ"}, "expect_column_values_to_be_in_set", "currency", "['XYZ'"),
    ],
)
def test_quality_gate_fails_on_bad_data_and_names_the_observed_value(
    spark, validator, problem, kwargs, expectation, column, observed
) -> None:
    result = check(validator, spark, transactions(spark, **kwargs))
    assert not result.success, problem
    assert [(f.expectation, f.column) for f in result.failures] == [(expectation, column)], problem
    assert observed in result.failures[0].observed, result.failures[0].observed
