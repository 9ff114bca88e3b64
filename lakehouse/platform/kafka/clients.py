"""The one Kafka client factory: producers, consumers, admin clients, Spark's Kafka source and its
options, all built from :class:`~lakehouse.settings.KafkaSettings`.

A broker that does not answer becomes :class:`~lakehouse.errors.BrokerUnavailableError` with a
message that says where we looked and what to do, instead of a client stack trace.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import ssl
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError

from lakehouse.errors import BrokerRefusedError, BrokerUnavailableError
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
    if kafka.ssl_cafile:
        config["ssl_cafile"] = str(kafka.ssl_cafile)
    if kafka.security_protocol in ("SSL", "SASL_SSL"):
        config["ssl_check_hostname"] = kafka.ssl_check_hostname
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
    """Turn 'cannot reach the broker' failures inside the block into a plain error, and a broker
    that answers but refuses us (TLS trust, credentials, protocol) into :class:`BrokerRefusedError`."""
    try:
        yield
    except KafkaTimeoutError as exc:
        raise refused(kafka) or unavailable(kafka, exc) from None
    except KafkaConnectionError as exc:
        # A node named by the cluster's metadata refused the TCP connection: not listening (yet,
        # or any more: a node of a starting cluster, a broker being failed over). Unreachable, not
        # a refusal of us: nothing for `refused` to probe.
        raise unavailable(kafka, exc) from None
    except KafkaError as exc:
        if "NoBrokersAvailable" in type(exc).__name__ or "bootstrap" in str(exc).lower():
            raise refused(kafka) or unavailable(kafka, exc) from None
        raise


class _Failures(logging.Handler):
    """kafka-python's own account of why its connections failed (it only logs them, then retries
    until its bootstrap times out)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if len(self.messages) < 100:
            self.messages.append(record.getMessage())


def refused(kafka: KafkaSettings, probe_s: float = 3.0) -> BrokerRefusedError | None:
    """Why a broker that did not let us bootstrap refused us, from one short connection attempt
    whose failures are read from kafka-python's log; None when it does not answer at all."""
    from kafka import KafkaAdminClient

    from lakehouse.platform.jvm import port_open

    addresses = [a.rsplit(":", 1) for a in kafka.bootstrap.split(",")]
    if not any(port_open(host, int(port)) for host, port in addresses):
        return None  # nothing listens: unreachable, not refused
    if kafka.security_protocol in ("PLAINTEXT", "SASL_PLAINTEXT") and any(
        speaks_tls(host, int(port), probe_s) for host, port in addresses
    ):
        return refusal(kafka, ["Invalid frame length: the listener speaks TLS"])
    logger = logging.getLogger("kafka")
    failures = _Failures()
    level, propagate = logger.level, logger.propagate
    logger.addHandler(failures)
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    try:
        config = {**client_config(kafka), "bootstrap_timeout_ms": int(probe_s * 1000)}
        KafkaAdminClient(**config).close()
        return None  # it answers now
    except KafkaError:
        return refusal(kafka, failures.messages)
    finally:
        logger.removeHandler(failures)
        logger.setLevel(level)
        logger.propagate = propagate


def speaks_tls(host: str, port: int, timeout_s: float) -> bool:
    """Whether the listener completes a TLS handshake (its certificate unchecked: this only asks
    what protocol it speaks, and sends nothing else)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((host, port), timeout=timeout_s) as raw,
            context.wrap_socket(raw, server_hostname=host),
        ):
            return True
    except (OSError, ssl.SSLError):
        return False


def refusal(kafka: KafkaSettings, messages: list[str]) -> BrokerRefusedError | None:
    """The refusal that kafka-python's connection failures show, in words; None for none."""
    text = "\n".join(messages)
    where = f"the Kafka broker at {kafka.bootstrap}"
    tls = next((m for m in messages if "Handshake failed" in m or "CERTIFICATE_VERIFY_FAILED" in m), None)
    if tls:
        trust = kafka.ssl_cafile or "the system's trust store"
        return BrokerRefusedError(
            f"the TLS handshake with {where} failed ({tls.split('Handshake failed: ')[-1]}); "
            f"its certificate must be signed by a CA in kafka.ssl_cafile (now {trust})"
        )
    if "SaslAuthenticationFailed" in text or (kafka.sasl_mechanism and re.search(r"broker_version=\(\d", text)):
        return BrokerRefusedError(
            f"{where} refused the {kafka.sasl_mechanism} credentials (FRAUDLAKE_KAFKA__SASL_USERNAME / "
            "FRAUDLAKE_KAFKA__SASL_PASSWORD), or does not offer that mechanism"
        )
    # TLS bytes read as a Kafka frame. (A bare disconnect says nothing: a frozen or restarting broker
    # disconnects too, and is unreachable, not refusing.)
    if kafka.security_protocol in ("PLAINTEXT", "SASL_PLAINTEXT") and "Invalid frame length" in text:
        return BrokerRefusedError(
            f"{where} closed the connection without a Kafka answer: it expects TLS or authentication "
            f"(kafka.security_protocol is {kafka.security_protocol}; the secured local profile is --env secure)"
        )
    return None


def admin_client(kafka: KafkaSettings) -> KafkaAdminClient:
    with broker_errors(kafka):
        return KafkaAdminClient(**client_config(kafka))


def producer(kafka: KafkaSettings, **overrides: Any) -> KafkaProducer:
    """A producer that waits for all in-sync replicas and retries, so a send is never dropped silently."""
    options = {"acks": "all", "retries": 5, "linger_ms": 5, **overrides}
    with broker_errors(kafka):
        return KafkaProducer(**client_config(kafka), **options)


def consumer(kafka: KafkaSettings, *topics: str, group_id: str | None, **overrides: Any) -> KafkaConsumer:
    """A consumer that commits only when told to (``enable_auto_commit`` off by default). A group
    member's session is ``kafka.consumer_session_timeout_ms``: kafka-python's own default (45 s)
    would keep a killed member's partitions from its successor for that long."""
    options = {
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": kafka.consumer_session_timeout_ms,
        "heartbeat_interval_ms": max(kafka.consumer_session_timeout_ms // 3, 100),
        **overrides,
    }
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
        options["kafka.sasl.mechanism"] = kafka.sasl_mechanism
        options["kafka.sasl.jaas.config"] = jaas_config(
            module, kafka.sasl_username.get_secret_value(), kafka.sasl_password.get_secret_value()
        )
    if kafka.ssl_cafile:
        options["kafka.ssl.truststore.type"] = "PEM"
        options["kafka.ssl.truststore.location"] = str(kafka.ssl_cafile)
    if not kafka.ssl_check_hostname:
        options["kafka.ssl.endpoint.identification.algorithm"] = ""
    return options


def jaas_config(module: str, user: str, password: str, **extra: str) -> str:
    """A JAAS login line. Values are double-quoted as Kafka's parser (a ``StreamTokenizer``) reads
    them: it takes a backslash as an escape, so backslashes are doubled before quotes are escaped."""

    def quoted(value: str) -> str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    options = " ".join(f"{k}={quoted(v)}" for k, v in {"username": user, "password": password, **extra}.items())
    return f"{module} required {options};"


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
