"""The secured local profile on a real broker of its own: SASL_SSL (SCRAM-SHA-512 over TLS with a
CA made on first start), ACLs, loopback only. Strangers are refused with the reason in words; the
app's user, whose password holds a quote, a backslash and non-ASCII, produces, ingests through
Spark and writes through Spark's Kafka sink; the alerts reader reads alerts and nothing else."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import date
from pathlib import Path

import pytest
from kafka.errors import TopicAuthorizationFailedError
from pydantic import SecretStr

from lakehouse.alerts.outputs import FileOutput, close_outputs
from lakehouse.alerts.tail import tail
from lakehouse.contract.tables import table_names
from lakehouse.errors import BrokerRefusedError
from lakehouse.ingest.queries import run_ingest
from lakehouse.ingest.reconcile import reconcile
from lakehouse.platform import isolation
from lakehouse.platform.kafka.broker import LocalBroker
from lakehouse.platform.kafka.clients import consumer, producer
from lakehouse.platform.kafka.floor import start_passthrough
from lakehouse.platform.kafka.senders import make_sender
from lakehouse.platform.kafka.topics import ensure_topics, list_topics
from lakehouse.platform.streaming import query_plan
from lakehouse.simulator.producer import ProduceLimits, produce
from lakehouse.simulator.simulation import Simulation
from tests.alert_helpers import sample_alert
from tests.helpers import free_port, ingest_world

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PASSWORD = 'pa"ss\\wörd'  # a quote, a backslash and non-ASCII


def on(settings, **kafka_changes):
    return settings.model_copy(update={"kafka": settings.kafka.model_copy(update=kafka_changes)})


@pytest.fixture(scope="module")
def secure(kafka_broker, tmp_path_factory):
    """Settings of the app's user on a secured broker of this module's own."""
    home = tmp_path_factory.mktemp("secure-kafka")
    broker = kafka_broker.kafka.broker.model_copy(
        update={
            "secure": True,
            "port": free_port(),
            "controller_port": free_port(),
            "data_dir": home,
            "alerts_reader": "alerts-reader",
            "alerts_reader_password": SecretStr("r3ad'er\\"),
        }
    )
    settings = on(
        isolation.isolated(kafka_broker, topics=True),
        broker=broker,
        bootstrap_servers=None,
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username=SecretStr("fraudlake"),
        sasl_password=SecretStr(PASSWORD),
        ssl_cafile=home / "tls" / "ca.pem",
    )
    local = LocalBroker(settings)
    local.up()
    try:
        yield settings
    finally:
        local.down()


def test_a_stranger_is_refused_and_told_why(secure) -> None:
    short = {"connect_timeout_s": 3}
    plain = on(secure, security_protocol="PLAINTEXT", sasl_mechanism=None, sasl_username=None, sasl_password=None)
    with pytest.raises(BrokerRefusedError, match="expects TLS or authentication"):
        list_topics(on(plain, **short).kafka)
    with pytest.raises(BrokerRefusedError, match="refused the SCRAM-SHA-512 credentials"):
        list_topics(on(secure, sasl_password=SecretStr("guess"), **short).kafka)
    with pytest.raises(BrokerRefusedError, match="TLS handshake"):
        list_topics(on(secure, ssl_cafile=None, **short).kafka)


def test_every_listener_of_the_secured_broker_is_on_loopback(secure) -> None:
    pid = LocalBroker(secure).status().pid
    listening = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    mine = [line.split()[3] for line in listening.splitlines() if f"pid={pid}," in line]
    assert mine, f"no listener of the broker (pid {pid}) in ss -ltnp"
    assert all(re.match(r"^(127\.0\.0\.1|\[::1\]|\[::ffff:127\.0\.0\.1\]):\d+$", address) for address in mine), mine


def test_the_app_user_produces_ingests_and_writes_through_spark_and_the_reader_only_reads_alerts(
    secure, spark, tmp_path
) -> None:
    settings = ingest_world(secure, tmp_path)
    ensure_topics(settings.kafka)
    simulation = Simulation(settings.simulator, date(2026, 10, 1), traffic_seed=31)
    for day, client in enumerate(("confluent", "kafka-python")):
        sender = make_sender(settings.kafka, settings.producer.model_copy(update={"client": client}))
        try:
            report = produce(settings, simulation, sender, ProduceLimits(count=200), first_day=day)
        finally:
            sender.close()
        assert report.failed == 0 and report.delivered == report.sent, (client, report.errors[:1])

    # Spark's Kafka source (ingest) and sink (the scorer's alert path) over SASL_SSL with the PEM CA.
    run_ingest(spark, settings, once=True)
    assert spark.table(table_names(settings).silver("transactions")).count() == 400
    assert all(r.ok for r in reconcile(spark, settings))
    topics = settings.kafka.topics
    plan = query_plan(settings, "secure_copy", once=True)
    start_passthrough(
        spark, settings, source=topics.transactions.name, target=topics.scored.name, plan=plan
    ).awaitTermination()
    copied = consumer(settings.kafka, topics.scored.name, group_id=None, consumer_timeout_ms=5000)
    try:
        assert sum(1 for _ in copied) == 400
    finally:
        copied.close()

    # The alerts reader (its ACLs name the alerts topic the broker was set up with): alerts yes, payments no.
    ensure_topics(secure.kafka)
    app = producer(secure.kafka)
    for n in range(3):
        app.send(secure.kafka.topics.alerts.name, json.dumps(sample_alert(n)).encode(), key=b"user").get(timeout=30)
    app.close()
    reader = on(secure, sasl_username=SecretStr("alerts-reader"), sasl_password=SecretStr("r3ad'er\\"))
    output = FileOutput(tmp_path / "alerts.jsonl")
    try:
        result = tail(reader, group_id="alerts-reader-desk", from_beginning=True, outputs=[output], max_alerts=3)
    finally:
        close_outputs([output])
    assert result.handled == 3
    assert len(Path(tmp_path / "alerts.jsonl").read_text().splitlines()) == 3
    # Payments are there, yet the reader sees none of them, and may not write an alert.
    app = producer(secure.kafka)
    app.send(secure.kafka.topics.transactions.name, b"{}", key=b"user").get(timeout=30)
    app.close()
    snooping = consumer(
        reader.kafka, secure.kafka.topics.transactions.name, group_id="alerts-reader-snoop", consumer_timeout_ms=5000
    )
    try:
        assert list(snooping) == []
    finally:
        snooping.close()
    forging = producer(reader.kafka, retries=0)
    try:
        with pytest.raises(TopicAuthorizationFailedError):
            forging.send(secure.kafka.topics.alerts.name, b"{}").get(timeout=30)
    finally:
        forging.close()
