"""The secured local profile on a real broker of its own: SASL_SSL (SCRAM-SHA-512 over TLS with a
CA made on first start), ACLs, loopback only. Strangers are refused with the reason in words; the
app's user, whose password holds a quote, a backslash and non-ASCII, produces, ingests through
Spark and scores (the scorer's Kafka source and sink); the alerts reader reads the scorer's alerts
and nothing else."""

from __future__ import annotations

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
from lakehouse.features.materialize import build_features
from lakehouse.ingest.queries import run_ingest
from lakehouse.ingest.reconcile import reconcile
from lakehouse.ml import registry
from lakehouse.ml.training import train
from lakehouse.platform import isolation
from lakehouse.platform.kafka.broker import LocalBroker
from lakehouse.platform.kafka.clients import consumer, producer
from lakehouse.platform.kafka.senders import make_sender
from lakehouse.platform.kafka.topics import ensure_topics, list_topics
from lakehouse.scoring.scorer import start_scorer
from lakehouse.simulator.producer import ProduceLimits, produce
from lakehouse.simulator.simulation import Simulation
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


def test_the_app_user_produces_ingests_and_scores_and_the_reader_only_reads_alerts(secure, spark, tmp_path) -> None:
    settings = ingest_world(secure, tmp_path, fraud_rate=0.1)
    ensure_topics(settings.kafka)
    simulation = Simulation(settings.simulator, date(2026, 10, 1), traffic_seed=31)
    for day, client in enumerate(("confluent", "kafka-python")):
        sender = make_sender(settings.kafka, settings.producer.model_copy(update={"client": client}))
        try:
            report = produce(settings, simulation, sender, ProduceLimits(count=200), first_day=day)
        finally:
            sender.close()
        assert report.failed == 0 and report.delivered == report.sent, (client, report.errors[:1])

    # Spark's Kafka source: ingest over SASL_SSL with the PEM CA.
    run_ingest(spark, settings, once=True)
    assert spark.table(table_names(settings).silver("transactions")).count() == 400
    assert all(r.ok for r in reconcile(spark, settings))

    # The scorer (Spark's Kafka source and sink) with a champion trained on the two days; its alerts
    # go to the alerts topic the broker was set up with (the reader's ACLs name it).
    scoring = isolation.isolated(
        settings,
        schemas=False,
        registry_dir=tmp_path / "registry",
        training={"gap_days": 0, "validation_days": 1, "gbt": {"max_iter": 5, "max_depth": 2}},
    )
    scoring = on(scoring, topics=scoring.kafka.topics.model_copy(update={"alerts": secure.kafka.topics.alerts}))
    ensure_topics(scoring.kafka)
    build_features(spark, scoring)
    registry.set_champion(scoring, train(spark, scoring, promote=False).version, reason="test: the secured scorer")
    for query in start_scorer(spark, scoring, once=True):
        query.awaitTermination()
        assert query.exception() is None, query.exception()
    scored = spark.table(table_names(scoring).scored)
    alerts = scored.where("is_alert").count()
    assert scored.count() == 400 and alerts > 0

    # The alerts reader: the scorer's alerts yes, payments no.
    reader = on(secure, sasl_username=SecretStr("alerts-reader"), sasl_password=SecretStr("r3ad'er\\"))
    output = FileOutput(tmp_path / "alerts.jsonl")
    try:
        result = tail(reader, group_id="alerts-reader-desk", from_beginning=True, outputs=[output], max_alerts=alerts)
    finally:
        close_outputs([output])
    assert result.handled == alerts
    assert len(Path(tmp_path / "alerts.jsonl").read_text().splitlines()) == alerts
    # The 400 payments are there, yet the reader sees none of them, and may not write an alert.
    snooping = consumer(
        reader.kafka, settings.kafka.topics.transactions.name, group_id="alerts-reader-snoop", consumer_timeout_ms=5000
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
