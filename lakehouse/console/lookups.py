"""What a case page looks up in the lakehouse: the user's recent payments (silver) and the
merchant's recent fraud rate (``gold.merchant_daily``: labels as known when the features were
last built)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from lakehouse.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


class SilverHistory:
    """A user's most recent payments in silver (the alerted one among them)."""

    COLUMNS = ("transaction_id", "event_time", "amount", "currency", "merchant_id")

    def __init__(self, spark: SparkSession, settings: Settings, limit: int = 20) -> None:
        from lakehouse.contract.tables import table_names

        self.spark = spark
        self.table = table_names(settings).silver("transactions")
        self.limit = limit

    def __call__(self, user_id: str) -> list[dict]:
        from pyspark.sql import functions as F

        rows = (
            self.spark.table(self.table)
            .where(F.col("user_id") == user_id)
            .orderBy(F.col("event_time").desc())
            .limit(self.limit)
            .select(*self.COLUMNS)
            .collect()
        )
        return [row.asDict() for row in rows]


class MerchantRisk:
    """The merchant's payments and known frauds over the ``days`` up to a date."""

    def __init__(self, spark: SparkSession, settings: Settings, days: int = 30) -> None:
        from lakehouse.contract.tables import table_names

        self.spark = spark
        self.table = table_names(settings).merchant_daily
        self.days = days

    def __call__(self, merchant_id: str, until: date) -> dict[str, Any]:
        from pyspark.sql import functions as F

        row = (
            self.spark.table(self.table)
            .where(
                (F.col("merchant_id") == merchant_id)
                & F.col("event_date").between(F.lit(until - timedelta(days=self.days - 1)), F.lit(until))
            )
            .agg(F.sum("tx_count").alias("payments"), F.sum("fraud_count").alias("frauds"))
            .first()
        )
        payments, frauds = int(row.payments or 0), int(row.frauds or 0)
        return {
            "days": self.days,
            "payments": payments,
            "frauds": frauds,
            "rate": frauds / payments if payments else None,
        }
