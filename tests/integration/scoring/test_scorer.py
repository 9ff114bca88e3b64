"""The real-time scorer on the real broker, Spark, Delta and MLflow: history produced to Kafka,
ingested, featurised and trained on; then the scorer turns transactions into
``gold.scored_transactions`` rows and JSON alerts on the alert topic: injected frauds alert with
every field, legitimate-only traffic hardly does; a promoted model takes over mid-stream without a
restart while a broken one is refused; a SIGKILLed scorer restarts without losing an alert or
keeping a duplicate after dedup by alert_id."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest

from lakehouse.contract.alerts import ALERT_FIELDS, alert_id
from lakehouse.contract.tables import table_names
from lakehouse.features.materialize import build_features
from lakehouse.ingest.queries import run_ingest
from lakehouse.ml import registry
from lakehouse.ml.training import train
from lakehouse.platform import isolation
from lakehouse.platform.kafka.clients import consumer
from lakehouse.platform.kafka.senders import make_sender
from lakehouse.platform.kafka.topics import delete_topics, ensure_topics
from lakehouse.platform.waits import wait_until
from lakehouse.scoring.scorer import start_scorer
from lakehouse.simulator.producer import ProduceLimits, produce
from lakehouse.simulator.simulation import Simulation
from tests.helpers import PROJECT_DIR, ingest_world, release_environ, still_running

pytestmark = pytest.mark.integration
START = date(2026, 9, 1)
HISTORY_DAYS = 24


def running(query) -> Callable[[], None]:
    def check() -> None:
        if not query.isActive:
            raise AssertionError(f"the scorer stopped: {query.exception()}")

    return check


def read_alerts(settings, done: Callable[[list[dict]], bool], timeout_s: float = 120) -> list[tuple[str, dict]]:
    """Every record of the alert topic (key, parsed value): reads until the topic is idle for a
    second and ``done(values)`` holds."""
    reader = consumer(settings.kafka, settings.kafka.topics.alerts.name, group_id=None, consumer_timeout_ms=1000)
    records: list[tuple[str, dict]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            for message in reader:
                records.append((message.key.decode(), json.loads(message.value)))
            if done([value for _, value in records]):
                return records
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{len(records)} alerts on {settings.kafka.topics.alerts.name}: not what was expected"
                )
    finally:
        reader.close()


def ids_seen(expected: set[str]) -> Callable[[list[dict]], bool]:
    return lambda values: expected <= {v["alert_id"] for v in values}


def send_day(settings, fraud_rate: float, day: int, count: int, seed: int):
    sim = settings.simulator.model_copy(update={"fraud_rate": fraud_rate})
    sender = make_sender(settings.kafka, settings.producer)
    try:
        return produce(
            settings, Simulation(sim, START, traffic_seed=seed), sender, ProduceLimits(count=count), first_day=day
        )
    finally:
        sender.close()


@pytest.fixture(scope="module")
def world(kafka_broker, spark, tmp_path_factory):
    """24 simulated days (300 users, 4% fraud) produced to this module's topics, ingested,
    featurised and trained on: a champion with an alert budget of 20 a day."""
    folder = tmp_path_factory.mktemp("scoring")
    settings = isolation.isolated(
        ingest_world(kafka_broker, folder, days=HISTORY_DAYS, transactions=9000, fraud_rate=0.04),
        schemas=False,  # already its own
        registry_dir=folder,
        streaming={"max_records_per_trigger": 20000, "queries": {}},
        training={"gbt": {"max_iter": 20}, "threshold": {"daily_alerts": 20}},
    )
    ensure_topics(settings.kafka)
    history = send_day(settings, 0.04, 0, 9000, seed=5)
    run_ingest(spark, settings, once=True)
    build_features(spark, settings)
    first = train(spark, settings)
    assert first.promotion.promoted
    yield settings.model_copy(update={"paths": settings.paths}), history
    delete_topics(settings.kafka, [t.name for t in settings.kafka.topics.all()])
    isolation.drop_schemas(spark, settings)


def score_once(spark, settings) -> None:
    query = start_scorer(spark, settings, once=True)
    query.awaitTermination()
    assert query.exception() is None, query.exception()


def labels(spark, settings):
    """Ground truth of everything produced so far (ingested now)."""
    run_ingest(spark, settings, once=True)
    return spark.table(table_names(settings).silver("transactions")).select("transaction_id", "is_fraud")


@pytest.mark.slow
def test_frauds_alert_with_every_field_and_legitimate_traffic_hardly_does(world, spark) -> None:
    settings, _ = world
    names = table_names(settings)
    champion = registry.champion_version(settings)
    threshold = float(registry.version_info(settings, champion).tags["threshold"])

    score_once(spark, settings)  # the history: warms the user state, scores every transaction
    scored = spark.table(names.scored)
    assert (
        scored.count()
        == scored.select("transaction_id").distinct().count()
        == spark.table(names.silver("transactions")).count()
    )
    assert scored.where(f"model_version != {champion} OR threshold != {threshold}").count() == 0
    alerts_in_table = scored.where("is_alert").count()
    assert alerts_in_table == scored.where(f"score >= {threshold}").count() > 0

    records = read_alerts(settings, lambda values: len(values) >= alerts_in_table)
    assert len(records) == alerts_in_table
    for key, alert in records:
        assert list(alert) == list(ALERT_FIELDS)
        assert all(alert[f] is not None for f in ALERT_FIELDS), alert
        assert key == alert["user_id"] and alert["alert_id"] == alert_id(alert["transaction_id"])
        assert alert["score"] >= alert["threshold"] == threshold and alert["model_version"] == champion
        assert 1 <= len(alert["reasons"]) <= settings.scoring.top_reasons
        assert all(
            r["text"].startswith(r["text"].split(":")[0]) and ": " in r["text"] and "typical" in r["text"]
            for r in alert["reasons"]
        ), alert["reasons"]

    # New days after the history: legitimate-only traffic, then a day with many frauds.
    legit = send_day(settings, 0.0, HISTORY_DAYS, 400, seed=11)
    score_once(spark, settings)
    fresh = (
        spark.table(names.scored)
        .join(labels(spark, settings), "transaction_id")
        .where(f"event_date >= '{legit.first_event[:10]}'")
    )
    assert fresh.count() == legit.transactions and fresh.where("is_fraud").count() == 0
    false_alerts = fresh.where("is_alert").count()
    assert false_alerts <= 0.03 * legit.transactions, false_alerts

    frauds = send_day(settings, 0.25, HISTORY_DAYS + 1, 400, seed=12)
    score_once(spark, settings)
    day = (
        spark.table(names.scored)
        .join(labels(spark, settings), "transaction_id")
        .where(f"event_date >= '{frauds.first_event[:10]}'")
    )
    caught = day.where("is_fraud AND is_alert").count()
    assert frauds.fraud > 50 and caught >= 0.5 * frauds.fraud, (caught, frauds.fraud)
    assert caught >= 0.6 * day.where("is_alert").count()  # most alerts are frauds


def rows_of_day(spark, settings, report):
    return spark.table(table_names(settings).scored).where(f"event_date = '{report.first_event[:10]}'")


@pytest.mark.slow
def test_a_promoted_model_takes_over_mid_stream_and_a_broken_one_is_refused(world, spark) -> None:
    from lakehouse.settings import QuerySettings

    settings, _ = world
    live = settings.model_copy(
        update={
            "streaming": settings.streaming.model_copy(update={"queries": {"score": QuerySettings(trigger="1 second")}})
        }
    )
    first = registry.champion_version(settings)
    query = start_scorer(spark, live)
    query_id = query.id
    challenger = None

    def scored_all(report) -> Callable[[], bool]:
        return lambda: rows_of_day(spark, settings, report).count() >= report.transactions

    try:
        before = send_day(settings, 0.25, HISTORY_DAYS + 2, 150, seed=21)
        wait_until(scored_all(before), timeout_s=240, what="the first live transactions scored", check=running(query))
        assert {
            r.model_version for r in rows_of_day(spark, settings, before).select("model_version").distinct().collect()
        } == {first}

        other = settings.model_copy(update={"training": settings.training.model_copy(update={"seed": 7})})
        challenger = train(spark, other, promote=False).version
        registry.promote(settings, challenger, validate=lambda model: registry.check_scores(spark, settings, model))
        after = send_day(settings, 0.25, HISTORY_DAYS + 3, 150, seed=22)
        wait_until(
            scored_all(after), timeout_s=240, what="transactions scored after the promotion", check=running(query)
        )
        rows = rows_of_day(spark, settings, after)
        assert {r.model_version for r in rows.select("model_version").distinct().collect()} == {challenger}
        later_alerts = {r.alert_id for r in rows.where("is_alert").select("alert_id").collect()}
        assert later_alerts
        on_kafka = {a["alert_id"]: a for _, a in read_alerts(settings, ids_seen(later_alerts))}
        assert all(on_kafka[i]["model_version"] == challenger for i in later_alerts)

        weak = settings.model_copy(
            update={
                "training": settings.training.model_copy(
                    update={"gbt": settings.training.gbt.model_copy(update={"max_iter": 2})}
                )
            }
        )
        broken = train(spark, weak, promote=False).version
        shutil.rmtree(Path(registry.artifact_path(settings, broken)) / "sparkml" / "stages")
        registry.set_champion(settings, broken, reason="test: a model whose files are damaged")
        refused = send_day(settings, 0.25, HISTORY_DAYS + 4, 150, seed=23)
        wait_until(
            scored_all(refused),
            timeout_s=240,
            what="transactions scored after a broken promotion",
            check=running(query),
        )
        assert {
            r.model_version for r in rows_of_day(spark, settings, refused).select("model_version").distinct().collect()
        } == {challenger}
        assert query.isActive and query.id == query_id  # never restarted
    finally:
        query.stop()
        if challenger is not None:
            registry.set_champion(settings, challenger, reason="test: restore a working champion")


@pytest.mark.slow
def test_a_killed_scorer_restarts_without_losing_or_keeping_duplicate_alerts(
    world, spark, tmp_path, cli_env, make_topic, previous_release
) -> None:
    """The scorer as its own process (its own Spark driver and catalog under a private data
    folder, its own alert topic, sharing the broker and the registry), SIGKILLed mid-stream,
    then restarted.

    The killed scorer runs the previous release (its code from git) and the restart runs this one:
    an upgrade right after a crash, the hardest case for the checkpoint, whose query name, state
    layout and ``txnAppId`` strings must have stayed the same."""
    settings, _ = world
    topics = settings.kafka.topics
    topics = topics.model_copy(
        update={"alerts": topics.alerts.model_copy(update={"name": make_topic("alerts", partitions=1)})}
    )
    settings = settings.model_copy(update={"kafka": settings.kafka.model_copy(update={"topics": topics})})
    data = tmp_path / "job-data"
    env = {
        **cli_env,
        "FRAUDLAKE_PATHS__DATA_DIR": str(data),
        "FRAUDLAKE_STREAMING__TRIGGER": "1 second",
        "FRAUDLAKE_STREAMING__QUERIES__SCORE__TRIGGER": "1 second",
        "FRAUDLAKE_STREAMING__MAX_RECORDS_PER_TRIGGER": "2000",
        "FRAUDLAKE_REGISTRY__TRACKING_URI": settings.registry.tracking_uri,
        "FRAUDLAKE_REGISTRY__ARTIFACT_LOCATION": settings.registry.artifact_location,
        **{
            f"FRAUDLAKE_LAKEHOUSE__SCHEMAS__{layer.upper()}": schema
            for layer, schema in settings.lakehouse.schemas.model_dump().items()
        },
        **{
            f"FRAUDLAKE_KAFKA__TOPICS__{name.upper()}__NAME": getattr(topics, name).name
            for name in ("transactions", "users", "merchants", "alerts")
        },
    }

    def job(module: str, *args: str, attempts: int = 1) -> None:
        for attempt in range(1, attempts + 1):
            done = subprocess.run(
                [sys.executable, "-m", f"jobs.{module}", "--env", "test", *args],
                env=env,
                cwd=PROJECT_DIR,
                capture_output=True,
                text=True,
                timeout=900,
            )
            errors = [
                line
                for line in done.stderr.splitlines()
                if " ERROR " in line or "Exception" in line or "Error:" in line
            ]
            report = "\n".join(errors[:15]) + "\n...\n" + done.stderr[-1500:]
            if done.returncode == 0:
                return
            assert attempt < attempts, report
            warnings.warn(
                f"jobs.{module} {' '.join(args)} failed (attempt {attempt}), run again as a supervisor would:"
                f"\n{report}",
                stacklevel=2,
            )

    job("stream_ingest", "--once")  # the job's own tables: what the scorer joins with
    job("build_features")
    extra = send_day(settings, 0.25, HISTORY_DAYS + 5, 1500, seed=24)  # more to score than one batch
    scored_path = data / "warehouse" / f"{settings.lakehouse.schemas.gold}.db" / "scored_transactions"

    def scored_count() -> int:
        try:
            return spark.read.format("delta").load(str(scored_path)).count()
        except Exception:
            return 0

    command = [sys.executable, "-m", "jobs.stream_score", "--env", "test"]
    scorer = subprocess.Popen(
        command,
        env=release_environ(previous_release, env),
        cwd=previous_release,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(
            lambda: scored_count() > 0,
            timeout_s=300,
            what="the first scored batch",
            check=still_running(scorer, "the scorer"),
        )
        os.killpg(scorer.pid, signal.SIGKILL)  # the driver and its JVM, mid-stream
        scorer.wait(timeout=60)
        partial = scored_count()
    finally:
        if scorer.poll() is None:
            os.killpg(scorer.pid, signal.SIGKILL)
    # The restarted scorer, as systemd would run it (Restart=on-failure). Under CI load the kill
    # can land after the batch's Delta commit but before the query's own commit: the restart then
    # takes the replay path, which used to skip the stateful step and failed with "Not all
    # StateStores committed for batch 0" (fixed in ScoreBatch). One supervisor-style second attempt
    # stays allowed, with a warning carrying the job's error lines; no loss and no duplicates are
    # asserted either way.
    job("stream_score", "--once", attempts=2)

    rows = spark.read.format("delta").load(str(scored_path))
    total = rows.count()
    assert partial < total  # the kill really happened mid-stream
    assert total == rows.select("transaction_id").distinct().count()  # every transaction scored once
    assert (
        rows.where(f"event_date >= '{extra.first_event[:10]}'").count() == extra.transactions
    )  # the days after the others
    expected = {r.alert_id for r in rows.where("is_alert").select("alert_id").collect()}
    assert len(expected) > 50
    # Every alert the table holds reached Kafka; repeats (from the replayed batch) share the id and
    # the decision (same model, same restored state), so dropping them by alert_id leaves each
    # alert once. Only emitted_at may differ: a batch killed before its Delta commit is re-scored.
    received = [a for _, a in read_alerts(settings, ids_seen(expected))]
    by_id: dict[str, dict] = {}
    for alert in received:
        decision = {k: v for k, v in alert.items() if k != "emitted_at"}
        assert by_id.setdefault(alert["alert_id"], decision) == decision
    assert set(by_id) == expected
