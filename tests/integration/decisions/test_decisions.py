"""The decision service on the real broker, Redis, Spark, Delta and MLflow: two instances sharing
the online store decide the same users' transactions concurrently, and the stream scorer's own
step, run over the same records, computes the same features and scores (1e-9), before and after a
restart that rebuilds the store from silver and the topic; a retry gets the first answer; bad
requests are answered 4xx and land in silver's quarantine with their reason; a service killed
between its record's send and its state write loses nothing and applies it once; a promotion
reaches the service under load without a failed request."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta

import httpx
import pytest

from lakehouse.contract.alerts import alert_id
from lakehouse.contract.features import NUMERIC_FEATURES
from lakehouse.contract.tables import table_names
from lakehouse.decisions.serve import DecisionServer, online_store, serving_dir
from lakehouse.decisions.service import AFTER_SEND
from lakehouse.decisions.warm import warm_store
from lakehouse.features.materialize import build_features
from lakehouse.ingest.queries import run_ingest
from lakehouse.ml import registry
from lakehouse.ml.training import train
from lakehouse.platform import isolation
from lakehouse.platform.faults import FAULT_ENV
from lakehouse.platform.kafka.senders import make_sender
from lakehouse.platform.kafka.topics import delete_topics, ensure_topics, partition_of
from lakehouse.platform.waits import wait_until
from lakehouse.scoring.champion import Champion, Publisher
from lakehouse.scoring.check import run_scoring_path
from lakehouse.simulator.producer import ProduceLimits, produce
from lakehouse.simulator.simulation import Simulation
from tests.helpers import FRAUDLAKE, environ_of, free_port, ids_seen, ingest_world, read_alerts, still_running

pytestmark = pytest.mark.integration
START = date(2026, 9, 1)
HISTORY_DAYS = 14
TOLERANCE = 1e-9


@pytest.fixture(scope="module")
def world(kafka_broker, redis_server, spark, tmp_path_factory):
    """14 simulated days (300 users, 4% fraud) produced, ingested, featurised and trained on; the
    champion and the dimension snapshot published in the scorer's serving folder."""
    folder = tmp_path_factory.mktemp("decisions")
    settings = isolation.isolated(
        ingest_world(kafka_broker, folder, days=HISTORY_DAYS, transactions=4200, fraud_rate=0.04),
        schemas=False,
        registry_dir=folder,
        streaming={"max_records_per_trigger": 20000, "queries": {}},
        training={"gbt": {"max_iter": 10}, "threshold": {"daily_alerts": 20}, "gap_days": 2, "validation_days": 5},
    )
    ensure_topics(settings.kafka)
    sender = make_sender(settings.kafka, settings.producer)
    try:
        produce(
            settings,
            Simulation(settings.simulator, START, traffic_seed=3),
            sender,
            ProduceLimits(count=4200),
            first_day=0,
        )
    finally:
        sender.close()
    run_ingest(spark, settings, once=True)
    build_features(spark, settings)
    assert train(spark, settings).promotion.promoted
    Publisher(spark, settings, serving_dir(settings), Champion(spark, settings)).refresh()
    yield settings
    delete_topics(settings.kafka, [t.name for t in settings.kafka.topics.all()])
    isolation.drop_schemas(spark, settings)


def day_records(settings, day: int, count: int) -> list[bytes]:
    simulation = Simulation(settings.simulator, START, traffic_seed=3)
    return simulation.transaction_json(simulation.day(day))[:count]


def bunched(records: list[bytes]) -> list[bytes]:
    """The records, each a millisecond after the one before from the first one's time: posted all
    at once, none is late whatever order they arrive in."""
    values = [json.loads(r) for r in records]
    first = datetime.fromisoformat(values[0]["timestamp"])
    return [
        json.dumps(v | {"timestamp": (first + timedelta(milliseconds=i)).isoformat()}).encode()
        for i, v in enumerate(values)
    ]


def decide_all(settings, urls: list[str], records: list[bytes], *, together: bool = False) -> list[dict]:
    """Every record posted once, in order within its Kafka partition (as a payment switch keeps a
    card's order), the partitions concurrently, alternating between the instances; ``together``:
    each partition's records all at once instead (any order), so they queue and are decided in
    batches."""
    partitions = settings.kafka.topics.transactions.partitions
    lanes: dict[int, list[bytes]] = {}
    for body in records:
        lanes.setdefault(partition_of(json.loads(body)["user_id"], partitions), []).append(body)

    with httpx.Client(timeout=30, limits=httpx.Limits(max_connections=len(records))) as client:

        def post(at: int, body: bytes) -> dict:
            response = client.post(f"{urls[at % len(urls)]}/v1/decisions?explain=features", content=body)
            assert response.status_code == 200, response.text
            return response.json()

        def post_lane(lane: list[bytes]) -> list[dict]:
            if together:
                with ThreadPoolExecutor(len(lane)) as pool:
                    return list(pool.map(post, range(len(lane)), lane))
            return [post(at, body) for at, body in enumerate(lane)]

        with ThreadPoolExecutor(len(lanes)) as pool:
            return [answer for answers in pool.map(post_lane, lanes.values()) for answer in answers]


def stream_step(spark, settings, folder) -> dict[str, dict]:
    """The stream scorer's step (its own operator, warm from silver) over what silver has not
    processed: transaction_id → its features and score."""
    Publisher(spark, settings, folder / "serving", Champion(spark, settings)).refresh()
    target = table_names(settings).feature_check
    run_scoring_path(spark, settings, target, folder, starting_offsets="silver")
    rows = spark.table(target).where("status = 'accepted'").collect()
    return {r["transaction_id"]: r.asDict() for r in rows}


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/v1/health", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def assert_same(answers: list[dict], stream: dict[str, dict]) -> None:
    assert {a["transaction_id"] for a in answers} == set(stream), "the stream scored other transactions"
    for answer in answers:
        theirs = stream[answer["transaction_id"]]
        assert math.isclose(answer["score"], theirs["score"], rel_tol=TOLERANCE, abs_tol=TOLERANCE), answer
        for name in NUMERIC_FEATURES:
            ours, other = answer["features"][name], theirs[name]
            if ours is None or other is None:
                assert ours is None and other is None, (name, answer["transaction_id"], ours, other)
            else:
                assert math.isclose(ours, other, rel_tol=TOLERANCE, abs_tol=TOLERANCE), (name, ours, other)


@pytest.mark.slow
def test_two_instances_decide_as_the_stream_scores_before_and_after_a_restart_from_silver(world, spark, tmp_path):
    settings = world
    first, second = (DecisionServer(settings, port=free_port()).start() for _ in range(2))
    try:
        warm_store(spark, settings, first.service)
        decided = decide_all(settings, [first.url, second.url], day_records(settings, HISTORY_DAYS, 120))
        assert_same(decided, stream_step(spark, settings, tmp_path / "before"))
        outcomes = {a["decision"] for a in decided}
        assert "approve" in outcomes and outcomes & {"review", "decline"}, outcomes
        for answer in decided:
            review, decline = answer["thresholds"]["review"], answer["thresholds"]["decline"]
            score = answer["score"]
            assert answer["decision"] == ("decline" if score >= decline else "review" if score >= review else "approve")
        flagged = {a["alert_id"] for a in decided if a["decision"] != "approve"}
        assert flagged == {alert_id(a["transaction_id"]) for a in decided if a["decision"] != "approve"}
        read_alerts(settings, ids_seen(flagged))  # the alerts the stream would give, already sent

        run_ingest(spark, settings, once=True)  # silver holds the first day's decisions
        unread = decide_all(settings, [first.url, second.url], day_records(settings, HISTORY_DAYS + 1, 60))
    finally:
        first.stop()
        second.stop()

    # A restart: the store is rebuilt from silver and the records silver has not processed yet.
    # Then each partition's requests at once: they are decided in batches, as the stream scores them.
    with DecisionServer(settings, port=free_port()) as again:
        warmed = warm_store(spark, settings, again.service)
        assert warmed.from_topic == len(unread)
        later = decide_all(settings, [again.url], bunched(day_records(settings, HISTORY_DAYS + 2, 60)), together=True)
    assert max(a["batch"] for a in later) > 1, "no request was decided in a batch with others"
    assert_same(unread + later, stream_step(spark, settings, tmp_path / "after"))


@pytest.mark.slow
def test_a_retry_gets_the_first_answer_and_bad_requests_are_answered_4xx_and_quarantined(world, spark) -> None:
    settings = world
    names = table_names(settings)
    good, other = (json.loads(r) for r in day_records(settings, HISTORY_DAYS + 3, 2))
    with DecisionServer(settings, port=free_port()) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        key = {"Idempotency-Key": "retry-me-1"}
        answer = client.post("/v1/decisions", json=good, headers=key)
        assert answer.status_code == 200, answer.text
        again = client.post("/v1/decisions", json=good, headers=key)
        assert again.status_code == 200 and again.json()["replayed"] is True
        assert {k: again.json()[k] for k in ("decision", "score", "kafka")} == {
            k: answer.json()[k] for k in ("decision", "score", "kafka")
        }
        reused = client.post("/v1/decisions", json=other, headers=key)
        assert reused.status_code == 409 and reused.json()["error"] == "idempotency_key_reused"

        missing = client.post("/v1/decisions", json={k: v for k, v in other.items() if k != "amount"})
        assert missing.status_code == 422 and missing.json()["field"] == "amount", missing.text
        assert missing.json()["error"] == "missing_field:amount"
        not_json = client.post("/v1/decisions", content=b"{not json")
        assert not_json.status_code == 400 and not_json.json()["error"] == "malformed_json"
        nan = client.post("/v1/decisions", content=json.dumps(other | {"amount": "NaN"}).encode())
        assert nan.status_code == 422 and nan.json()["error"] == "not_finite:amount", nan.text

    run_ingest(spark, settings, once=True)
    silver = spark.table(names.silver("transactions"))
    assert silver.where(f"transaction_id = '{good['transaction_id']}'").count() == 1  # decided once, kept once
    reasons = {r["reason"] for r in spark.table(names.quarantine).select("reason").collect()}
    assert {"missing_field:amount", "malformed_json", "not_finite:amount"} <= reasons, reasons


@pytest.mark.slow
def test_a_service_killed_after_sending_a_decision_loses_nothing_and_applies_it_once(
    world, spark, cli_env, tmp_path
) -> None:
    settings = world
    names = table_names(settings)
    partitions = settings.kafka.topics.transactions.partitions
    records = [json.loads(r) for r in day_records(settings, HISTORY_DAYS + 4, 60)]
    first = records[0]
    user = first["user_id"]
    same_user = next(r for r in records[1:] if r["user_id"] == user)
    port = free_port()
    env = cli_env | environ_of(settings) | {FAULT_ENV: AFTER_SEND}
    log = tmp_path / "serve.log"
    process = subprocess.Popen(
        [FRAUDLAKE, "serve", "--port", str(port)],
        env=env,
        start_new_session=True,  # the fault kills the service's own process group
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://{settings.decisions.host}:{port}"
        wait_until(
            lambda: _answers(url), timeout_s=60, what="the decision service", check=still_running(process, "serve")
        )
        with pytest.raises(httpx.TransportError):  # killed after the broker took the record, before the state
            httpx.post(f"{url}/v1/decisions", json=first, timeout=30)
        assert process.wait(timeout=30) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
    store = online_store(settings)
    assert store.pending(partition_of(user, partitions)) is not None  # the write-ahead record is left

    with DecisionServer(settings, port=free_port()) as server:
        answer = httpx.post(f"{server.url}/v1/decisions", json=same_user, timeout=30)
        assert answer.status_code == 200, answer.text  # took the partition once the dead lease expired
        retry = httpx.post(f"{server.url}/v1/decisions", json=first, timeout=30)
        assert retry.status_code == 200 and retry.json()["replayed"] is True  # the first decision, finished
    history = store.history(user)
    ids = history[4]
    assert ids.count(first["transaction_id"]) == 1 and ids.index(first["transaction_id"]) < ids.index(
        same_user["transaction_id"]
    )
    assert store.pending(partition_of(user, partitions)) is None

    run_ingest(spark, settings, once=True)
    silver = spark.table(names.silver("transactions")).where(f"transaction_id = '{first['transaction_id']}'")
    assert silver.count() == 1  # sent twice (before the kill and by its successor), kept once


@pytest.mark.slow
def test_a_promotion_reaches_the_service_under_load_without_a_failed_request(world, spark) -> None:
    settings = world
    before = registry.champion_version(settings)
    other = settings.model_copy(update={"training": settings.training.model_copy(update={"seed": 7})})
    challenger = train(spark, other, promote=False).version
    records = [r for day in range(HISTORY_DAYS + 5, HISTORY_DAYS + 9) for r in day_records(settings, day, 10_000)]
    answers: list[tuple[int, int]] = []  # (status, model version)
    promoted = threading.Event()
    with DecisionServer(settings, port=free_port()) as server:

        def load() -> None:
            after = 0
            with httpx.Client(base_url=server.url, timeout=30) as client:
                for body in records:
                    reply = client.post("/v1/decisions", content=body)
                    version = reply.json().get("model_version") if reply.status_code == 200 else None
                    answers.append((reply.status_code, version))
                    after += promoted.is_set() and version == challenger
                    if after >= 20:
                        return

        sending = threading.Thread(target=load)
        sending.start()
        wait_until(lambda: len(answers) >= 20, timeout_s=60, what="the first decisions")
        registry.promote(settings, challenger, validate=lambda model: registry.check_scores(spark, settings, model))
        Publisher(spark, settings, serving_dir(settings), Champion(spark, settings)).refresh()  # as the scorer does
        promoted.set()
        sending.join(timeout=120)
    assert not sending.is_alive(), f"the new champion never reached the service ({len(answers)} answers)"
    assert all(status == 200 for status, _ in answers), [a for a in answers if a[0] != 200]
    versions = [version for _, version in answers]
    assert challenger in versions, f"{len(answers)} decisions, none with the new champion {challenger}"
    switch = versions.index(challenger)
    assert set(versions[:switch]) == {before} and set(versions[switch:]) == {challenger}  # one switch, no going back
