"""The console on the real broker, Spark and Delta, served on loopback and used over HTTP: an
alert appended to ``fraud_alerts`` reaches the queue; its case shows the reasons and the user's
payments from silver; "Confirm fraud" pressed twice puts one label event on ``fraud_labels``,
which ingest lands in ``silver.labels``; the health and models pages read the real tables and
registry; a restarted console shows the decision again."""

from __future__ import annotations

import json
import re
from datetime import date

import httpx
import pytest

from lakehouse.console.accounts import add_account
from lakehouse.console.serve import Console
from lakehouse.contract.alerts import alert_id
from lakehouse.contract.tables import table_names
from lakehouse.ingest.queries import run_ingest
from lakehouse.platform.isolation import updated
from lakehouse.platform.kafka.clients import consumer, producer
from lakehouse.platform.kafka.senders import make_sender
from lakehouse.platform.kafka.topics import ensure_topics
from lakehouse.platform.waits import wait_until
from lakehouse.simulator.producer import ProduceLimits, produce
from lakehouse.simulator.simulation import Simulation
from tests.helpers import free_port, ingest_world

pytestmark = pytest.mark.integration
PASSWORD = "an analyst's password"


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def test_an_alert_reaches_the_queue_and_a_double_clicked_decision_lands_once_in_silver_labels(
    kafka_broker, spark, tmp_path
) -> None:
    settings = ingest_world(kafka_broker, tmp_path, users=40, merchants=20, days=1, transactions=300)
    registry = {
        "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "artifact_location": (tmp_path / "mlruns").as_uri(),
    }
    settings = updated(
        settings, {"console": {"port": free_port()}, "paths": {"data_dir": tmp_path / "data"}, "registry": registry}
    )
    ensure_topics(settings.kafka)
    sender = make_sender(settings.kafka, settings.producer)
    try:
        produce(
            settings,
            Simulation(settings.simulator, date(2026, 10, 1), 3),
            sender,
            ProduceLimits(count=200),
            first_day=0,
        )
    finally:
        sender.close()
    run_ingest(spark, settings, once=True)
    names = table_names(settings)
    paid = spark.table(names.silver("transactions")).orderBy("event_time").first()
    add_account(settings, "ana", "analyst", PASSWORD)

    alert = {
        "alert_id": alert_id(paid.transaction_id),
        "transaction_id": paid.transaction_id,
        "user_id": paid.user_id,
        "merchant_id": paid.merchant_id,
        "amount": paid.amount,
        "currency": paid.currency,
        "event_time": paid.event_time.isoformat() + "Z",
        "transaction_created_at": paid.event_time.isoformat() + "Z",
        "score": 0.93,
        "threshold": 0.4,
        "model_version": 1,
        "reasons": [{"feature": "amount", "value": paid.amount, "text": "Amount far above the user's usual"}],
        "emitted_at": paid.event_time.isoformat() + "Z",
    }
    direct = producer(settings.kafka)
    for value in (b"\xff not an alert", json.dumps(alert).encode(), json.dumps(alert).encode()):  # junk, a repeat
        direct.send(settings.kafka.topics.alerts.name, value, key=paid.user_id.encode())
    direct.flush(30)
    direct.close()

    running = Console(settings, spark)
    running.start()
    try:
        with httpx.Client(base_url=running.url, follow_redirects=True, timeout=30) as web:
            login = web.get("/login")
            web.post("/login", data={"name": "ana", "password": PASSWORD, "csrf": csrf_of(login.text), "next": "/"})
            wait_until(
                lambda: alert["alert_id"] in web.get("/").text,
                timeout_s=60,
                what="the alert in the console's queue",
                poll_s=0.5,
            )
            assert "(1 alerts)" in web.get("/").text  # the repeat is one case, the junk none
            case = web.get(f"/alerts/{alert['alert_id']}").text
            assert "Amount far above the user&#39;s usual" in case
            assert '<tr class="highlight">' in case and paid.transaction_id in case
            form = {"outcome": "fraud", "version": "0", "csrf": csrf_of(case), "note": "customer confirmed"}
            for _ in range(2):  # a double click
                assert web.post(f"/alerts/{alert['alert_id']}/decision", data=form).status_code == 200
            health = web.get("/health").text  # stream status, latency and retraining runs from the real tables
            assert (
                "Not readable now" not in health and "streaming queries" in health and "No retraining run yet" in health
            )
            models = web.get("/models").text  # the real registry (empty here): no promote button for an analyst
            assert "No model yet" in models and "Promote" not in models
    finally:
        running.stop()

    reader = consumer(settings.kafka, settings.kafka.topics.labels.name, group_id=None, consumer_timeout_ms=3000)
    events = [json.loads(m.value) for m in reader if json.loads(m.value).get("source") == "analyst"]
    reader.close()
    assert len(events) == 1 and events[0]["transaction_id"] == paid.transaction_id and events[0]["analyst"] == "ana"
    run_ingest(spark, settings, once=True)
    landed = spark.table(names.silver("labels")).where(f"transaction_id = '{paid.transaction_id}'").collect()
    assert [(r.label, r.source, r.analyst) for r in landed] == [("fraud", "analyst", "ana")]

    again = Console(settings, spark)  # a restart: the queue is read again, the decision comes from the audit
    again.start()
    try:
        with httpx.Client(base_url=again.url, follow_redirects=True, timeout=30) as web:
            login = web.get("/login")
            web.post("/login", data={"name": "ana", "password": PASSWORD, "csrf": csrf_of(login.text), "next": "/"})
            wait_until(lambda: "fraud by ana" in web.get("/").text, timeout_s=60, what="the decision after a restart")
    finally:
        again.stop()
