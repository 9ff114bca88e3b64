"""The decision benchmark's pure parts: the open loop's schedule (latency from the scheduled
instant, so a stalled client or server counts its queue), the answers' summary, the goals' met /
not met, and the page rendered from made-up figures."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from lakehouse.benchmarks.decisions import (
    DECIDE,
    ECHO,
    OVERHEAD,
    UNSTEPPED,
    Answer,
    DecideBench,
    Run,
    open_loop,
    schedule,
    summarise,
)
from lakehouse.benchmarks.decisions_report import decide_report, latency_verdict, throughput_verdict

pytestmark = pytest.mark.unit
TOLERANCE_MS = 1.0  # clock resolution between asyncio's sleep and perf_counter


def test_schedule_sends_one_request_every_1_over_rate() -> None:
    assert schedule(200, 4) == [0.0, 0.005, 0.01, 0.015]
    assert schedule(50, 0) == []


def test_open_loop_measures_latency_from_the_scheduled_instant_when_the_client_stalls() -> None:
    stalled = [0.0]  # seconds the client's clock has lost to the stall

    def clock() -> float:
        return time.perf_counter() + stalled[0]

    async def post(body: bytes) -> httpx.Response:
        if not stalled[0]:  # the first request stalls the client's loop for 100 ms: the next 9 are sent late
            stalled[0] = 0.1
        return httpx.Response(200, content=body)

    answers = asyncio.run(open_loop(post, [b"%d" % i for i in range(12)], rate=100, clock=clock))
    assert [a.scheduled_s for a in answers] == schedule(100, 12)
    assert [a.body for a in answers] == [b"%d" % i for i in range(12)]
    for i, answer in enumerate(answers[1:10], start=1):  # due at 10 ms .. 90 ms, sent after 100 ms
        assert answer.lag_ms >= 100 - 10 * i - TOLERANCE_MS
        assert answer.latency_ms >= 100 - 10 * i - TOLERANCE_MS  # the wait is in the latency


def test_open_loop_counts_the_queue_of_a_server_slower_than_the_rate() -> None:
    async def serve_one_at_a_time(lock: asyncio.Lock) -> list[Answer]:
        async def post(body: bytes) -> httpx.Response:
            async with lock:  # 20 ms each, one at a time, asked every 10 ms: the queue grows
                await asyncio.sleep(0.02)
            return httpx.Response(200)

        return await open_loop(post, [b"{}"] * 10, rate=100)

    answers = asyncio.run(serve_one_at_a_time(asyncio.Lock()))
    for i, answer in enumerate(answers):  # answered no sooner than 20 ms x (i + 1) after the start
        assert answer.latency_ms >= 20 * (i + 1) - 10 * i - TOLERANCE_MS
    assert answers[-1].latency_ms > 100  # a closed loop would have seen ~20 ms each


def _decision(total: float, **steps: float) -> bytes:
    latency = {"parse": 0.5, "state_read": 1.0, "features": 2.0, "model": 1.0, "reasons": 0.2, "publish": 3.0}
    latency |= {"state_write": 0.3, **steps, "total": total}
    return json.dumps({"decision": "approve", "score": 0.01, "latency_ms": latency}).encode()


def test_summarise_keeps_the_2xx_latencies_the_steps_and_names_each_failure() -> None:
    answers = [
        Answer(0.0, 12.0, 0.1, 200, _decision(10.0)),
        Answer(0.01, 30.0, 0.1, 503, b'{"error": "busy", "field": null, "message": "..."}'),
        Answer(0.02, 40.0, 0.1, 422, b'{"error": "late_event", "field": "timestamp", "message": "..."}'),
        Answer(0.03, 30_000.0, 0.2, None, b"ReadTimeout"),
        Answer(0.04, 50.0, 0.1, 500, b"<html>"),
    ]
    run = summarise(DECIDE, "200/s", answers, elapsed_s=2.0)
    assert run.latencies_ms == [12.0] and run.per_second == 0.5 and run.failed == 4
    assert run.failures == {"503 busy": 1, "422 late_event": 1, "no answer (ReadTimeout)": 1, "500": 1}
    assert run.outcomes == {"approve": 1}
    assert run.steps["total"] == [10.0] and run.steps["publish"] == [3.0]
    assert run.steps[UNSTEPPED] == [pytest.approx(2.0)]  # 10 ms total, 8 ms in the steps
    assert run.steps[OVERHEAD] == [2.0]  # the client waited 12 ms


def _run(endpoint: str, load: str, per_second: float, latency_ms: float, seconds: float = 10.0, **extra) -> Run:
    return Run(endpoint, load, seconds, [latency_ms] * round(per_second * seconds), **extra)


@pytest.mark.parametrize(
    ("echo_per_s", "decide_per_s", "met"), [(1000, 500, True), (1000, 499, False), (0, 100, False)]
)
def test_the_sustainable_rate_goal_is_half_the_echos(echo_per_s, decide_per_s, met) -> None:
    echo, decide = _run(ECHO, "8 clients", echo_per_s, 1.0), _run(DECIDE, "8 clients", decide_per_s, 5.0)
    assert throughput_verdict(echo, decide)[1] is met


@pytest.mark.parametrize(
    ("echo_p99", "decide_p99", "failures", "met"),
    [
        (2.0, 8.0, {}, True),
        (2.0, 8.1, {}, False),
        (2.0, 4.0, {"503 busy": 1}, False),  # a failed decision misses the goal whatever the p99
    ],
)
def test_the_latency_goal_is_four_times_the_echos_p99_and_no_failure(echo_p99, decide_p99, failures, met) -> None:
    echo = _run(ECHO, "200/s", 200, echo_p99)
    decide = _run(DECIDE, "200/s", 200, decide_p99, failures=failures)
    ratio, verdict = latency_verdict(echo, decide)
    assert verdict is met and ratio == pytest.approx(decide_p99 / echo_p99)
    assert latency_verdict(Run(ECHO, "200/s", 1.0, []), decide)[1] is False  # nothing answered: not met


def test_a_floor_run_whose_load_generator_stalled_is_not_judged(settings) -> None:
    """An echo run sent late by its own client (a stall of the generator, not of the server) has
    an inflated p99 that would flatter decide: the comparison is not judged, so not met."""
    stalled = _run(ECHO, "50/s", 50, 3872.0, lag_ms=[333.0] * 500)
    decide = _run(DECIDE, "50/s", 50, 24.0, lag_ms=[2.0] * 500)
    assert latency_verdict(stalled, decide)[1] is False
    assert latency_verdict(_run(ECHO, "50/s", 50, 12.0, lag_ms=[2.0] * 500), decide)[1] is True
    bench = DecideBench(rates=(50,), duration_s=10, half_rate=50)
    bench.throughput = {ECHO: _run(ECHO, "8 clients", 1000, 2.0), DECIDE: _run(DECIDE, "8 clients", 600, 5.0)}
    bench.latency = [(50, stalled, decide)]
    text = decide_report(bench, settings).render()
    assert "**not judged** (echo's client lag p99 333 ms)" in text
    assert "at 50/s the echo's run is not a floor (its load generator lagged 333 ms)" in text


def test_the_report_gives_the_goals_the_absolute_figures_and_the_breakdown(settings) -> None:
    steps = {name: [1.0, 2.0] for name in ("parse", "state_read", "features", "model", "reasons", "publish")}
    steps |= {"state_write": [0.5, 0.5], "total": [9.0, 11.0], UNSTEPPED: [1.0, 1.0], OVERHEAD: [2.0, 4.0]}
    bench = DecideBench(rates=(200,), duration_s=30, half_rate=60)
    bench.throughput = {
        ECHO: _run(ECHO, "8 clients", 1000, 2.0, cores=(0.35, 1.0)),
        DECIDE: _run(DECIDE, "8 clients", 120, 20.0),
    }
    bench.latency = [
        (200, _run(ECHO, "200/s", 200, 2.0), _run(DECIDE, "200/s", 200, 30.0, failures={"422 late_event": 3})),
        (60, _run(ECHO, "60/s", 60, 2.0), _run(DECIDE, "60/s", 60, 6.0, steps=steps, outcomes={"approve": 2})),
    ]
    bench.setup = {"train + evaluate + register": 26.0}
    text = decide_report(bench, settings).render()
    assert "Written by `fraudlake bench decide --rate 200 --duration 30`" in text
    assert "| 1,000 | 120 | 0.12x | >= 0.5x | **not met** |" in text
    assert "| 200 | 2.0 | 30.0 | 15.0x | 3 | <= 4x, none failed | **not met** |" in text
    assert "| 60 (half the sustainable) | 2.0 | 6.0 | 3.0x | 0 | <= 4x, none failed | met |" in text
    assert "**Goals missed:** decide's sustainable rate is 0.12x echo's (goal: at least 0.5x); at 200/s" in text
    assert "| 8 clients | echo | 10,000 | 0 | 1,000 | 2.0 | 2.0 | 2.0 | 2.0 | n/a | 35% | 100% |" in text
    assert "| 60/s | decide | 600 | 0 | 60 | 6.0 | 6.0 | 6.0 | 6.0 | n/a | n/a | n/a |" in text  # nothing measured
    assert "- decide, 200/s: 3 x 422 late_event" in text
    assert "| step | 60/s mean | 60/s p99 |" in text  # the breakdown of the runs with decision answers
    assert "| total | 10.00 | 11.00 |" in text and f"| {OVERHEAD} | 3.00 | 4.00 |" in text
    assert "approve 2, review 0, decline 0" in text
    assert "Set-up (not measured): train + evaluate + register 26 s." in text


def test_the_report_says_so_when_every_goal_is_met(settings) -> None:
    bench = DecideBench(rates=(200,), duration_s=30, half_rate=300)
    bench.throughput = {ECHO: _run(ECHO, "8 clients", 1000, 2.0), DECIDE: _run(DECIDE, "8 clients", 600, 5.0)}
    bench.latency = [(200, _run(ECHO, "200/s", 200, 2.0), _run(DECIDE, "200/s", 200, 7.0))]
    text = decide_report(bench, settings).render()
    assert "Every goal is met in this run." in text and "not met" not in text
