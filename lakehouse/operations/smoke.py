"""The platform smoke round trip: kafka-python producer → broker → kafka-python consumer, the same
records through Spark's Kafka source into a Delta table, read back now and at an earlier version.

Used by ``fraudlake smoke`` (and ``make demo``) to prove a fresh installation works end to end, and
by the integration tests. Each run owns a uniquely named topic and table folder.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lakehouse.errors import FraudlakeError
from lakehouse.platform.kafka.clients import broker_errors, consumer, kafka_batch, producer
from lakehouse.platform.kafka.topics import delete_topics, ensure_topics
from lakehouse.platform.waits import wait_until
from lakehouse.settings import KafkaSettings, Settings, TopicSettings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SmokeReport:
    topic: str
    produced: int
    consumed: int
    spark_read: int
    delta_rows_now: int
    delta_rows_at_version_0: int
    delta_version: int

    @property
    def ok(self) -> bool:
        return (
            self.produced == self.consumed == self.spark_read
            and self.delta_rows_at_version_0 == self.produced
            and self.delta_rows_now == self.produced + 1
        )


def probe_records(count: int, run_id: str) -> list[dict]:
    return [{"probe_id": f"{run_id}-{i}", "seq": i, "run_id": run_id} for i in range(count)]


def produce_json(kafka: KafkaSettings, topic: str, records: list[dict], key_field: str) -> int:
    """Send records as JSON and wait for every delivery report; raises when any send failed."""
    failures: list[BaseException] = []
    delivered = 0

    def on_success(_metadata) -> None:
        nonlocal delivered
        delivered += 1

    client = producer(kafka)
    try:
        with broker_errors(kafka):
            for record in records:
                client.send(topic, key=str(record[key_field]).encode(), value=json.dumps(record).encode()).add_callback(
                    on_success
                ).add_errback(failures.append)
            client.flush(timeout=kafka.request_timeout_ms / 1000)
    finally:
        client.close()
    if failures or delivered != len(records):
        raise FraudlakeError(f"{len(records) - delivered} of {len(records)} records were not delivered: {failures[:1]}")
    return delivered


def consume_json(kafka: KafkaSettings, topic: str, expected: int, timeout_s: float) -> list[dict]:
    """Read ``expected`` JSON records from the start of ``topic``, or fail clearly at the deadline."""
    client = consumer(kafka, topic, group_id=f"fraudlake-smoke-{uuid.uuid4().hex[:8]}", consumer_timeout_ms=1000)
    received: list[dict] = []

    def received_all() -> bool:
        for batch in client.poll(timeout_ms=500).values():  # the poll itself waits for records
            received.extend(json.loads(message.value) for message in batch)
        return len(received) >= expected

    try:
        with broker_errors(kafka):
            wait_until(
                received_all,
                timeout_s=timeout_s,
                what=f"{expected} records on {topic}",
                poll_s=0,
                on_timeout=lambda: TimeoutError(
                    f"consumed {len(received)} of {expected} records from {topic} in {timeout_s:g}s"
                ),
            )
            client.commit()
    finally:
        client.close()
    return received


def run_smoke(
    settings: Settings,
    spark_factory: Callable[[], SparkSession],
    table_path: str,
    *,
    count: int = 100,
    timeout_s: float = 60.0,
) -> SmokeReport:
    kafka = settings.kafka
    run_id = uuid.uuid4().hex[:12]
    topic = TopicSettings(name=f"fraudlake_smoke_{run_id}", partitions=2, replication_factor=1, retention_ms=3_600_000)
    ensure_topics(kafka, [topic])
    try:
        return _round_trip(settings, spark_factory, table_path, topic.name, run_id, count, timeout_s)
    finally:
        delete_topics(kafka, [topic.name])


def _round_trip(
    settings: Settings,
    spark_factory: Callable[[], SparkSession],
    table_path: str,
    topic: str,
    run_id: str,
    count: int,
    timeout_s: float,
) -> SmokeReport:
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    kafka = settings.kafka
    produced = produce_json(kafka, topic, probe_records(count, run_id), key_field="probe_id")
    consumed = consume_json(kafka, topic, count, timeout_s)
    log.info("kafka-python round trip: %d produced, %d consumed", produced, len(consumed))

    spark = spark_factory()
    from_kafka = kafka_batch(spark, kafka, topic).select(
        F.col("key").cast("string").alias("probe_id"),
        F.get_json_object(F.col("value").cast("string"), "$.seq").cast("int").alias("seq"),
        "topic",
        "partition",
        "offset",
    )
    from_kafka.write.format("delta").mode("overwrite").save(table_path)
    spark_read = spark.read.format("delta").load(table_path).count()
    extra = spark.createDataFrame([(f"{run_id}-extra", -1, topic, -1, -1)], from_kafka.schema)
    extra.write.format("delta").mode("append").save(table_path)

    version = DeltaTable.forPath(spark, table_path).history(1).select("version").first()[0]
    now = spark.read.format("delta").load(table_path).count()
    at_zero = spark.read.format("delta").option("versionAsOf", 0).load(table_path).count()
    return SmokeReport(topic, produced, len(consumed), spark_read, now, at_zero, version)
