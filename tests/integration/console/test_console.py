"""The console in a real browser (Chromium from the operating system's packages, driven by
Playwright) on the real broker, Spark, Delta and MLflow: an alert appended to ``fraud_alerts``
appears in the queue by itself; its case shows the reasons and the user's payments from silver;
"Confirm fraud" double-clicked puts one label event on ``fraud_labels``, which ingest lands in
``silver.labels``; an analyst cannot promote (no button, the request refused), an admin can (the
champion changes, and gold.console_audit says who); the models page shows each version's live
precision on matured labels and the champion's training plots; a page without a session goes to the login page and a
forged form is refused. The tests take the screenshots in docs/console/."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import date

import httpx
import pytest

from lakehouse.console.accounts import add_account
from lakehouse.console.serve import Console
from lakehouse.contract.alerts import alert_id
from lakehouse.contract.tables import table_names
from lakehouse.features.materialize import build_features
from lakehouse.ingest.queries import run_ingest
from lakehouse.ml import registry
from lakehouse.ml.training import train
from lakehouse.platform.isolation import updated
from lakehouse.platform.kafka.clients import consumer, producer
from lakehouse.platform.kafka.senders import make_sender
from lakehouse.platform.kafka.topics import ensure_topics
from lakehouse.simulator.producer import ProduceLimits, produce
from lakehouse.simulator.simulation import Simulation
from tests.helpers import PROJECT_DIR, free_port, ingest_world

pytestmark = pytest.mark.integration
PASSWORD = "an analyst's password"
SCREENSHOTS = PROJECT_DIR / "docs" / "console"


@pytest.fixture(scope="module")
def world(kafka_broker, spark, tmp_path_factory):
    """Two simulated days ingested, two model versions (the first champion), an analyst and an
    admin, and one alert on the alert topic (with a repeat and a record that is not an alert)."""
    folder = tmp_path_factory.mktemp("console")
    settings = ingest_world(kafka_broker, folder, users=40, merchants=20, days=2, transactions=600, fraud_rate=0.1)
    registry_dir = {
        "tracking_uri": f"sqlite:///{folder / 'mlflow.db'}",
        "artifact_location": (folder / "mlruns").as_uri(),
    }
    settings = updated(
        settings,
        {
            "console": {"port": free_port()},
            "paths": {"data_dir": folder / "data"},
            "registry": registry_dir,
            # the simulated days' own labels: the analyst's decision below would otherwise make the
            # label stream the source of every streamed payment's label (labels.source auto)
            "labels": {"source": "inline"},
            "training": {"gap_days": 0, "validation_days": 1, "gbt": {"max_iter": 5, "max_depth": 2}},
        },
    )
    ensure_topics(settings.kafka)
    sender = make_sender(settings.kafka, settings.producer)
    try:
        simulation = Simulation(settings.simulator, date(2026, 10, 1), traffic_seed=3)
        produce(settings, simulation, sender, ProduceLimits(count=600), first_day=0)
    finally:
        sender.close()
    run_ingest(spark, settings, once=True)
    build_features(spark, settings)
    first = train(spark, settings, promote=False).version
    train(spark, settings, promote=False)
    registry.set_champion(settings, first, reason="test: the first model")
    score_as(spark, settings, first)
    add_account(settings, "ana", "analyst", PASSWORD)
    add_account(settings, "root", "admin", PASSWORD)

    paid = spark.table(table_names(settings).silver("transactions")).orderBy("event_time").first()
    when = paid.event_time.isoformat() + "Z"
    alert = {
        "alert_id": alert_id(paid.transaction_id),
        "transaction_id": paid.transaction_id,
        "user_id": paid.user_id,
        "merchant_id": paid.merchant_id,
        "amount": paid.amount,
        "currency": paid.currency,
        "event_time": when,
        "transaction_created_at": when,
        "score": 0.93,
        "threshold": 0.4,
        "model_version": first,
        "reasons": [{"feature": "amount", "value": paid.amount, "text": "Amount far above the user's usual"}],
        "emitted_at": when,
    }
    return settings, alert


def score_as(spark, settings, version: int) -> None:
    """gold.scored_transactions as if ``version`` had alerted on 4 frauds and 4 legitimate payments
    of silver, all long matured: its live precision is 0.5, its recall 1."""
    from pyspark.sql import functions as F

    from lakehouse.contract.tables import SCORED_COLUMNS

    names = table_names(settings)
    silver = spark.table(names.silver("transactions"))
    picked = silver.where("is_fraud").limit(4).unionByName(silver.where("NOT is_fraud").limit(4))
    given = {"model_version": F.lit(version), "is_alert": F.lit(True), "score": F.lit(0.9)}
    columns = [
        given.get(c, F.col(c) if c in silver.columns else F.lit(None)).cast(kind).alias(c) for c, kind in SCORED_COLUMNS
    ]
    picked.select(*columns).write.format("delta").mode("append").saveAsTable(names.scored)


@pytest.fixture(scope="module")
def running(world, spark) -> Iterator[Console]:
    settings, _ = world
    console = Console(settings, spark)
    console.start()
    yield console
    console.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    assert executable, "Chromium is not installed: `.ci/run` installs Debian's chromium package (apt)"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox"])
        yield chromium
        chromium.close()


def log_in(browser, url: str, name: str):
    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.goto(f"{url}/")
    assert "/login" in page.url  # no session: the login page
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/")
    return page


def send_alert(settings, alert: dict) -> None:
    direct = producer(settings.kafka)
    for value in (b"\xff not an alert", json.dumps(alert).encode(), json.dumps(alert).encode()):  # junk, a repeat
        direct.send(settings.kafka.topics.alerts.name, value, key=alert["user_id"].encode())
    direct.flush(30)
    direct.close()


def test_an_alert_appears_by_itself_and_a_double_clicked_decision_lands_once_in_silver_labels(
    world, running, browser, spark
) -> None:
    settings, alert = world
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page = log_in(browser, running.url, "ana")
    assert "No alert matches" in page.content()
    send_alert(settings, alert)  # after the page is open: it must show the alert without a click
    page.wait_for_selector(f"a[href='/alerts/{alert['alert_id']}']", timeout=60_000)
    assert "(1 alerts)" in page.content()  # the repeat is one case, the junk none
    page.screenshot(path=str(SCREENSHOTS / "queue.png"), full_page=True)

    page.click(f"a[href='/alerts/{alert['alert_id']}']")
    assert page.inner_text("#reasons") == "Amount far above the user's usual"
    assert alert["transaction_id"] in page.inner_text("#history tr.highlight")
    page.fill("input[name=note]", "customer confirmed")
    page.dblclick("button[value=fraud]")
    page.wait_for_selector("#decision")
    assert "fraud by ana" in page.inner_text("#decision")
    page.screenshot(path=str(SCREENSHOTS / "case.png"), full_page=True)

    reader = consumer(settings.kafka, settings.kafka.topics.labels.name, group_id=None, consumer_timeout_ms=3000)
    events = [e for e in (json.loads(m.value) for m in reader) if e.get("source") == "analyst"]
    reader.close()
    assert len(events) == 1 and events[0]["transaction_id"] == alert["transaction_id"]
    assert events[0]["analyst"] == "ana" and events[0]["note"] == "customer confirmed"
    run_ingest(spark, settings, once=True)
    names = table_names(settings)
    landed = spark.table(names.silver("labels")).where(f"transaction_id = '{alert['transaction_id']}'").collect()
    assert [(r.label, r.source, r.analyst) for r in landed] == [("fraud", "analyst", "ana")]
    page.close()


def test_an_analyst_cannot_promote_an_admin_can_and_forged_or_sessionless_requests_are_refused(
    world, running, browser, spark
) -> None:
    settings, _ = world
    champion = registry.champion_version(settings)
    analyst = log_in(browser, running.url, "ana")
    analyst.goto(f"{running.url}/models")
    assert analyst.locator("text=Promote").count() == 0 and analyst.locator("text=champion").count() >= 1
    token = analyst.get_attribute("form[action='/logout'] input[name=csrf]", "value")
    refused = analyst.request.post(
        f"{running.url}/models/{champion + 1}/promote", form={"csrf": token, "confirm": "yes"}
    )
    assert refused.status == 403 and registry.champion_version(settings) == champion
    forged = analyst.request.post(f"{running.url}/logout", form={"csrf": "forged"})
    assert forged.status == 403
    analyst.close()
    with httpx.Client(base_url=running.url) as anonymous:
        assert anonymous.get("/models").status_code == 303
        assert anonymous.post("/models/1/promote", data={"confirm": "yes"}).status_code == 303

    admin = log_in(browser, running.url, "root")
    admin.goto(f"{running.url}/models")
    live = admin.locator(f"#versions tr:has(td:text-is('{champion}')) td.live-precision").inner_text()
    assert live == "0.500"  # score_as: 4 of the champion's 8 matured alerts were fraud
    plots = "[...document.querySelectorAll('#plots img')].map(i => i.complete && i.naturalWidth > 0)"
    assert admin.evaluate(plots) == [True] * 4  # the training report's plots, from MLflow's artifacts
    admin.once("dialog", lambda dialog: dialog.accept())  # "Make version N the champion?"
    admin.click(f"form[action='/models/{champion + 1}/promote'] button")
    admin.wait_for_selector("#champions li:has-text('promoted by root')")
    assert registry.champion_version(settings) == champion + 1
    admin.wait_for_function(f"{plots}.every(Boolean)")  # the new champion's plots
    admin.screenshot(path=str(SCREENSHOTS / "models.png"), full_page=True)
    audit = spark.table(table_names(settings).console_audit).orderBy("recorded_at").collect()
    assert (audit[-1].actor, audit[-1].action, audit[-1].model_version) == ("root", "promote", champion + 1)
    assert any(row.actor == "ana" and row.action.startswith("refused:") for row in audit)
    admin.goto(f"{running.url}/health")
    assert "Not readable now" not in admin.content() and admin.locator("#streams").count() == 1
    admin.screenshot(path=str(SCREENSHOTS / "health.png"), full_page=True)
    admin.close()
