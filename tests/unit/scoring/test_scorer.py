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


def test_the_python_reasons_equal_the_spark_ones_word_for_word(spark) -> None:
    """The scorer's reasons (:func:`lakehouse.scoring.kernel.reasons`) are the twin of the Spark SQL
    the first release wrote and the docs describe: same order, same values, same text, on usual,
    rare, extreme, hostile (NaN, infinite, huge, negative) and missing values."""
    from pyspark.sql import functions as F

    from lakehouse.scoring.kernel import reasons as python_reasons
    from lakehouse.scoring.kernel import reasons_of_rows

    p = profile(
        user_tx_count_1h=[0, 0, 1, 3, 5],
        user_amount_ratio_30d=[0.2, 0.4, 1.0, 2.5, 4.0],
        home_distance_km=[0.5, 1, 5, 40, 300],
    )
    values = [
        (9, 1.1, 2000.0),
        (4, 3.0, 6.0),
        (1, 1.0, 5.0),
        (None, None, None),
        (0, 0.1, 0.2),
        (2, float("nan"), float("inf")),
        (5, -1e12, 1234567.125),
        (3, 2.675, float("-inf")),
    ]
    ddl = "id INT, user_tx_count_1h BIGINT, user_amount_ratio_30d DOUBLE, home_distance_km DOUBLE"
    rows = spark.createDataFrame([(i, *v) for i, v in enumerate(values)], ddl)
    for name in NUMERIC_FEATURES:
        if name not in rows.columns:
            rows = rows.withColumn(name, F.lit(None).cast("double"))
    expected = {r.id: r.reasons for r in rows.select("id", reasons(p, 3).alias("reasons")).collect()}
    given = [
        {"user_tx_count_1h": count, "user_amount_ratio_30d": ratio, "home_distance_km": distance}
        for count, ratio, distance in values
    ]
    floats = [{n: (float(g[n]) if g.get(n) is not None else None) for n in NUMERIC_FEATURES} for g in given]
    # The scorer explains a batch's alerts in one call: row by row or all at once, the same reasons.
    together = reasons_of_rows({n: [f[n] for f in floats] for n in NUMERIC_FEATURES}, p, 3)
    for i in range(len(values)):
        mine = python_reasons(floats[i], p, 3)
        assert [(r["feature"], r["text"]) for r in together[i]] == [(r["feature"], r["text"]) for r in mine], i
        theirs = [r.asDict() for r in expected[i]]
        assert [r["feature"] for r in mine] == [r["feature"] for r in theirs], i
        assert [r["text"] for r in mine] == [r["text"] for r in theirs], i
        for a, b in zip(mine, theirs, strict=True):
            assert a["value"] == b["value"] or (a["value"] != a["value"] and b["value"] != b["value"])


def test_the_alert_record_is_what_spark_to_json_wrote_and_its_id_what_consumers_compute(spark) -> None:
    from pyspark.sql import functions as F

    from lakehouse.scoring.kernel import alert_value

    row = {
        "alert_id": alert_id("t-1"),
        "transaction_id": "t-1",
        "user_id": "u-1",
        "merchant_id": "m-1",
        "amount": 1234.5,
        "currency": "EUR",
        "event_time": 1_790_000_000_123_456,
        "transaction_created_at": 1_790_000_000_250_000,
        "score": 0.93,
        "threshold": 0.41,
        "model_version": 3,
        "reasons": [{"feature": "amount", "value": 12.5, "text": "Amount: 12.50"}],
        "scored_at": 1_790_000_002_004_999,
    }
    value = alert_value(row)
    alert = json.loads(value)
    assert list(alert) == list(ALERT_FIELDS) and alert["alert_id"] == alert_id(alert["transaction_id"])
    # Spark's to_json of the same fields (as the first release wrote alerts): the same text.
    micros = {"event_time", "transaction_created_at", "emitted_at"}
    source = {**row, "emitted_at": row["scored_at"]}
    ddl = ", ".join(
        f"{name} {'BIGINT' if name in micros else 'STRING' if isinstance(source[name], str) else 'DOUBLE'}"
        for name in ALERT_FIELDS
        if name != "reasons" and name != "model_version"
    )
    frame = spark.createDataFrame(
        [tuple(source[n] for n in ALERT_FIELDS if n not in ("reasons", "model_version"))], ddl
    )
    fields = [
        F.timestamp_micros(n).alias(n)
        if n in micros
        else F.lit(3).alias(n)
        if n == "model_version"
        else F.array(
            F.struct(F.lit("amount").alias("feature"), F.lit(12.5).alias("value"), F.lit("Amount: 12.50").alias("text"))
        ).alias(n)
        if n == "reasons"
        else F.col(n)
        for n in ALERT_FIELDS
    ]
    spark.conf.set("spark.sql.session.timeZone", "UTC")
    assert frame.select(F.to_json(F.struct(*fields)).alias("j")).first().j == value
