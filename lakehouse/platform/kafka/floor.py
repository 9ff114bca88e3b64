"""The engine's floors: a minimal Spark Structured Streaming query that copies each record of one
Kafka topic to another, key and value as they are, and one that appends them to a Delta table
(``fraudlake bench ingest``'s floor for landing data). Whatever Fraudlake does to a payment, it
cannot deliver it sooner than this; ``fraudlake bench score`` and ``make demo`` measure the
scorer's latency next to it, on the same records and with the same trigger and batch size.

Each copy carries its input's creation time (the producer timestamp, in epoch milliseconds) in
the :data:`CREATED_HEADER` header; on a ``LogAppendTime`` target topic, a copy's timestamp minus
that header is its end-to-end latency, measured the way an alert's is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from lakehouse.settings import KafkaSettings, Settings, TopicSettings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession
    from pyspark.sql.streaming import StreamingQuery

    from lakehouse.platform.streaming import QueryPlan

CREATED_HEADER = "created_ms"


def start_passthrough(
    spark: SparkSession,
    settings: Settings,
    *,
    source: str,
    target: str,
    plan: QueryPlan,
    starting_offsets: str = "earliest",
) -> StreamingQuery:
    """Kafka → Kafka, value and key as they are, the input's creation time in a header
    (``source``: a topic, or several separated by commas)."""
    from pyspark.sql import functions as F

    from lakehouse.platform.kafka.clients import kafka_stream, spark_options
    from lakehouse.platform.streaming import start_query

    kafka = kafka_stream(spark, settings.kafka, source, max_records=plan.max_records, starting_offsets=starting_offsets)
    header = F.struct(
        F.lit(CREATED_HEADER).alias("key"),
        F.unix_millis("timestamp").cast("string").cast("binary").alias("value"),
    )
    out = kafka.select("key", "value", F.array(header).alias("headers"))
    writer = out.writeStream.format("kafka").options(**spark_options(settings.kafka)).option("topic", target)
    return start_query(writer, plan, lambda w: w.start())


def start_delta_append(spark: SparkSession, settings: Settings, *, source: str, path: str, plan: QueryPlan):
    """Kafka → Delta: the source's rows as Spark reads them (key, value, topic, partition, offset,
    timestamp, ...) appended to the Delta table at ``path``, nothing else: the floor for landing
    data in the lake (``source``: a topic, or several separated by commas)."""
    from lakehouse.platform.kafka.clients import kafka_stream
    from lakehouse.platform.streaming import start_query

    kafka = kafka_stream(spark, settings.kafka, source, max_records=plan.max_records)
    writer = kafka.writeStream.format("delta").outputMode("append")
    return start_query(writer, plan, lambda w: w.start(path))


def copy_created_ms(headers) -> float:
    """The creation time a copy carries (``headers``: the consumer record's (key, bytes) pairs)."""
    return float(dict(headers)[CREATED_HEADER].decode())


def latency_topic(name: str, like: TopicSettings) -> TopicSettings:
    """A topic for measured outputs, partitioned like ``like``: the broker stamps each record when it
    appends it (``LogAppendTime``), the end of the latency clock; kept an hour."""
    return TopicSettings(
        name=name,
        partitions=like.partitions,
        replication_factor=like.replication_factor,
        retention_ms=3_600_000,
        configs={"message.timestamp.type": "LogAppendTime"},
    )


def appended_latencies(
    kafka: KafkaSettings, topic: str, since_ms: int, created: Callable[[object], float]
) -> list[float]:
    """Broker append time minus ``created(record)``, of every record appended to ``topic`` since ``since_ms``."""
    return [record.timestamp - created(record) for record in records_since(kafka, topic, since_ms)]


def records_since(kafka: KafkaSettings, topic: str, since_ms: int) -> Iterator[Any]:
    """Every record appended to ``topic`` since ``since_ms`` (by its timestamp), up to the end
    offsets when the read starts."""
    from kafka import TopicPartition

    from lakehouse.platform.kafka.clients import consumer

    reader = consumer(kafka, group_id=None)
    try:
        partitions = [TopicPartition(topic, p) for p in reader.partitions_for_topic(topic) or ()]
        reader.assign(partitions)
        ends = reader.end_offsets(partitions)
        for tp, found in reader.offsets_for_times(dict.fromkeys(partitions, since_ms)).items():
            reader.seek(tp, found.offset if found is not None else ends[tp])
        remaining = {tp for tp in partitions if reader.position(tp) < ends[tp]}
        while remaining:
            for tp, records in reader.poll(timeout_ms=1000).items():
                yield from (r for r in records if r.offset < ends[tp])
                if reader.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        reader.close()
