"""`fraudlake bench decide`: the decision service (``POST /v1/decisions``) against its floor, the
echo endpoint (``POST /v1/echo``: the same server, stack and thread pool read, parse and answer the
body), under the same load, in one run.

The world is the benchmark's own (as `bench console`'s), its champion and snapshot in the scorer's
serving folder, its Redis warmed from silver. The service runs as `fraudlake serve` in its own
process; the load generator is a real HTTP client (httpx, one asyncio loop) in this one. Requests
are the world's simulated payments of the days after its history, in order, each decided once
(none is a replay; the echo gets the same bodies), each stamped with the time it is handed out, as
a live payment is (the history ends yesterday).

1. Warm-up: :data:`WARMUP` requests to each endpoint, not measured.
2. Sustainable rate: a closed loop of :data:`CLIENTS` clients for ``duration_s``, echo then decide.
3. Latency: an open loop at each rate (``rates``, then half the service's sustainable rate), echo
   then decide. Request i is sent at start + i / rate whatever came back, and its latency runs from
   that instant, so a stalled server (or client) counts its queue: no coordinated omission. A 4xx,
   5xx or no answer is a failure.
4. Breakdown: the decisions' ``latency_ms`` steps per rate (a batch's steps are each of its
   decisions'), the time in none (waiting for its partition's batch) and what the client waited
   beyond the service's total (HTTP, server stack, queueing); how many decisions a batch took.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import psutil

from lakehouse.benchmarks.report import StageClock
from lakehouse.decisions.service import DECISION_STEPS
from lakehouse.errors import PlatformError
from lakehouse.platform.isolation import STREAM_TOPICS, drop_schemas, environ_of, updated
from lakehouse.platform.jobs import job_environ
from lakehouse.platform.measure import percentile
from lakehouse.platform.waits import wait_until
from lakehouse.settings import Settings
from lakehouse.simulator.simulation import Simulation

ECHO, DECIDE = "echo", "decide"
PATHS, JSON = {ECHO: "/v1/echo", DECIDE: "/v1/decisions"}, {"content-type": "application/json"}
SIMULATOR = {"transactions": 12_000, "users": 800, "days": 24, "fraud_rate": 0.03}  # the world's history
CLIENTS = 8  # the closed loop's concurrent clients
WARMUP = 200  # requests per endpoint before anything is measured
MAX_CONNECTIONS = 256  # the client's pool: beyond it a request waits for a connection (and that counts)
REQUEST_TIMEOUT_S, START_TIMEOUT_S, STOP_TIMEOUT_S = 30.0, 180.0, 30.0
OVERHEAD = "HTTP, server stack, queueing"  # what the client waited beyond the service's own total
UNSTEPPED = "in no step (waiting for its batch)"  # the service's total beyond its steps
BATCH = "batch"  # how many decisions the decision's batch took

Post = Callable[[bytes], Awaitable[httpx.Response]]  # sends one request


@dataclass(frozen=True)
class Answer:
    scheduled_s: float  # the send's instant, from the run's start
    latency_ms: float  # from the scheduled instant to the answer
    lag_ms: float  # how late the client actually sent it
    status: int | None  # None: no answer (the body names the exception)
    body: bytes = b""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def schedule(rate: float, count: int) -> list[float]:
    """The open loop's send instants, in seconds from its start: one every 1 / ``rate``."""
    return [i / rate for i in range(count)]


async def _timed(post: Post, body: bytes, began: float, scheduled_s: float, clock: Callable[[], float]) -> Answer:
    lag_ms = (clock() - began - scheduled_s) * 1000
    try:
        reply = await post(body)
        status, content = reply.status_code, reply.content
    except Exception as exc:  # no answer: a failure, named by its kind
        status, content = None, type(exc).__name__.encode()
    return Answer(scheduled_s, (clock() - began - scheduled_s) * 1000, lag_ms, status, content)


async def open_loop(post: Post, bodies: Sequence[bytes], rate: float, *, clock=time.perf_counter) -> list[Answer]:
    """Each body sent at its :func:`schedule` instant, whether or not earlier ones were answered."""
    began, sending = clock(), []
    for scheduled_s, body in zip(schedule(rate, len(bodies)), bodies, strict=True):
        pause = began + scheduled_s - clock()
        if pause > 0:
            await asyncio.sleep(pause)
        sending.append(asyncio.create_task(_timed(post, body, began, scheduled_s, clock)))
    return list(await asyncio.gather(*sending))


async def closed_loop(post: Post, next_body: Callable[[], bytes], *, clients: int, duration_s: float) -> list[Answer]:
    """``clients`` clients, each sending its next request when its last is answered, until ``duration_s``."""
    clock, answers, began = time.perf_counter, [], time.perf_counter()

    async def client() -> None:
        while clock() - began < duration_s:
            answers.append(await _timed(post, next_body(), began, clock() - began, clock))

    await asyncio.gather(*(client() for _ in range(clients)))
    return answers


@dataclass
class Run:  # one endpoint under one load
    endpoint: str
    load: str  # "8 clients", "200/s"
    elapsed_s: float  # until the last answer
    latencies_ms: list[float]  # of the 2xx answers
    failures: dict[str, int] = field(default_factory=dict)  # "503 busy", "no answer (ReadTimeout)" → count
    steps: dict[str, list[float]] = field(default_factory=dict)  # the decisions' latency_ms, UNSTEPPED, OVERHEAD
    outcomes: dict[str, int] = field(default_factory=dict)  # approve / review / decline → count
    lag_ms: list[float] = field(default_factory=list)  # the client's lateness in sending
    cores: tuple[float, float] = (math.nan, math.nan)  # CPU seconds a second: the service's, the client's

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    @property
    def per_second(self) -> float:
        return len(self.latencies_ms) / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def p(self, q: float) -> float:
        return percentile(self.latencies_ms, q)


def summarise(endpoint: str, load: str, answers: list[Answer], elapsed_s: float) -> Run:
    run = Run(endpoint, load, elapsed_s, [a.latency_ms for a in answers if a.ok])
    run.lag_ms, run.failures, run.outcomes = [a.lag_ms for a in answers], Counter(), Counter()
    for answer in answers:
        if answer.status is None:
            run.failures[f"no answer ({answer.body.decode()})"] += 1
        elif not answer.ok:
            try:
                run.failures[f"{answer.status} {json.loads(answer.body)['error']}"] += 1
            except (ValueError, KeyError, TypeError):
                run.failures[str(answer.status)] += 1
        elif endpoint == DECIDE:
            decided = json.loads(answer.body)
            run.outcomes[decided["decision"]] += 1
            took = decided["latency_ms"]
            unstepped = took["total"] - sum(took[step] for step in DECISION_STEPS)
            for name, ms in (took | {UNSTEPPED: unstepped, OVERHEAD: answer.latency_ms - took["total"]}).items():
                run.steps.setdefault(name, []).append(ms)
            run.steps.setdefault(BATCH, []).append(decided.get(BATCH, 1))
    return run


@dataclass
class DecideBench:
    rates: tuple[float, ...]  # as asked; half the service's sustainable rate is added to them
    duration_s: float
    throughput: dict[str, Run] = field(default_factory=dict)  # endpoint → its closed-loop run
    latency: list[tuple[float, Run, Run]] = field(default_factory=list)  # (rate, echo, decide)
    half_rate: float | None = None
    setup: dict[str, float] = field(default_factory=dict)


class Payments:
    """The world's simulated payments after its history, in order: ``payments[i]``, the i-th not decided yet."""

    def __init__(self, simulator, start: date) -> None:
        self.simulation, self.days = Simulation(simulator, start), itertools.count(simulator.days)
        self.bodies, self.used = [], 0

    def __getitem__(self, index: int) -> bytes:
        """The payment, stamped now (a live payment's time is when it is made)."""
        while len(self.bodies) <= self.used + index:
            self.bodies += self.simulation.transaction_json(self.simulation.day(next(self.days)))
        payment = json.loads(self.bodies[self.used + index])
        return json.dumps(payment | {"timestamp": datetime.now(UTC).isoformat(timespec="milliseconds")}).encode()

    def take(self) -> bytes:
        self.used += 1
        return self[-1]  # the one just handed out


def start_service(world: Settings, log: Path, conf_dir: Path | None = None) -> subprocess.Popen:
    """`fraudlake serve` of ``world`` in its own Python process (:func:`answers` says when it is ready)."""
    own = {  # beyond environ_of: its Redis, its data folder, the contract's horizon
        "FRAUDLAKE_DECISIONS__REDIS__SERVER__PORT": str(world.decisions.redis.server.port),
        "FRAUDLAKE_PATHS__DATA_DIR": str(world.paths.data_dir),
    }
    command = [str(Path(sys.executable).with_name("fraudlake")), "--env", world.env, "serve"]
    env = {**job_environ(conf_dir), **environ_of(world), **own}
    with log.open("w") as out:  # its own session: a Ctrl-C reaches the benchmark, which stops it
        return subprocess.Popen(
            [*command, "--port", str(world.decisions.port)], env=env, stdout=out, stderr=out, start_new_session=True
        )


def answers(process: subprocess.Popen, url: str, log: Path) -> bool:  # on /v1/health; raises once it exited
    if process.poll() is not None:
        raise PlatformError(f"`fraudlake serve` exited ({process.returncode}):\n{log.read_text()[-3000:]}")
    try:
        return httpx.get(f"{url}/v1/health", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def bench_decide(
    spark,
    settings: Settings,
    *,
    folder: Path,
    rates: Sequence[float] = (200,),
    duration_s: float = 30,
    on_progress: Callable[[str], None] = print,
    conf_dir: Path | None = None,
) -> DecideBench:
    from lakehouse.benchmarks.training import bench_world, train_world
    from lakehouse.decisions.serve import decision_service, serving_dir
    from lakehouse.decisions.warm import warm_store
    from lakehouse.platform.jvm import free_port
    from lakehouse.platform.kafka.topics import delete_topics, ensure_topics
    from lakehouse.platform.redis import LocalRedis
    from lakehouse.scoring.champion import Champion, Publisher

    logging.getLogger("httpx").setLevel(logging.WARNING)  # not a line per request of the benchmark
    own = {"checkpoint_dir": folder / "checkpoints", "data_dir": folder / "data", "simulator": SIMULATOR}
    world = bench_world(settings, folder, topics=True, training={"gbt": {"max_iter": 10}}, **own)
    redis_server = {"port": free_port(), "data_dir": folder / "redis"}
    decisions = {"port": free_port(settings.decisions.host), "redis": {"server": redis_server}}
    world = updated(world, {"decisions": decisions})
    topics = [getattr(world.kafka.topics, name) for name in STREAM_TOPICS]
    bench = DecideBench(tuple(rates), duration_s)
    timed = StageClock(bench.setup, on_progress)
    redis = LocalRedis(world) if world.decisions.redis.url is None else None
    service = None

    def warm() -> None:
        warming = decision_service(world)
        with closing(warming.producer):
            warm_store(spark, world, warming)

    try:
        ensure_topics(world.kafka, topics)
        start = date.today() - timedelta(days=world.simulator.days)  # train_world's first day
        train_world(spark, world, folder, timed)
        publisher = Publisher(spark, world, serving_dir(world), Champion(spark, world))
        timed("publish champion + snapshot", publisher.refresh)
        if redis is not None:
            timed("redis up", redis.up)
        timed("warm the online store", warm)
        url, log = f"http://{world.decisions.host}:{world.decisions.port}", folder / "serve.log"
        service = start_service(world, log, conf_dir)
        ready = lambda: wait_until(lambda: answers(service, url, log), timeout_s=START_TIMEOUT_S, what=url)  # noqa: E731
        timed("service start", ready)
        asyncio.run(_load(bench, url, psutil.Process(service.pid), Payments(world.simulator, start), on_progress))
    finally:
        if service is not None:  # SIGTERM, then SIGKILL
            service.terminate()
            try:
                service.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                service.kill()
                service.wait()
        if redis is not None:
            redis.down()
        delete_topics(world.kafka, [t.name for t in topics])
        drop_schemas(spark, world)
    return bench


async def _load(bench: DecideBench, url: str, server: psutil.Process, payments: Payments, say) -> None:
    limits = httpx.Limits(max_connections=MAX_CONNECTIONS, max_keepalive_connections=MAX_CONNECTIONS)
    async with httpx.AsyncClient(base_url=url, timeout=REQUEST_TIMEOUT_S, limits=limits) as client:
        posts = {e: lambda body, p=p: client.post(p, content=body, headers=JSON) for e, p in PATHS.items()}

        async def measured(endpoint: str, load: str, work: Awaitable[list[Answer]]) -> Run:
            before, began = (sum(server.cpu_times()[:2]), time.process_time()), time.perf_counter()
            run = summarise(endpoint, load, await work, time.perf_counter() - began)
            spent = (sum(server.cpu_times()[:2]) - before[0], time.process_time() - before[1])
            run.cores = (spent[0] / run.elapsed_s, spent[1] / run.elapsed_s)
            say(f"{endpoint}, {load}: {run.per_second:,.0f}/s answered, p99 {run.p(99):,.1f} ms, {run.failed} failed")
            return run

        say(f"warm-up: {WARMUP} requests to each endpoint")
        for body in [payments[i] for i in range(WARMUP)]:
            await posts[ECHO](body)
        for _ in range(WARMUP):
            await posts[DECIDE](payments.take())
        upcoming = {ECHO: map(payments.__getitem__, itertools.count()).__next__, DECIDE: payments.take}
        for endpoint in (ECHO, DECIDE):  # the echo sees the bodies the decisions then take
            work = closed_loop(posts[endpoint], upcoming[endpoint], clients=CLIENTS, duration_s=bench.duration_s)
            bench.throughput[endpoint] = await measured(endpoint, f"{CLIENTS} clients", work)
        bench.half_rate = round(bench.throughput[DECIDE].per_second / 2)
        for rate in [*bench.rates, *([bench.half_rate] if bench.half_rate >= 1 else [])]:
            bodies = [payments[i] for i in range(int(rate * bench.duration_s))]
            runs = [await measured(e, f"{rate:g}/s", open_loop(posts[e], bodies, rate)) for e in (ECHO, DECIDE)]
            payments.used += len(bodies)  # decided: never sent again
            bench.latency.append((rate, *runs))
