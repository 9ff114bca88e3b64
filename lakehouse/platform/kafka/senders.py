"""High-volume record senders for ``fraudlake produce``: confluent-kafka (librdkafka) or kafka-python.

Both confirm every record by a delivery callback, resend a record whose delivery failed (up to
``producer.max_retries`` times), and count what was sent, delivered, retried and finally failed:
nothing is dropped silently. Idempotent, acks=all producers keep each key's records in order
across retries.

kafka-python is the design card's client and what the consumers use; it tops out near 10,000
records/s on this 2-core machine, below the 20,000/s the pipeline benchmarks need, so produce
defaults to confluent-kafka (see docs/benchmarks/producer.md for the figures).
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from lakehouse.platform.kafka.clients import client_config, producer
from lakehouse.settings import KafkaSettings, ProducerSettings

log = logging.getLogger(__name__)


@dataclass
class DeliveryStats:
    sent: int = 0
    delivered: int = 0
    retried: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)

    def record_error(self, error: object) -> None:
        if len(self.errors) < 5:
            self.errors.append(str(error))


class Sender(ABC):
    def __init__(self, kafka: KafkaSettings, producer_settings: ProducerSettings) -> None:
        self.kafka = kafka
        self.settings = producer_settings
        self.stats = DeliveryStats()
        self._lock = threading.Lock()  # kafka-python calls back from its I/O thread

    def send(self, topic: str, key: bytes, value: bytes) -> None:
        self.stats.sent += 1
        self._send(topic, key, value, attempt=0)

    def _on_delivered(self) -> None:
        with self._lock:
            self.stats.delivered += 1

    def _on_failed(self, topic: str, key: bytes, value: bytes, attempt: int, error: object) -> None:
        with self._lock:
            if attempt < self.settings.max_retries:
                self.stats.retried += 1
                retry = True
            else:
                self.stats.failed += 1
                self.stats.record_error(error)
                retry = False
        if retry:
            self._send(topic, key, value, attempt=attempt + 1)
        else:
            log.error("record to %s failed after %d attempts: %s", topic, attempt + 1, error)

    @property
    def in_flight(self) -> int:
        return self.stats.sent - self.stats.delivered - self.stats.failed

    @abstractmethod
    def _send(self, topic: str, key: bytes, value: bytes, attempt: int) -> None: ...

    @abstractmethod
    def poll(self) -> None:
        """Serve delivery callbacks (cheap; call often)."""

    @abstractmethod
    def flush(self, timeout_s: float) -> None:
        """Wait until every record is delivered, retried to the end, or ``timeout_s`` passes."""

    @abstractmethod
    def close(self) -> None: ...


class ConfluentSender(Sender):
    def __init__(self, kafka: KafkaSettings, producer_settings: ProducerSettings) -> None:
        super().__init__(kafka, producer_settings)
        from confluent_kafka import Producer

        # librdkafka's own log lines go through logging (the entry point decides what shows).
        self._producer = Producer(confluent_config(kafka, producer_settings), logger=logging.getLogger("librdkafka"))

    def _send(self, topic: str, key: bytes, value: bytes, attempt: int) -> None:
        def on_delivery(error, _message) -> None:
            if error is None:
                self._on_delivered()
            else:
                self._on_failed(topic, key, value, attempt, error)

        while True:
            try:
                self._producer.produce(topic, value, key, on_delivery=on_delivery)
                return
            except BufferError:  # local queue full: let librdkafka drain it, then try again
                self._producer.poll(0.05)

    def poll(self) -> None:
        self._producer.poll(0)

    def flush(self, timeout_s: float) -> None:
        import time

        deadline = time.monotonic() + timeout_s
        # Retries are produced from delivery callbacks, so flush until nothing is left in flight.
        while self.in_flight > 0 and time.monotonic() < deadline:
            self._producer.flush(max(0.1, min(1.0, deadline - time.monotonic())))

    def close(self) -> None:
        self.flush(10)
        self._producer.close()


class KafkaPythonSender(Sender):
    def __init__(self, kafka: KafkaSettings, producer_settings: ProducerSettings) -> None:
        super().__init__(kafka, producer_settings)
        self._producer = producer(
            kafka,
            linger_ms=producer_settings.linger_ms,
            batch_size=min(producer_settings.batch_bytes, 1_000_000),
            enable_idempotence=True,
            compression_type=None if producer_settings.compression == "none" else producer_settings.compression,
            retries=5,
        )

    def _send(self, topic: str, key: bytes, value: bytes, attempt: int) -> None:
        future = self._producer.send(topic, key=key, value=value)
        future.add_callback(lambda _metadata: self._on_delivered())
        future.add_errback(lambda error: self._on_failed(topic, key, value, attempt, error))

    def poll(self) -> None:
        """kafka-python delivers callbacks from its own thread."""

    def flush(self, timeout_s: float) -> None:
        import time

        deadline = time.monotonic() + timeout_s
        while self.in_flight > 0 and time.monotonic() < deadline:
            self._producer.flush(timeout=max(0.1, deadline - time.monotonic()))

    def close(self) -> None:
        self.flush(10)
        self._producer.close(timeout=10)


def confluent_config(kafka: KafkaSettings, producer_settings: ProducerSettings) -> dict[str, object]:
    """librdkafka settings from the same Kafka settings as every other client."""
    shared = client_config(kafka)
    config: dict[str, object] = {
        "bootstrap.servers": kafka.bootstrap,
        "client.id": kafka.client_id,
        "security.protocol": kafka.security_protocol.lower(),
        "acks": "all",
        "enable.idempotence": True,
        # The Java client's partitioner (murmur2), as kafka-python's and Spark's Kafka sink: one key
        # lands on the same partition whichever client sends it (librdkafka's default is CRC32).
        "partitioner": "murmur2_random",
        "linger.ms": producer_settings.linger_ms,
        "batch.size": producer_settings.batch_bytes,
        "compression.type": producer_settings.compression,
        "queue.buffering.max.messages": 500_000,
        "message.timeout.ms": max(kafka.request_timeout_ms * 2, 60_000),
    }
    if "sasl_mechanism" in shared:
        config["sasl.mechanism"] = shared["sasl_mechanism"]
        config["sasl.username"] = shared["sasl_plain_username"]
        config["sasl.password"] = shared["sasl_plain_password"]
    if kafka.ssl_cafile:
        config["ssl.ca.location"] = str(kafka.ssl_cafile)
    if not kafka.ssl_check_hostname:
        config["ssl.endpoint.identification.algorithm"] = "none"
    return config


def make_sender(kafka: KafkaSettings, producer_settings: ProducerSettings) -> Sender:
    if producer_settings.client == "confluent":
        return ConfluentSender(kafka, producer_settings)
    return KafkaPythonSender(kafka, producer_settings)
