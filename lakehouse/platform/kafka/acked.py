"""A producer for request paths that wait for their records' acks (the decision service answers
only once its records are on the stream).

``send`` returns a future of the record's offset. librdkafka (confluent-kafka) sends the records and
reads the acks in its own threads, outside Python's GIL; one poller thread hands each delivery
report to its future. kafka-python's producer does its network I/O in a Python thread instead,
which competes for the GIL with the threads that serve requests, so each ack also waits for them.

Idempotent and ``acks=all`` (the settings of :func:`lakehouse.platform.kafka.senders.confluent_config`,
as ``fraudlake produce``'s sender): the records of a partition stay in the order they were sent,
retries included. A delivery that fails or is not acknowledged in time raises
:class:`~lakehouse.errors.BrokerUnavailableError`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

from lakehouse.errors import BrokerUnavailableError
from lakehouse.platform.kafka.senders import confluent_config
from lakehouse.settings import KafkaSettings, ProducerSettings

#: How long the poller blocks in librdkafka (outside the GIL) when no delivery report is due.
POLL_S = 0.1


class AckedProducer:
    def __init__(self, kafka: KafkaSettings, producer_settings: ProducerSettings, *, linger_ms: int = 0) -> None:
        from confluent_kafka import Producer

        config = confluent_config(kafka, producer_settings.model_copy(update={"linger_ms": linger_ms}))
        self._producer = Producer(config, logger=logging.getLogger("librdkafka"))
        self._closed = threading.Event()
        self._poller = threading.Thread(target=self._poll, name="kafka-acks", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._closed.is_set():
            self._producer.poll(POLL_S)

    def send(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        *,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> Future[int]:
        """Queue one record; the future gives its offset once the broker has acknowledged it."""
        from confluent_kafka import KafkaException

        future: Future[int] = Future()

        def delivered(error, message) -> None:
            if error is None:
                future.set_result(message.offset())
            else:
                future.set_exception(BrokerUnavailableError(f"the broker did not take a record for {topic}: {error}"))

        options: dict = {"on_delivery": delivered}
        if partition is not None:
            options["partition"] = partition
        if timestamp_ms is not None:
            options["timestamp"] = timestamp_ms
        try:
            self._producer.produce(topic, value, key, **options)
        except (BufferError, KafkaException) as exc:
            raise BrokerUnavailableError(f"a record for {topic} could not be queued: {exc}") from None
        return future

    @staticmethod
    def offsets(futures: Sequence[Future[int]], timeout_s: float) -> list[int]:
        """The offsets of ``futures``, all acknowledged within ``timeout_s`` together."""
        deadline = time.monotonic() + timeout_s
        try:
            return [future.result(timeout=max(0.0, deadline - time.monotonic())) for future in futures]
        except FutureTimeout:
            raise BrokerUnavailableError(f"the broker did not acknowledge a record within {timeout_s:g} s") from None

    def close(self, timeout_s: float = 10.0) -> None:
        """Deliver what is queued (up to ``timeout_s``), then stop the poller."""
        self._producer.flush(timeout_s)
        self._closed.set()
        self._poller.join(timeout=timeout_s)
