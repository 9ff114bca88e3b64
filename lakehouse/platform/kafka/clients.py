"""The one Kafka client factory: producers, consumers, admin clients, Spark's Kafka source and its
options, all built from :class:`~lakehouse.settings.KafkaSettings`.

A broker that does not answer becomes :class:`~lakehouse.errors.BrokerUnavailableError` with a
message that says where we looked and what to do, instead of a client stack trace.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError

from lakehouse.errors import BrokerUnavailableError
from lakehouse.settings import KafkaSettings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)


def client_config(kafka: KafkaSettings) -> dict[str, Any]:
    """kafka-python options shared by every client (connection and security)."""
    config: dict[str, Any] = {
        "bootstrap_servers": kafka.bootstrap.split(","),
        "client_id": kafka.client_id,
        "request_timeout_ms": kafka.request_timeout_ms,
        "bootstrap_timeout_ms": int(kafka.connect_timeout_s * 1000),
        "security_protocol": kafka.security_protocol,
    }
    if kafka.sasl_mechanism:
        config["sasl_mechanism"] = kafka.sasl_mechanism
        config["sasl_plain_username"] = kafka.sasl_username.get_secret_value() if kafka.sasl_username else None
        config["sasl_plain_password"] = kafka.sasl_password.get_secret_value() if kafka.sasl_password else None
    return config


def unavailable(kafka: KafkaSettings, cause: BaseException | str) -> BrokerUnavailableError:
    hint = (
        " Start the local one with `fraudlake kafka up`."
        if kafka.broker.enabled and not kafka.bootstrap_servers
        else ""
    )
    return BrokerUnavailableError(
        f"Kafka broker not reachable at {kafka.bootstrap} (waited {kafka.connect_timeout_s:g}s: {cause}).{hint}"
    )


@contextlib.contextmanager
def broker_errors(kafka: KafkaSettings) -> Iterator[None]:
    """Turn 'cannot reach the broker' failures inside the block into a plain error."""
    try:
        yield
    except KafkaTimeoutError as exc:
        raise unavailable(kafka, exc) from None
    except KafkaError as exc:
        if "NoBrokersAvailable" in type(exc).__name__ or "bootstrap" in str(exc).lower():
            raise unavailable(kafka, exc) from None
        raise


def admin_client(kafka: KafkaSettings) -> KafkaAdminClient:
    with broker_errors(kafka):
        return KafkaAdminClient(**client_config(kafka))


def producer(kafka: KafkaSettings, **overrides: Any) -> KafkaProducer:
    """A producer that waits for all in-sync replicas and retries, so a send is never dropped silently."""
    options = {"acks": "all", "retries": 5, "linger_ms": 5, **overrides}
    with broker_errors(kafka):
        return KafkaProducer(**client_config(kafka), **options)


def consumer(kafka: KafkaSettings, *topics: str, group_id: str | None, **overrides: Any) -> KafkaConsumer:
    """A consumer that commits only when told to (``enable_auto_commit`` off by default)."""
    options = {"group_id": group_id, "enable_auto_commit": False, "auto_offset_reset": "earliest", **overrides}
    with broker_errors(kafka):
        return KafkaConsumer(*topics, **client_config(kafka), **options)


def spark_options(kafka: KafkaSettings) -> dict[str, str]:
    """Options for Spark's Kafka source and sink (``kafka.``-prefixed consumer/producer settings)."""
    options = {
        "kafka.bootstrap.servers": kafka.bootstrap,
        "kafka.security.protocol": kafka.security_protocol,
        "kafka.request.timeout.ms": str(kafka.request_timeout_ms),
    }
    if kafka.sasl_mechanism and kafka.sasl_username and kafka.sasl_password:
        module = (
            "org.apache.kafka.common.security.plain.PlainLoginModule"
            if kafka.sasl_mechanism == "PLAIN"
            else "org.apache.kafka.common.security.scram.ScramLoginModule"
        )
        user = _jaas_quoted(kafka.sasl_username.get_secret_value())
        password = _jaas_quoted(kafka.sasl_password.get_secret_value())
        options["kafka.sasl.mechanism"] = kafka.sasl_mechanism
        options["kafka.sasl.jaas.config"] = f'{module} required username="{user}" password="{password}";'
    return options


def _jaas_quoted(value: str) -> str:
    """``value`` for a double-quoted JAAS option: Kafka's parser (a ``StreamTokenizer``) reads a
    backslash as an escape, so backslashes are doubled before quotes are escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


def kafka_stream(
    spark: SparkSession,
    kafka: KafkaSettings,
    topic: str,
    *,
    max_records: int | None = None,
    starting_offsets: str = "earliest",
) -> DataFrame:
    """Spark's Kafka streaming source on ``topic``: the one place every streaming job sets it up.

    A gap in the topic (records deleted by retention before they were read) stops the query loudly
    (``failOnDataLoss``) instead of skipping data; ``max_records`` bounds a micro-batch.
    """
    reader = (
        spark.readStream.format("kafka")
        .options(**spark_options(kafka))
        .option("subscribe", topic)
        .option("startingOffsets", starting_offsets)
        .option("failOnDataLoss", "true")
    )
    if max_records is not None:
        reader = reader.option("maxOffsetsPerTrigger", max_records)
    return reader.load()


def kafka_batch(spark: SparkSession, kafka: KafkaSettings, topic: str) -> DataFrame:
    """A batch read of a whole topic with Spark's Kafka source (earliest to latest offsets)."""
    return (
        spark.read.format("kafka")
        .options(**spark_options(kafka))
        .option("subscribe", topic)
        .option("startingOffsets", "earliest")
        .option("endingOffsets", "latest")
        .load()
    )
