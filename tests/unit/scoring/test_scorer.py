"""The scorer's pure parts on static DataFrames: alert reasons (importance x rarity, in words), the
alert id (Spark and Python agree) and the alert record's JSON."""

from __future__ import annotations

import json

from lakehouse.contract.alerts import ALERT_FIELDS, alert_id
from lakehouse.contract.features import NUMERIC_FEATURES
from lakehouse.ml.explain import Profile, reasons


def profile(**percentiles: list[float]) -> Profile:
    importance = dict.fromkeys(NUMERIC_FEATURES, 0.0) | {
        "user_tx_count_1h": 0.2,
        "amount": 0.0,
        "user_amount_ratio_30d": 0.5,
        "home_distance_km": 0.3,
    }
    flat = {name: [0.0, 0.0, 0.0, 0.0, 0.0] for name in NUMERIC_FEATURES}
    return Profile(importance, flat | percentiles)


def test_reasons_rank_unusual_values_by_importance_and_say_them_in_words(spark) -> None:
    from pyspark.sql import functions as F

    p = profile(
        user_tx_count_1h=[0, 0, 1, 3, 5],
        user_amount_ratio_30d=[0.2, 0.4, 1.0, 2.5, 4.0],
        home_distance_km=[0.5, 1, 5, 40, 300],
    )
    rows = spark.createDataFrame(
        [("very", 9, 1.1, 2000.0), ("rare", 4, 3.0, 6.0), ("usual", 1, 1.0, 5.0), ("none", None, None, None)],
        "id STRING, user_tx_count_1h BIGINT, user_amount_ratio_30d DOUBLE, home_distance_km DOUBLE",
    )
    for name in NUMERIC_FEATURES:
        if name not in rows.columns:
            rows = rows.withColumn(name, F.lit(None).cast("double"))
    out = {r.id: r.reasons for r in rows.select("id", reasons(p, 2).alias("reasons")).collect()}

    very = out["very"]
    # 9 transactions in an hour (beyond p99, importance 0.2) and 2,000 km from home (beyond p99,
    # importance 0.3) outrank a usual amount ratio, however important the ratio is.
    assert [r.feature for r in very] == ["home_distance_km", "user_tx_count_1h"]
    assert very[0].value == 2000.0
    assert (
        very[0].text
        == "Great-circle distance from the user's home (profile as of the event) to the merchant: 2,000.00 "
        "(typical 5.00; higher than 99% of legitimate payments)"
    )
    assert (
        very[1].text == "The user's transactions known in the 1h before this one: 9 "
        "(typical 1; higher than 99% of legitimate payments)"
    )
    # Beyond p95 only: "95%"; the ratio of 3.0 is the most important unusual value here.
    assert out["rare"][0].feature == "user_amount_ratio_30d" and "higher than 95%" in out["rare"][0].text
    # Nothing unusual: the most important features, with no rarity claim.
    assert [r.feature for r in out["usual"]] == ["user_amount_ratio_30d", "home_distance_km"]
    assert all("legitimate" not in r.text for r in out["usual"])
    assert out["none"] == []  # no values, no reasons


def test_profile_survives_its_registry_tag() -> None:
    p = profile(user_tx_count_1h=[0, 0, 1, 3, 5])
    assert Profile.from_json(p.to_json()) == p
    assert len(p.to_json()) < 5000  # fits a registry tag


def test_alert_id_is_the_same_in_spark_and_python_and_the_record_has_every_field(spark) -> None:
    from pyspark.sql import functions as F

    from lakehouse.contract.tables import SCORED_COLUMNS
    from lakehouse.scoring.scorer import alert_id_column, alert_records

    ids = ["t-1", "7f3a5e2c-0000-4000-8000-000000000000"]
    got = [
        r.a
        for r in spark.createDataFrame([(i,) for i in ids], "t STRING")
        .select(alert_id_column(F.col("t")).alias("a"))
        .collect()
    ]
    assert got == [alert_id(i) for i in ids]

    values = {
        "transaction_id": "t-1",
        "user_id": "u-1",
        "merchant_id": "m-1",
        "amount": 12.5,
        "currency": "EUR",
        "score": 0.9,
        "threshold": 0.5,
        "model_version": 3,
        "is_alert": True,
        "alert_id": alert_id("t-1"),
        "reasons": [("amount", 12.5, "Amount: 12.50")],
        "run_id": "r",
        "batch_id": 1,
    }
    ddl = ", ".join(f"{name} {sql}" for name, sql in SCORED_COLUMNS)
    row = tuple(values.get(name) for name, _ in SCORED_COLUMNS)
    no_alert = tuple(False if name == "is_alert" else v for (name, _), v in zip(SCORED_COLUMNS, row, strict=True))
    scored = (
        spark.createDataFrame([row, no_alert], ddl)
        .withColumn("event_time", F.current_timestamp())
        .withColumn("transaction_created_at", F.current_timestamp())
        .withColumn("scored_at", F.current_timestamp())
    )
    records = alert_records(scored).collect()
    assert len(records) == 1 and records[0].key == "u-1"
    alert = json.loads(records[0].value)
    assert list(alert) == list(ALERT_FIELDS)
    assert alert["reasons"] == [{"feature": "amount", "value": 12.5, "text": "Amount: 12.50"}]
    assert alert["event_time"].endswith("Z") and "T" in alert["emitted_at"]
