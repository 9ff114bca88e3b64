"""`fraudlake bench score`: the scorer against the engine's floor, in one run.

The floor is a minimal Spark Structured Streaming query that copies each record from a Kafka
topic to another (:func:`lakehouse.platform.kafka.floor.start_passthrough`), on the same
records, with the same partitions, trigger and batch size. The third pipeline is the same scorer
in Quix Streams (:mod:`lakehouse.benchmarks.quix_app`), the stream processor a Python team would
pick instead of Spark, on the same records. Measured for all three:

- **sustainable throughput**: drain a preloaded topic (``availableNow``, a fresh checkpoint);
  records over the summed micro-batch durations (query start-up excluded), median of runs;
- **end-to-end latency at fixed rates**: the producer sends at R transactions/s for D seconds;
  latency = the output record's broker append time (``LogAppendTime`` topics) minus the input
  record's creation time (its producer timestamp), per record, after a warm-up. The scorer runs
  with every transaction alerting, so every transaction is one latency sample and every pipeline
  writes one output record per input to the measured topic: the scorer's worst case for output. The production scorer
  has no option for that: before the latency runs the benchmark sets the alert threshold of its
  own world's champion to 0 in its own registry (the scorer reads a version's threshold there
  when it loads it); the throughput runs score with the model's own threshold.

Everything runs in its own topics, schemas, checkpoints and registry (a small model trained on a
simulated batch first), so it never touches the user's tables or champion.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from lakehouse.benchmarks.report import StageClock
from lakehouse.contract.alerts import created_ms
from lakehouse.platform.kafka.floor import copy_created_ms, start_passthrough
from lakehouse.platform.measure import percentile
from lakehouse.scoring.scorer import BatchTimings
from lakehouse.settings import QuerySettings, Settings, TopicSettings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession
    from pyspark.sql.streaming import StreamingQuery

    from lakehouse.simulator.producer import ProduceLimits

PIPELINE, PASSTHROUGH, QUIX = "scorer", "pass-through", "quix streams"
WARMUP_S = 10.0
DRAIN_S = 120.0  # after the producer stops: a pipeline still behind then could not keep up with the rate


@dataclass
class LatencyRun:
    pipeline: str
    rate: float
    sent: int
    received: int
    samples_ms: list[float] = field(default_factory=list, repr=False)

    def percentile(self, q: float) -> float:
        return percentile(self.samples_ms, q)


@dataclass
class ScoreBench:
    preload: int
    throughput: dict[str, list[float]] = field(default_factory=dict)  # pipeline → records/s per run
    latency: list[LatencyRun] = field(default_factory=list)
    setup: dict[str, float] = field(default_factory=dict)
    batches: dict[float, list[BatchTimings]] = field(default_factory=dict)  # rate → the scorer's batches
    progress: dict[float, list[dict]] = field(default_factory=dict)  # rate → the score query's progress
    #: The Quix pipeline's scores against the Spark scorer's on the preloaded transactions.
    parity: QuixParity | None = None
    quix_figures: dict | None = None  # what the Quix app reported after its throughput run


@dataclass
class QuixParity:
    compared: int  # transactions scored by both
    only_one: int  # scored by one pipeline only
    max_score_diff: float
    alert_differences: int

    @property
    def equal(self) -> bool:
        return self.only_one == 0 and self.max_score_diff <= 1e-9 and self.alert_differences == 0


def scoring_run(world: Settings, *, source: str, alerts: str, checkpoint: str) -> Settings:
    """``world`` scoring ``source`` into ``alerts`` from a fresh ``checkpoint`` (the landing
    query's beside it), with a scored-rows topic of its own (``bench_scored_<uuid>``: the caller
    deletes it)."""
    from lakehouse.platform.isolation import updated

    queries = world.streaming.queries
    query = queries.get("score", QuerySettings()).model_copy(update={"checkpoint": checkpoint})
    landing = QuerySettings(
        checkpoint=f"{checkpoint}-landing", trigger=queries.get("score_landing", QuerySettings()).trigger
    )
    scored = f"bench_scored_{uuid.uuid4().hex[:10]}"
    return updated(
        world,
        {
            "kafka": {
                "topics": {"transactions": {"name": source}, "alerts": {"name": alerts}, "scored": {"name": scored}}
            },
            "streaming": {"queries": {"score": query, "score_landing": landing}},
        },
    )


def send_transactions(world: Settings, source: str, limits: ProduceLimits, *, seed: int, start_day: date) -> int:
    """Live payments of ``world`` (its batch starting at ``start_day``) into ``source``; how many were sent."""
    from lakehouse.platform.isolation import updated
    from lakehouse.platform.kafka.senders import make_sender
    from lakehouse.simulator.producer import produce
    from lakehouse.simulator.simulation import Simulation

    target, sim = updated(world, {"kafka": {"topics": {"transactions": {"name": source}}}}), world.simulator
    sender = make_sender(target.kafka, target.producer)
    try:
        report = produce(target, Simulation(sim, start_day, traffic_seed=seed), sender, limits, first_day=sim.days)
    finally:
        sender.close()
    if report.failed:
        raise RuntimeError(f"the benchmark producer lost records: {report.errors[:1]}")
    if report.caught_up:
        raise RuntimeError(f"the benchmark's simulated time reached the wall clock at {report.caught_up}")
    return report.transactions


def drained(query: StreamingQuery) -> tuple[int, float]:
    """Records and seconds of a query that drained its topic (``availableNow``): the summed
    micro-batch durations, so the query's start-up is left out."""
    progress = [p for p in query.recentProgress if p["numInputRows"]]
    return sum(p["numInputRows"] for p in progress), sum(p["durationMs"]["triggerExecution"] for p in progress) / 1000


def _created_ms(pipeline: str, message) -> float:
    if pipeline != PASSTHROUGH:  # an alert
        return created_ms(message.value)
    return copy_created_ms(message.headers)


def _topic(name: str, partitions: int, *, append_time: bool = False) -> TopicSettings:
    return TopicSettings(
        name=name,
        partitions=partitions,
        replication_factor=1,
        retention_ms=3_600_000,
        configs={"message.timestamp.type": "LogAppendTime"} if append_time else {},
    )


def bench_score(
    spark: SparkSession,
    settings: Settings,
    *,
    folder: Path,
    rates: list[float] | None,
    duration_s: float,
    preload: int,
    runs: int,
    quix: bool = True,
    on_progress: Callable[[str], None] = print,
) -> ScoreBench:
    from lakehouse.benchmarks.training import bench_world, train_world
    from lakehouse.ml import registry
    from lakehouse.platform.isolation import drop_schemas
    from lakehouse.platform.kafka.clients import consumer
    from lakehouse.platform.kafka.topics import delete_topics, ensure_topics
    from lakehouse.platform.streaming import query_plan
    from lakehouse.scoring.scorer import start_scorer
    from lakehouse.simulator.producer import ProduceLimits
    from lakehouse.simulator.simulation import start_before

    world = bench_world(
        settings,
        folder,
        topics=True,  # its own user and merchant topics too
        checkpoint_dir=folder / "checkpoints",
        simulator={"transactions": 30_000, "users": 2_000, "days": 24, "fraud_rate": 0.02},
        training={"gbt": {"max_iter": 20}},
    )
    sim = world.simulator
    partitions = settings.kafka.topics.transactions.partitions
    bench = ScoreBench(preload=preload)
    created: list[str] = []
    quix_groups: list[str] = []  # their changelog topics are Quix's own: deleted by name at the end
    scored_of: dict[str, str] = {}  # pipeline → the scored-rows topic of its latest run
    pipelines = (PASSTHROUGH, PIPELINE, QUIX) if quix else (PASSTHROUGH, PIPELINE)

    timed = StageClock(bench.setup, on_progress)

    # Every run starts at the first live day: the longest run's days must stay in the past (the
    # rates not given yet are half the measured throughput; 5,000/s bounds them here).
    start_day = start_before(sim, date.today(), max(preload, int(max(rates or [5_000]) * duration_s)))

    def run_settings(source: str, alerts: str, checkpoint: str) -> Settings:
        run = scoring_run(world, source=source, alerts=alerts, checkpoint=checkpoint)
        created.append(run.kafka.topics.scored.name)
        return run

    def fresh_topics(*append_time: bool) -> list[str]:
        names = [f"bench_score_{uuid.uuid4().hex[:10]}" for _ in append_time]
        ensure_topics(
            world.kafka, [_topic(n, partitions, append_time=a) for n, a in zip(names, append_time, strict=True)]
        )
        created.extend(names)
        return names

    def begin(pipeline: str, source: str, output: str, *, once: bool, rate: float | None = None) -> StreamingQuery:
        checkpoint = str(folder / "checkpoints" / uuid.uuid4().hex)
        run = run_settings(source, output, checkpoint)
        scored_of[pipeline] = run.kafka.topics.scored.name
        if pipeline == QUIX:
            return start_quix_run(run, source, output, stop_after=preload if once else 0)
        if pipeline == PIPELINE:
            record = bench.batches.setdefault(rate, []).append if rate is not None else None
            score, landing = start_scorer(spark, run, once=once, on_batch=record)
            if once:  # not measured, but done before the next run starts
                landing.awaitTermination()
            return score
        return start_passthrough(spark, run, source=source, target=output, plan=query_plan(run, "score", once=once))

    def start_quix_run(run: Settings, source: str, output: str, *, stop_after: int):
        """The Quix app on the champion and dimensions the Spark scorer would publish now."""
        from lakehouse.benchmarks.quix import start_quix
        from lakehouse.scoring.champion import Champion, Publisher

        ensure_topics(world.kafka, [run.kafka.topics.scored])
        serving_dir = folder / "quix-serving" / uuid.uuid4().hex
        Publisher(spark, run, serving_dir, Champion(spark, run)).refresh()
        app = start_quix(
            run,
            source=source,
            scored_topic=run.kafka.topics.scored.name,
            alerts_topic=output,
            serving_dir=serving_dir,
            folder=folder,
            stop_after=stop_after,
        )
        quix_groups.append(app.consumer_group)
        return app

    try:
        entity_topics = [world.kafka.topics.users, world.kafka.topics.merchants, world.kafka.topics.labels]
        ensure_topics(world.kafka, entity_topics)
        created.extend(t.name for t in entity_topics)
        train_world(spark, world, folder, timed)

        # Throughput: both queries drain the same preloaded topic.
        (source,) = fresh_topics(False)
        on_progress(f"preloading {preload:,} transactions")
        send_transactions(world, source, ProduceLimits(count=preload), seed=101, start_day=start_day)
        for pipeline in pipelines:
            for run in range(1 if pipeline == QUIX else runs):  # Quix drains at a few hundred records/s
                (output,) = fresh_topics(True)
                query = begin(pipeline, source, output, once=True)
                query.awaitTermination()
                if query.exception() is not None:
                    raise RuntimeError(f"{pipeline} failed: {query.exception()}")
                if pipeline == QUIX:
                    figures = bench.quix_figures = query.figures()
                    rows, seconds = figures["processed"], figures["seconds"]
                else:
                    rows, seconds = drained(query)
                bench.throughput.setdefault(pipeline, []).append(rows / seconds)
                on_progress(
                    f"throughput {pipeline} run {run + 1}: {rows:,} records in {seconds:,.1f} s"
                    f" = {rows / seconds:,.0f}/s"
                )
        if quix:
            bench.parity = _parity(world.kafka, scored_of[PIPELINE], scored_of[QUIX])
            on_progress(f"Quix Streams against the Spark scorer: {bench.parity}")

        if not rates:  # the goal's rates: half the scorer's sustainable rate, and 200/s
            sustainable = sorted(bench.throughput[PIPELINE])[len(bench.throughput[PIPELINE]) // 2]
            rates = [float(max(1, round(sustainable / 2, -1))), 200.0]
        # Latency at fixed rates: each pipeline on its own fresh topics, the same records. Every
        # transaction alerts: this world's champion (in its own registry) gets a threshold of 0.
        registry.tag(world, registry.champion_version(world), "threshold", repr(0.0))
        for rate in rates:
            for pipeline in pipelines:
                source, output = fresh_topics(False, True)
                query = begin(pipeline, source, output, once=False, rate=rate)
                try:
                    result = _latency_run(
                        pipeline,
                        rate,
                        duration_s,
                        query,
                        lambda s=source, r=rate: send_transactions(
                            world, s, ProduceLimits(duration_s=duration_s, rate=r), seed=202, start_day=start_day
                        ),
                        consumer(world.kafka, output, group_id=None),
                    )
                finally:
                    if pipeline == PIPELINE:
                        bench.progress[rate] = list(query.recentProgress)
                    if pipeline == QUIX:
                        query.stop()
                    for active in spark.streams.active:  # the scorer's landing query too
                        active.stop()
                bench.latency.append(result)
                on_progress(
                    f"latency {pipeline} at {rate:,.0f}/s: p50 {result.percentile(50):,.0f} ms,"
                    f" p95 {result.percentile(95):,.0f} ms, p99 {result.percentile(99):,.0f} ms"
                    f" ({len(result.samples_ms):,} samples)"
                )
    finally:
        for active in spark.streams.active:
            active.stop()
        if quix_groups:
            from lakehouse.platform.kafka.topics import list_topics

            created += [t for t in list_topics(world.kafka) if any(g in t for g in quix_groups)]
        if created:
            delete_topics(world.kafka, created)
        drop_schemas(spark, world)
    return bench


def _scores(kafka, topic: str) -> dict[str, tuple[float, bool]]:
    """transaction_id → (score, is_alert) of every scored-row record in ``topic``."""
    import json

    from lakehouse.platform.kafka.clients import consumer
    from lakehouse.platform.kafka.topics import offset_ranges
    from lakehouse.platform.waits import Deadline

    expected = sum(end - start for start, end in offset_ranges(kafka, topic)[topic].values())
    reader = consumer(kafka, topic, group_id=None, auto_offset_reset="earliest")
    out: dict[str, tuple[float, bool]] = {}
    read, deadline = 0, Deadline(DRAIN_S)
    try:
        while read < expected:
            if deadline.expired():
                raise RuntimeError(f"read {read:,} of the {expected:,} records of {topic} in {DRAIN_S:g} s")
            for records in reader.poll(timeout_ms=500).values():
                for message in records:
                    row = json.loads(message.value)
                    out[row["transaction_id"]] = (row["score"], row["is_alert"])
                read += len(records)
    finally:
        reader.close()
    return out


def _parity(kafka, spark_topic: str, quix_topic: str) -> QuixParity:
    """The two pipelines' scores of the same transactions, compared."""
    spark, quix = _scores(kafka, spark_topic), _scores(kafka, quix_topic)
    both = spark.keys() & quix.keys()
    return QuixParity(
        compared=len(both),
        only_one=len(spark.keys() ^ quix.keys()),
        max_score_diff=max((abs(spark[t][0] - quix[t][0]) for t in both), default=0.0),
        alert_differences=sum(spark[t][1] != quix[t][1] for t in both),
    )


def _latency_run(
    pipeline: str, rate: float, duration_s: float, query: StreamingQuery, send: Callable[[], int], reader
) -> LatencyRun:
    """Send at ``rate`` in a thread while reading the output; one sample per output record created
    after the warm-up."""
    outcome: dict[str, object] = {}

    def producer() -> None:
        try:
            outcome["sent"] = send()
        except BaseException as exc:
            outcome["error"] = exc

    began_ms = time.time() * 1000
    thread = threading.Thread(target=producer, name=f"bench-{pipeline}", daemon=True)
    thread.start()
    run = LatencyRun(pipeline, rate, sent=0, received=0)
    deadline = time.monotonic() + duration_s + DRAIN_S
    try:
        while True:
            for records in reader.poll(timeout_ms=500).values():
                for message in records:
                    run.received += 1
                    created = _created_ms(pipeline, message)
                    if created >= began_ms + WARMUP_S * 1000:
                        run.samples_ms.append(message.timestamp - created)
            if "error" in outcome:
                raise RuntimeError(f"the benchmark producer failed: {outcome['error']}")
            if not thread.is_alive() and run.received >= int(outcome.get("sent", 0)):
                break
            if not query.isActive:
                raise RuntimeError(f"{pipeline} stopped: {query.exception()}")
            if time.monotonic() > deadline:  # it cannot keep up with this rate: report what came out
                break
    finally:
        reader.close()
    run.sent = int(outcome.get("sent", 0))
    return run
