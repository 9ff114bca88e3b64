"""`fraudlake bench cluster`: the scorer on one worker against two, on the running local cluster.

On the cluster of ``fraudlake cluster up`` (``--env cluster-local``), in one run: a small world
is trained first (in a ``local[2]`` session: training is not what is measured), a topic is
preloaded with transactions, then each run drains it (``availableNow``, a fresh checkpoint) with
the scorer and with the Kafka → Kafka pass-through, in an application limited to one executor
(``spark.cores.max`` 1: one worker) and in one with an executor on each of the two workers
(``spark.cores.max`` 2). Each run starts a new application per size. In it, both pipelines
first drain a small topic, unmeasured (an application's first queries meet cold executors: 3-4x
slower here), then the preloaded one, measured. The sizes alternate which goes first from run to
run, and so do the two pipelines. Every figure is the median of the runs. Throughput is records
over the summed micro-batch durations (application and query start-up left out), as in
`fraudlake bench score`.

On a 2-core machine the two workers share the cores with the driver, the brokers and each other:
the figure shows that the work spreads over the executors, not the speed of a larger cluster.
"""

from __future__ import annotations

import statistics
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from lakehouse.benchmarks.report import Report, StageClock
from lakehouse.benchmarks.scoring import PASSTHROUGH, PIPELINE, drained, scoring_run, send_transactions
from lakehouse.errors import FraudlakeError
from lakehouse.settings import Settings

SIZES = (1, 2)  # executors (one per worker)
PIPELINES = (PASSTHROUGH, PIPELINE)
WARMUP = 2_000  # transactions each pipeline drains, unmeasured, in every application before its runs


@dataclass
class ClusterBench:
    preload: int
    partitions: int
    #: (pipeline, executors) → records/s per run
    throughput: dict[tuple[str, int], list[float]] = field(default_factory=dict)
    #: executors → workers that ran an executor of the application, per run
    spread: dict[int, list[int]] = field(default_factory=dict)
    setup: dict[str, float] = field(default_factory=dict)

    def median(self, pipeline: str, executors: int) -> float:
        return statistics.median(self.throughput[(pipeline, executors)])


def bench_cluster(
    settings: Settings, *, folder: Path, preload: int, runs: int, on_progress: Callable[[str], None] = print
) -> ClusterBench:
    from lakehouse.benchmarks.training import bench_world, train_world
    from lakehouse.platform.cluster import LocalCluster
    from lakehouse.platform.isolation import drop_schemas, updated
    from lakehouse.platform.kafka.floor import start_passthrough
    from lakehouse.platform.kafka.topics import delete_topics, ensure_topics
    from lakehouse.platform.spark import build_spark
    from lakehouse.platform.streaming import query_plan
    from lakehouse.scoring.scorer import start_scorer
    from lakehouse.simulator.producer import ProduceLimits
    from lakehouse.simulator.simulation import start_before

    cluster = LocalCluster(settings)
    on_cluster = settings.spark.master.startswith("spark://")
    alive = cluster.status().alive_workers if on_cluster else 0  # (no probe of a cluster that is not used)
    if alive < max(SIZES):
        raise FraudlakeError(
            f"the cluster benchmark needs the local cluster with {max(SIZES)} workers alive (spark.master "
            f"{settings.spark.master}, {alive} alive): run it with --env cluster-local after `fraudlake cluster up`"
        )
    world = bench_world(
        settings,
        folder,
        topics=True,
        checkpoint_dir=folder / "checkpoints",
        simulator={"transactions": 20_000, "users": 2_000, "days": 20, "fraud_rate": 0.02},
        training={"gbt": {"max_iter": 20}},
    )
    topic = world.kafka.topics.transactions
    bench = ClusterBench(preload=preload, partitions=topic.partitions)
    created: list[str] = []

    timed = StageClock(bench.setup, on_progress)

    def fresh_topic() -> str:
        name = f"bench_cluster_{uuid.uuid4().hex[:10]}"
        ensure_topics(world.kafka, [topic.model_copy(update={"name": name})])
        created.append(name)
        return name

    def drain(spark, sized: Settings, pipeline: str, source: str) -> tuple[int, float]:
        output = fresh_topic()
        checkpoint = str(folder / "checkpoints" / uuid.uuid4().hex)
        scoring = scoring_run(sized, source=source, alerts=output, checkpoint=checkpoint)
        created.append(scoring.kafka.topics.scored.name)
        if pipeline == PIPELINE:
            query, landing = start_scorer(spark, scoring, once=True)
            landing.awaitTermination()
        else:
            plan = query_plan(scoring, "score", once=True)
            query = start_passthrough(spark, scoring, source=source, target=output, plan=plan)
        query.awaitTermination()
        if query.exception() is not None:
            raise RuntimeError(f"{pipeline} failed: {query.exception()}")
        return drained(query)

    def preload_topic(source: str, count: int) -> None:
        start_day = start_before(world.simulator, date.today(), preload)
        send_transactions(world, source, ProduceLimits(count=count), seed=101, start_day=start_day)

    topics = world.kafka.topics
    entity_topics = [topics.users, topics.merchants, topics.labels]  # what the producer writes besides payments
    ensure_topics(world.kafka, entity_topics)
    created.extend(t.name for t in entity_topics)
    local = updated(world, {"spark": {"master": "local[2]"}})
    spark = build_spark(local, app_name="fraudlake-bench-cluster-train")
    try:
        train_world(spark, world, folder, timed)
        spark.stop()
        source, warm = fresh_topic(), fresh_topic()
        timed(f"preload {preload:,} transactions", lambda: preload_topic(source, preload))
        timed(f"preload {WARMUP:,} transactions for the warm-ups", lambda: preload_topic(warm, WARMUP))
        for run in range(runs):
            for executors in SIZES if run % 2 == 0 else reversed(SIZES):
                sized = updated(world, {"spark": {"conf": {"spark.cores.max": str(executors)}}})
                spark = build_spark(sized, app_name=f"fraudlake-bench-cluster-{executors}")
                for pipeline in PIPELINES:  # warm-up, both pipelines alike: not measured
                    drain(spark, sized, pipeline, warm)
                for pipeline in PIPELINES if (run + executors) % 2 == 0 else reversed(PIPELINES):
                    rows, seconds = drain(spark, sized, pipeline, source)
                    bench.throughput.setdefault((pipeline, executors), []).append(rows / seconds)
                    on_progress(
                        f"run {run + 1}, {executors} executor(s), {pipeline}: {rows:,} records in {seconds:,.1f} s"
                        f" = {rows / seconds:,.0f}/s"
                    )
                workers = cluster.executors_per_worker(spark.sparkContext.applicationId)
                bench.spread.setdefault(executors, []).append(len(workers))
                spark.stop()
    finally:
        if created:
            delete_topics(world.kafka, created)
        spark = build_spark(local, app_name="fraudlake-bench-cluster-end")  # or the session still running
        drop_schemas(spark, world)
        spark.stop()
    return bench


def cluster_report(bench: ClusterBench, settings: Settings) -> Report:
    one, two = SIZES
    runs = len(bench.throughput[(PIPELINE, one)])
    rows = []
    for pipeline in (PIPELINE, PASSTHROUGH):
        slow, fast = bench.median(pipeline, one), bench.median(pipeline, two)
        rows.append((pipeline, f"{slow:,.0f}", f"{fast:,.0f}", f"{fast / slow:.2f}x"))
    ratios = [
        (f"{n} executor(s)", f"{bench.median(PIPELINE, n) / bench.median(PASSTHROUGH, n):.2f}x", str(bench.spread[n]))
        for n in SIZES
    ]
    report = Report(
        name="cluster",
        title="The scorer on one worker against two (local standalone cluster)",
        command=f"fraudlake --env cluster-local bench cluster --preload {bench.preload} --runs {runs}",
        settings={
            "cluster": f"{settings.cluster.spark_workers} workers offering {settings.cluster.spark_worker_cores} "
            f"cores each; executors of 1 core, {settings.spark.conf.get('spark.executor.memory', 'default')}",
            "records": f"{bench.preload:,} preloaded transactions, {bench.partitions} partitions",
            "runs": f"{runs} per size; which size and pipeline go first alternates",
        },
    )
    report.section("Throughput (records/s, median of runs)").table(
        ["pipeline", "1 worker", "2 workers", "2 against 1"], rows, "lrrr"
    )
    report.section("Scorer against the pass-through, per size").table(
        ["application", "scorer / pass-through", "workers with an executor, per run"], ratios, "lrl"
    )
    report.section("Set-up (not measured)").stages(bench.setup)
    report.text(
        "On this 2-core machine the two workers share the cores with the driver, the three brokers and each "
        "other: the figure shows the work spreading over executors on both workers, not a larger cluster's speed."
    )
    return report
