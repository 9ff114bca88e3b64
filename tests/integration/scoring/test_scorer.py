"""The real-time scorer on the real broker, Spark, Delta and MLflow: history produced to Kafka,
ingested, featurised and trained on; then the scorer turns transactions into
``gold.scored_transactions`` rows and JSON alerts on the alert topic: injected frauds alert with
every field, legitimate-only traffic hardly does; a promoted model takes over mid-stream without a
restart while a broken one is refused; a SIGKILLed scorer restarts without losing an alert or
keeping a duplicate after dedup by alert_id."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest

from lakehouse.contract.alerts import ALERT_FIELDS, alert_id
from lakehouse.contract.tables import table_names
from lakehouse.features.materialize import build_features
from lakehouse.ingest.queries import run_ingest
from lakehouse.ml import registry
from lakehouse.ml.shadow import compare_shadow
from lakehouse.ml.training import train
from lakehouse.platform import isolation
from lakehouse.platform.delta import table_location
from lakehouse.platform.faults import POISON_ENV
from lakehouse.platform.kafka.senders import make_sender
from lakehouse.platform.kafka.topics import delete_topics, ensure_topics
from lakehouse.platform.waits import wait_until
from lakehouse.scoring.scorer import start_scorer
from lakehouse.simulator.producer import ProduceLimits, produce
from lakehouse.simulator.simulation import Simulation
from tests.helpers import PROJECT_DIR, DeltaCount, environ_set, ids_seen, ingest_world, read_alerts
from tests.integration.scoring.job_world import history_clones

pytestmark = pytest.mark.integration
START = date(2026, 9, 1)
HISTORY_DAYS = 24


def running(queries) -> Callable[[], None]:
    def check() -> None:
        for query in queries:
            if not query.isActive:
                raise AssertionError(f"the scorer's {query.name} query stopped: {query.exception()}")

    return check


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
    for query in start_scorer(spark, settings, once=True):
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
    every_second = QuerySettings(trigger="1 second")
    live = settings.model_copy(
        update={
            "streaming": settings.streaming.model_copy(
                update={"queries": {"score": every_second, "score_landing": every_second}}
            ),
            "scoring": settings.scoring.model_copy(update={"reload_check_s": 0}),
        }
    )
    first = registry.champion_version(settings)
    queries = start_scorer(spark, live)
    query_ids = [query.id for query in queries]
    challenger = None

    scored_path = table_location(spark, table_names(settings).scored)

    def scored_all(report) -> Callable[[], bool]:
        rows = DeltaCount(spark, scored_path, where=f"event_date = '{report.first_event[:10]}'")
        return lambda: rows() >= report.transactions

    try:
        before = send_day(settings, 0.25, HISTORY_DAYS + 2, 150, seed=21)
        wait_until(scored_all(before), timeout_s=240, what="the first live transactions scored", check=running(queries))
        assert {
            r.model_version for r in rows_of_day(spark, settings, before).select("model_version").distinct().collect()
        } == {first}

        other = settings.model_copy(update={"training": settings.training.model_copy(update={"seed": 7})})
        challenger = train(spark, other, promote=False).version
        registry.promote(settings, challenger, validate=lambda model: registry.check_scores(spark, settings, model))
        after = send_day(settings, 0.25, HISTORY_DAYS + 3, 150, seed=22)
        wait_until(
            scored_all(after), timeout_s=240, what="transactions scored after the promotion", check=running(queries)
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
            check=running(queries),
        )
        assert {
            r.model_version for r in rows_of_day(spark, settings, refused).select("model_version").distinct().collect()
        } == {challenger}
        assert all(query.isActive for query in queries)
        assert [query.id for query in queries] == query_ids  # never restarted
    finally:
        for query in queries:
            query.stop()
        if challenger is not None:
            registry.set_champion(settings, challenger, reason="test: restore a working champion")


def kill_and_restart(world, tmp_path, cli_env, make_topic, spark, steps: tuple[str, ...]) -> None:
    """The scorer as its own process (its own Spark driver and catalog under a private data
    folder, its own alert and scored-rows topics, sharing the broker and the registry), killed by
    ``FRAUDLAKE_FAULT`` at each of ``steps`` of the same batch in turn: each restart (``--once``)
    replays the batch from what the previous kill left and is itself killed at the next step (a
    crash during recovery); one last restart completes it. Then the outcome is checked: every
    transaction sent is in ``gold.scored_transactions`` exactly once, and every alert the table
    holds reached Kafka, repeats carrying the same decision."""
    settings, _ = world
    topics = settings.kafka.topics
    topics = topics.model_copy(
        update={
            "alerts": topics.alerts.model_copy(update={"name": make_topic("alerts", partitions=1)}),
            "scored": topics.scored.model_copy(update={"name": make_topic("scored", partitions=1)}),
        }
    )
    settings = settings.model_copy(update={"kafka": settings.kafka.model_copy(update={"topics": topics})})
    data = tmp_path / "job-data"
    env = {
        **cli_env,
        "FRAUDLAKE_PATHS__DATA_DIR": str(data),
        "FRAUDLAKE_STREAMING__MAX_RECORDS_PER_TRIGGER": "4000",
        "FRAUDLAKE_REGISTRY__TRACKING_URI": settings.registry.tracking_uri,
        "FRAUDLAKE_REGISTRY__ARTIFACT_LOCATION": settings.registry.artifact_location,
        **{
            f"FRAUDLAKE_LAKEHOUSE__SCHEMAS__{layer.upper()}": schema
            for layer, schema in settings.lakehouse.schemas.model_dump().items()
        },
        **{
            f"FRAUDLAKE_KAFKA__TOPICS__{name.upper()}__NAME": getattr(topics, name).name
            for name in ("transactions", "users", "merchants", "labels", "alerts", "scored")
        },
    }

    fault_log = tmp_path / "faults.log"

    def job(module: str, *args: str, fault: str | None = None) -> subprocess.CompletedProcess[str]:
        own = {**env, "FRAUDLAKE_FAULT": fault, "FRAUDLAKE_FAULT_LOG": str(fault_log)} if fault else env
        return subprocess.run(
            [sys.executable, "-m", module, "--env", "test", *args],
            env=own,
            cwd=PROJECT_DIR,
            capture_output=True,
            text=True,
            timeout=900,
            start_new_session=True,  # the fault kills the job's process group: never this one
        )

    def errors_of(done: subprocess.CompletedProcess[str]) -> str:
        errors = [line for line in done.stderr.splitlines() if " ERROR " in line or "Error" in line]
        return "\n".join(errors[:15]) + "\n...\n" + done.stderr[-1500:]

    def succeeded(done: subprocess.CompletedProcess[str]) -> None:
        assert done.returncode == 0, errors_of(done)

    # The job's own tables: clones of the module world's silver tables, features and merchant daily
    # counts (the scorer's dimensions, history and features), in the job's catalog.
    succeeded(job("tests.integration.scoring.job_world", *history_clones(spark, settings)))
    scored_path = data / "warehouse" / f"{settings.lakehouse.schemas.gold}.db" / "scored_transactions"
    day = HISTORY_DAYS + 5
    sent = send_day(settings, 0.25, day, 300, seed=day)
    for step in steps:  # in the order a batch reaches them
        killed = job("jobs.stream_score", "--once", fault=step)
        assert killed.returncode == -signal.SIGKILL, (step, killed.returncode, errors_of(killed))
        assert fault_log.read_text().splitlines()[-1].endswith(f"killing the job at step {step!r}")
    succeeded(job("jobs.stream_score", "--once"))  # the last restart, as a supervisor would

    rows = spark.read.format("delta").load(str(scored_path))
    assert rows.count() == rows.select("transaction_id").distinct().count()  # nothing twice
    assert rows.where(f"event_date = '{sent.first_event[:10]}'").count() == sent.transactions  # nothing lost
    expected = {r.alert_id for r in rows.where("is_alert").select("alert_id").collect()}
    assert expected, "the day's frauds raised no alert: nothing to check on the alert topic"
    received = [a for _, a in read_alerts(settings, ids_seen(expected))]
    by_id: dict[str, dict] = {}
    for alert in received:
        decision = {k: v for k, v in alert.items() if k != "emitted_at"}
        assert by_id.setdefault(alert["alert_id"], decision) == decision, alert["alert_id"]
    assert set(by_id) == expected
    assert len(received) > len(expected)  # the kills after the alerts were sent made repeats


@pytest.mark.slow
def test_a_scorer_killed_before_its_offset_commit_restarts_without_loss_or_duplicate(
    world, spark, tmp_path, cli_env, make_topic
) -> None:
    """One kill where the most is at stake: the batch's state updated, its alerts and scored
    rows sent to Kafka, its offsets not committed. The restart replays the batch: the repeated
    alerts carry the same decisions and the table keeps each transaction once. Every step in
    turn, each restart killed at the next: the faults lane (``make faults``)."""
    from lakehouse.scoring.processor import BEFORE_COMMIT

    kill_and_restart(world, tmp_path, cli_env, make_topic, spark, (BEFORE_COMMIT,))


@pytest.mark.faults
def test_a_scorer_killed_at_each_step_restarts_once_without_loss_or_duplicate(
    world, spark, tmp_path, cli_env, make_topic
) -> None:
    """Killed at each step of the same batch in turn (after the state update, after the alerts
    are sent, before the offset commit, after the table write), each restart killed at the next
    (a crash during recovery), then one restart completes it: nothing lost, nothing twice, every
    repeated alert the same decision."""
    from lakehouse.scoring.processor import FAULT_STEPS

    kill_and_restart(world, tmp_path, cli_env, make_topic, spark, FAULT_STEPS)


@pytest.mark.slow
def test_features_check_runs_the_scorers_step_and_its_scores_equal_mllibs(world, spark) -> None:
    """``fraudlake features check`` with a champion: every transaction through the scorer's own
    step (state, snapshot features, compiled model), every feature against the offline table and
    every score against MLlib's ``transform`` of the champion on it."""
    from lakehouse.ml.compiled import TOLERANCE
    from lakehouse.scoring.check import check_scoring

    settings, _ = world
    run_ingest(spark, settings, once=True)
    report = check_scoring(spark, settings)
    silver = spark.table(table_names(settings).silver("transactions")).count()
    assert report.compared == report.offline_rows == silver and report.missing_online == 0
    assert report.model_version == registry.champion_version(settings)
    assert report.score.null_mismatches == 0 and report.score.max_abs <= TOLERANCE, report.score
    assert report.decisions_differ == 0 and report.ok, report


def test_a_record_that_fails_the_scorer_on_its_own_is_quarantined_and_the_rest_is_scored(world, spark) -> None:
    # After the crash test's day +5 (it sends on the same transactions topic: a later day sent
    # before it would make its events late).
    settings, _ = world
    names = table_names(settings)
    day = send_day(settings, 0.04, HISTORY_DAYS + 6, 120, seed=41)
    arrived = labels(spark, settings).join(spark.table(names.silver("transactions")), "transaction_id")
    poison = arrived.where(f"event_date = '{day.first_event[:10]}'").orderBy("transaction_id").first()
    with environ_set({POISON_ENV: poison.transaction_id}):
        score_once(spark, settings)

    assert rows_of_day(spark, settings, day).where(f"transaction_id = '{poison.transaction_id}'").count() == 0
    assert rows_of_day(spark, settings, day).count() == day.transactions - 1
    set_aside = spark.table(names.quarantine).where("source = 'score'").collect()
    assert [(r._topic, r._partition, r._offset, r.key) for r in set_aside] == [
        (settings.kafka.topics.transactions.name, poison._partition, poison._offset, poison.user_id)
    ]
    assert set_aside[0].reason.startswith("poison_record:") and "fault injection" in set_aside[0].reason
    assert json.loads(set_aside[0].value)["transaction_id"] == poison.transaction_id


def test_a_shadow_version_scores_beside_the_champion_without_alerts_and_is_compared(world, spark) -> None:
    """The module's last day. The shadow version scores every transaction the champion scores,
    into gold.shadow_scores, and sends no alert; `model compare` judges both on the same
    transactions with their labels (inline here: all matured, these days are in the past)."""
    settings, _ = world
    names = table_names(settings)
    champion = registry.champion_version(settings)
    weak = settings.training.model_copy(
        update={"seed": 3, "gbt": settings.training.gbt.model_copy(update={"max_iter": 5})}
    )
    shadow = train(spark, settings.model_copy(update={"training": weak}), promote=False).version
    registry.set_shadow(settings, shadow, reason="test")
    try:
        day = send_day(settings, 0.25, HISTORY_DAYS + 7, 150, seed=51)
        score_once(spark, settings)
    finally:
        registry.set_shadow(settings, None, reason="test")

    scored = rows_of_day(spark, settings, day).select("transaction_id", "score", "is_alert", "model_version")
    shadowed = spark.table(names.shadow).where(f"event_date = '{day.first_event[:10]}'")
    assert shadowed.count() == scored.count() == day.transactions
    assert {tuple(r) for r in shadowed.select("model_version", "shadow_model_version").distinct().collect()} == {
        (champion, shadow)
    }
    both = shadowed.alias("s").join(scored.alias("c"), "transaction_id")
    assert both.where("s.score != c.score OR s.is_alert != c.is_alert").count() == 0  # the champion's, as scored
    assert both.where("s.shadow_is_alert != (s.shadow_score >= s.shadow_threshold)").count() == 0
    assert both.where("s.shadow_score != s.score").count() > 0  # another model's scores
    alerted = {r.transaction_id for r in scored.where("is_alert").collect()}
    assert alerted  # a day with a quarter of fraud
    day_ids = {r.transaction_id for r in scored.collect()}
    on_kafka = [a for _, a in read_alerts(settings, ids_seen({alert_id(t) for t in alerted}))]
    of_day = [a for a in on_kafka if a["transaction_id"] in day_ids]
    assert len(of_day) == len(alerted) and {a["model_version"] for a in of_day} == {champion}  # none from the shadow

    run_ingest(spark, settings, once=True)  # the day's labels (inline) in silver
    compared = compare_shadow(spark, settings, shadow)
    ran = spark.table(names.shadow).where(f"shadow_model_version = {shadow}")  # the day (and the history if unscored)
    truth = ran.join(spark.table(names.silver("transactions")), "transaction_id").where("is_fraud").count()
    assert compared.rows == ran.count() and compared.frauds == truth >= day.fraud > 0
    assert compared.champion_versions == (champion,) and compared.days >= 1
    assert 0 < compared.shadow_ap <= 1 and 0 < compared.champion_ap <= 1
