"""Topics from config: list what exists, create what is missing (never alter what exists)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from lakehouse.platform.kafka.clients import admin_client, broker_errors, consumer
from lakehouse.settings import KafkaSettings, TopicSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EnsureResult:
    created: list[str]
    existing: list[str]


def partition_of(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a record keyed ``key`` (murmur2 of its
    UTF-8 bytes, made positive, modulo the partition count)."""
    from kafka.partitioner.default import murmur2

    return (murmur2(key.encode("utf-8")) & 0x7FFFFFFF) % partitions


def list_topics(kafka: KafkaSettings, *, include_internal: bool = False) -> list[str]:
    admin = admin_client(kafka)
    try:
        with broker_errors(kafka):
            names = admin.list_topics()
    finally:
        admin.close()
    return sorted(n for n in names if include_internal or not n.startswith("__"))


def new_topic(topic: TopicSettings) -> NewTopic:
    return NewTopic(
        name=topic.name,
        num_partitions=topic.partitions,
        replication_factor=topic.replication_factor,
        topic_configs={**topic.configs, "retention.ms": str(topic.retention_ms)},
    )


def ensure_topics(kafka: KafkaSettings, topics: list[TopicSettings] | None = None) -> EnsureResult:
    """Create the configured topics that do not exist yet; existing ones are left as they are."""
    wanted = topics if topics is not None else kafka.topics.all()
    admin = admin_client(kafka)
    try:
        with broker_errors(kafka):
            present = set(admin.list_topics())
            missing = [t for t in wanted if t.name not in present]
            created: list[str] = []
            for topic in missing:
                try:
                    admin.create_topics([new_topic(topic)], wait_for_metadata=True)
                    created.append(topic.name)
                    log.info("created topic %s (%d partitions)", topic.name, topic.partitions)
                except TopicAlreadyExistsError:  # created concurrently by another process
                    pass
    finally:
        admin.close()
    return EnsureResult(created=created, existing=[t.name for t in wanted if t.name not in created])


def delete_topics(kafka: KafkaSettings, names: list[str]) -> None:
    admin = admin_client(kafka)
    try:
        with broker_errors(kafka):
            admin.delete_topics(names, raise_errors=False)
    finally:
        admin.close()


def offset_ranges(kafka: KafkaSettings, *topics: str) -> dict[str, dict[int, tuple[int, int]]]:
    """Per topic and partition, the (first, end) offsets the broker holds now: ``first`` moves with
    retention, ``end`` is the next offset to be written. A topic the broker does not have is left out."""
    from kafka import TopicPartition

    reader = consumer(kafka, group_id=None)
    try:
        with broker_errors(kafka):
            found: dict[str, dict[int, tuple[int, int]]] = {}
            for topic in topics:
                partitions = [TopicPartition(topic, p) for p in reader.partitions_for_topic(topic) or ()]
                if partitions:
                    firsts, ends = reader.beginning_offsets(partitions), reader.end_offsets(partitions)
                    found[topic] = {tp.partition: (firsts[tp], ends[tp]) for tp in partitions}
            return found
    finally:
        reader.close()
