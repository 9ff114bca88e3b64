"""`produce` into the real broker: every record delivered and accounted for, entities before the
payments that need them, per-user order, failures retried and counted, Ctrl-C flushes."""

from __future__ import annotations

import json
import uuid
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import InvalidTimestampError

from lakehouse.contract.schemas import LABEL_EVENT_FIELDS
from lakehouse.platform.isolation import isolated
from lakehouse.platform.kafka.clients import admin_client, client_config
from lakehouse.platform.kafka.senders import make_sender
from lakehouse.platform.kafka.topics import delete_topics, ensure_topics
from lakehouse.simulator.labels import LabelQueue
from lakehouse.simulator.producer import ProduceLimits, produce
from lakehouse.simulator.simulation import Simulation

pytestmark = pytest.mark.integration


@pytest.fixture
def run_settings(kafka_broker):
    """Session settings with this test's own topics and a small world."""
    settings = isolated(kafka_broker, schemas=False, topics=True)
    sim = settings.simulator.model_copy(
        update={
            "users": 300,
            "merchants": 90,
            "cities": 10,
            "days": 2,
            "transactions": 4000,
            "fraud_rate": 0.05,
            "bad_records": settings.simulator.bad_records.model_copy(update={"late_by_hours": 1}),
        }
    )
    settings = settings.model_copy(update={"simulator": sim})
    ensure_topics(settings.kafka)
    yield settings
    delete_topics(settings.kafka, [t.name for t in settings.kafka.topics.all()])


def read_all(settings, topic: str, expected: int) -> list:
    consumer = KafkaConsumer(
        topic, **client_config(settings.kafka), group_id=None, auto_offset_reset="earliest", consumer_timeout_ms=5000
    )
    records = []
    try:
        for message in consumer:
            records.append(message)
            if len(records) >= expected:
                break
    finally:
        consumer.close()
    assert len(records) == expected, f"{topic}: read {len(records)} of {expected}"
    return records


@pytest.mark.parametrize("client", ["confluent", "kafka-python"])
def test_produce_delivers_every_record_and_reconciles_with_the_manifest(run_settings, client, tmp_path) -> None:
    topics = run_settings.kafka.topics
    simulation = Simulation(run_settings.simulator, date(2026, 10, 1), traffic_seed=11)
    sender = make_sender(run_settings.kafka, run_settings.producer.model_copy(update={"client": client}))
    manifest = tmp_path / "manifest.jsonl"

    report = produce(
        run_settings, simulation, sender, ProduceLimits(count=3000), first_day=0, bad_rate=0.02, manifest_path=manifest
    )
    sender.close()

    entries = [json.loads(line) for line in manifest.read_text().splitlines()]
    bad_per_topic = Counter(e["topic"] for e in entries)
    assert report.transactions == 3000 and report.failed == 0
    assert report.delivered == report.sent == 3000 + report.users + report.merchants + report.bad
    assert len(entries) == report.bad == 60
    assert set(report.bad_by_kind) >= {"malformed_json", "duplicate", "late_event", "out_of_order", "invalid_ip"}

    transactions = read_all(run_settings, topics.transactions.name, 3000 + bad_per_topic[topics.transactions.name])
    users = read_all(run_settings, topics.users.name, report.users + bad_per_topic[topics.users.name])
    read_all(run_settings, topics.merchants.name, report.merchants + bad_per_topic[topics.merchants.name])

    bad_values = {e["value"].encode() for e in entries}
    duplicated = {e["value"].encode() for e in entries if e["kind"] == "duplicate"}
    clean, seen = [], set()
    for message in sorted(transactions, key=lambda m: (m.partition, m.offset)):
        if message.value in duplicated and message.value not in seen:  # the original of a duplicate
            seen.add(message.value)
            clean.append(message)
        elif message.value not in bad_values:
            clean.append(message)
    assert len(clean) == 3000
    user_published = {}
    for message in users:
        if message.value not in bad_values:
            user_published.setdefault(json.loads(message.value)["user_id"], message.timestamp)
    first_paid = {}
    stamps_by_user = defaultdict(list)
    for message in sorted(clean, key=lambda m: (m.partition, m.offset)):
        record = json.loads(message.value)
        assert message.key.decode() == record["user_id"]  # keyed by user: one user, one partition
        first_paid.setdefault(record["user_id"], message.timestamp)
        stamps_by_user[(message.partition, record["user_id"])].append(record["timestamp"])
    # Every paying user was published, and no later than their first payment was sent.
    assert all(user in user_published and user_published[user] <= sent for user, sent in first_paid.items())
    # Per user, the clean records arrive in event-time order.
    assert all(stamps == sorted(stamps) for stamps in stamps_by_user.values())


def test_produce_counts_a_record_the_broker_refuses_after_retrying_it(run_settings) -> None:
    tiny = f"tiny_{uuid.uuid4().hex[:8]}"
    admin = admin_client(run_settings.kafka)
    admin.create_topics([NewTopic(tiny, 1, 1, topic_configs={"max.message.bytes": "200"})])
    admin.close()
    sender = make_sender(run_settings.kafka, run_settings.producer.model_copy(update={"max_retries": 2}))
    try:
        sender.send(tiny, b"k", b"x" * 20)
        sender.flush(30)  # its own batch: the broker judges batches, not records
        sender.send(tiny, b"k", b"x" * 5000)
        sender.flush(30)
    finally:
        sender.close()
        delete_topics(run_settings.kafka, [tiny])
    assert (sender.stats.sent, sender.stats.delivered, sender.stats.retried, sender.stats.failed) == (2, 1, 2, 1)
    assert "too large" in sender.stats.errors[0].lower() or "size" in sender.stats.errors[0].lower()


def test_produce_interrupted_flushes_what_it_sent(run_settings) -> None:
    simulation = Simulation(run_settings.simulator, date(2026, 10, 1), traffic_seed=12)
    sender = make_sender(run_settings.kafka, run_settings.producer)
    calls = 0

    def ctrl_c(_report) -> None:
        nonlocal calls
        calls += 1
        raise KeyboardInterrupt

    ticking = iter(range(10**9))
    report = produce(
        run_settings,
        simulation,
        sender,
        ProduceLimits(count=10**6, rate=2000),
        first_day=0,
        on_progress=ctrl_c,
        clock=lambda: next(ticking) * 0.25,
    )
    sender.close()

    assert report.interrupted and calls == 1
    assert report.transactions < 10**6
    assert report.delivered == report.sent and report.failed == 0


def test_produce_stops_where_simulated_time_reaches_the_wall_clock(run_settings) -> None:
    """Live traffic runs faster than the clock: sent past the wall clock, payments would be dated
    after their Kafka timestamp (quarantined as future_time). The run stops there and says so."""
    today = datetime.now(UTC).date()
    simulation = Simulation(run_settings.simulator, today - timedelta(days=1), traffic_seed=13)
    sender = make_sender(run_settings.kafka, run_settings.producer)
    try:
        report = produce(run_settings, simulation, sender, ProduceLimits(count=10**6), first_day=0)
    finally:
        sender.close()

    ahead = timedelta(minutes=run_settings.data.max_ahead_minutes)
    assert report.caught_up is not None, "the run went on into the future"
    assert datetime.fromisoformat(report.last_event) <= datetime.now(UTC) + ahead
    assert 0 < report.transactions < 10**6 and report.failed == 0


def test_the_broker_refuses_a_record_stamped_an_hour_ahead_of_its_clock(run_settings) -> None:
    """A producer whose clock runs ahead fails loudly (message.timestamp.after.max.ms on the
    topics) instead of moving its partitions' clocks into the future."""
    producer = KafkaProducer(**client_config(run_settings.kafka), retries=0)
    topic = run_settings.kafka.topics.transactions.name
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    try:
        producer.send(topic, b"on time", timestamp_ms=now_ms).get(timeout=30)
        with pytest.raises(InvalidTimestampError):
            producer.send(topic, b"ahead", timestamp_ms=now_ms + 2 * 3600 * 1000).get(timeout=30)
    finally:
        producer.close()


def test_labels_come_late_on_their_topic_and_the_rest_wait_for_a_later_run(run_settings, tmp_path) -> None:
    sim = run_settings.simulator
    settings = run_settings.model_copy(
        update={"simulator": sim.model_copy(update={"labels": sim.labels.model_copy(update={"emit": True})})}
    )
    topics = settings.kafka.topics
    pending = tmp_path / "pending-labels.json"
    sender = make_sender(settings.kafka, settings.producer)
    try:
        simulation = Simulation(settings.simulator, date(2026, 9, 1), traffic_seed=5)
        report = produce(settings, simulation, sender, ProduceLimits(count=4000), first_day=0, labels_path=pending)
    finally:
        sender.close()
    assert report.failed == 0 and report.labels > 0 and report.labels_pending > 0

    payments = {
        p["transaction_id"]: p
        for p in (json.loads(m.value) for m in read_all(settings, topics.transactions.name, report.transactions))
    }
    labels = [
        json.loads(m.value) | {"key": m.key.decode()} for m in read_all(settings, topics.labels.name, report.labels)
    ]
    for label in labels:
        payment = payments[label["transaction_id"]]
        assert list(label)[:-1] == [f.name for f in LABEL_EVENT_FIELDS]
        assert label["key"] == label["user_id"] == payment["user_id"]
        assert payment["timestamp"] < label["reported_at"] < "2026-09-03"  # after the payment, before the run's end
    assert sum(payments[label["transaction_id"]]["is_fraud"] for label in labels) >= 0.8 * len(labels)
    assert len(LabelQueue(pending).pending) == report.labels_pending
