"""kafka-python producer → the real broker → kafka-python consumer, and Spark's Kafka source on the
same records."""

from __future__ import annotations

import pandas as pd
import pytest

from lakehouse.operations.smoke import consume_json, probe_records, produce_json
from lakehouse.platform.kafka.clients import kafka_batch

pytestmark = pytest.mark.integration


def test_kafka_python_round_trip_delivers_every_record_in_key_order(kafka_broker, make_topic) -> None:
    topic = make_topic("roundtrip", partitions=3)
    records = [{**r, "user_id": f"user-{r['seq'] % 5}"} for r in probe_records(60, "rt")]

    delivered = produce_json(kafka_broker.kafka, topic, records, key_field="user_id")
    received = consume_json(kafka_broker.kafka, topic, expected=len(records), timeout_s=30)

    assert delivered == 60
    assert sorted(r["probe_id"] for r in received) == sorted(r["probe_id"] for r in records)
    for user in {r["user_id"] for r in records}:  # one key → one partition → produced order kept
        seqs = [r["seq"] for r in received if r["user_id"] == user]
        assert seqs == sorted(seqs)


def test_spark_kafka_source_reads_the_same_records(kafka_broker, make_topic, spark) -> None:
    from pyspark.sql import functions as F

    topic = make_topic("spark_source")
    records = probe_records(25, "sp")
    produce_json(kafka_broker.kafka, topic, records, key_field="probe_id")

    rows = (
        kafka_batch(spark, kafka_broker.kafka, topic)
        .select(F.col("key").cast("string").alias("key"), F.col("value").cast("string").alias("value"), "topic")
        .collect()
    )

    assert sorted(r.key for r in rows) == sorted(r["probe_id"] for r in records)
    assert {r.topic for r in rows} == {topic}
    assert all('"run_id": "sp"' in r.value for r in rows)


def test_every_producer_puts_a_key_on_the_partition_kafkas_default_partitioner_gives_it(
    kafka_broker, make_topic
) -> None:
    """confluent-kafka (``fraudlake produce``'s default) and kafka-python agree with the Java
    client's murmur2, which the scorer's warm start uses to place users known only from files."""
    from kafka import KafkaConsumer

    from lakehouse.features.warm import kafka_partition_of
    from lakehouse.platform.kafka.clients import client_config
    from lakehouse.platform.kafka.senders import make_sender

    topic = make_topic("partitioner", partitions=5)
    keys = [f"u{n:05d}" for n in range(100)]
    for client in ("confluent", "kafka-python"):
        sender = make_sender(kafka_broker.kafka, kafka_broker.producer.model_copy(update={"client": client}))
        for key in keys:
            sender.send(topic, key.encode(), client.encode())
        sender.close()
        assert sender.stats.delivered == len(keys), sender.stats
    reader = KafkaConsumer(
        topic,
        **client_config(kafka_broker.kafka),
        group_id=None,
        auto_offset_reset="earliest",
        consumer_timeout_ms=5000,
    )
    placed: dict[tuple[str, str], int] = {}
    try:
        for message in reader:
            placed[(message.value.decode(), message.key.decode())] = message.partition
    finally:
        reader.close()
    expected = dict(zip(keys, kafka_partition_of(pd.Series(keys), 5).tolist(), strict=True))
    assert len(set(expected.values())) == 5  # the keys spread: the check means something
    for client in ("confluent", "kafka-python"):
        assert {key: placed[(client, key)] for key in keys} == expected, client
