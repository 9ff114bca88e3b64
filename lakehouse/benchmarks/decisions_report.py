"""The report of `fraudlake bench decide` (:mod:`lakehouse.benchmarks.decisions`): the goals met or
not, the absolute figures and where a decision's time goes, rendered from the measured runs."""

from __future__ import annotations

import math
from collections import Counter

from lakehouse.benchmarks.decisions import (
    BATCH,
    CLIENTS,
    DECIDE,
    ECHO,
    MAX_CONNECTIONS,
    OVERHEAD,
    SIMULATOR,
    UNSTEPPED,
    WARMUP,
    DecideBench,
    Run,
)
from lakehouse.benchmarks.report import Report
from lakehouse.decisions.service import DECISION_STEPS
from lakehouse.platform.measure import percentile
from lakehouse.settings import Settings

THROUGHPUT_GOAL = 0.5  # decide's sustainable rate / echo's, at least
LATENCY_GOAL = 4.0  # decide's p99 / echo's, at most
MAX_FLOOR_LAG_MS = 50.0  # an echo run whose load generator sent this late (p99) measured the client: not judged
MET = {True: "met", False: "**not met**"}


def throughput_verdict(echo: Run, decide: Run) -> tuple[float, bool]:
    """Decide's sustainable rate / echo's, and whether it meets :data:`THROUGHPUT_GOAL` (NaN: not met)."""
    ratio = decide.per_second / echo.per_second if echo.per_second else math.nan
    return ratio, ratio >= THROUGHPUT_GOAL


def latency_verdict(echo: Run, decide: Run) -> tuple[float, bool]:
    """Decide's p99 / echo's, and whether it meets :data:`LATENCY_GOAL` with no failed decision and
    a clean floor: a stalled load generator in the echo run (:func:`floor_lag`) would flatter decide."""
    ratio = decide.p(99) / echo.p(99) if echo.latencies_ms and decide.latencies_ms else math.nan
    return ratio, ratio <= LATENCY_GOAL and decide.failed == 0 and floor_lag(echo) is None


def floor_lag(echo: Run) -> float | None:
    """The echo run's client lag p99 (ms) when over :data:`MAX_FLOOR_LAG_MS`, else None."""
    lag = percentile(echo.lag_ms, 99) if echo.lag_ms else 0.0
    return lag if lag > MAX_FLOOR_LAG_MS else None


def _ms(value: float, digits: int = 1) -> str:
    return "n/a" if math.isnan(value) else f"{value:,.{digits}f}"


def _absolute(r: Run) -> list:
    figures = [r.p(50), r.p(95), r.p(99), max(r.latencies_ms, default=math.nan), percentile(r.lag_ms, 99)]
    counts = [r.load, r.endpoint, f"{len(r.latencies_ms):,}", r.failed, f"{r.per_second:,.0f}"]
    return [*counts, *map(_ms, figures), *("n/a" if math.isnan(c) else f"{c:.0%}" for c in r.cores)]


def decide_report(bench: DecideBench, settings: Settings) -> Report:
    world = ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in SIMULATOR.items())
    rates = "".join(f" --rate {r:g}" for r in bench.rates)
    report = Report(
        name="decisions",
        title="The decision service against its floor (an echo endpoint on the same server)",
        command=f"fraudlake bench decide{rates} --duration {bench.duration_s:g}",
        settings={
            "world": f"the benchmark's own (as `bench console`'s): simulated ({world}), imported, featurised, trained "
            "(GBT, 10 iterations); champion and snapshot in the scorer's serving folder; Redis warmed from silver",
            "service": "`fraudlake serve` in its own process (FastAPI on uvicorn, loopback), Redis and the broker "
            f"local; the decisions of a partition (of {settings.kafka.topics.transactions.partitions}) are taken one "
            "at a time, each waiting for the broker's ack of its record (and of its alert, for a review or decline)",
            "floor": "`POST /v1/echo` on the same server, stack and thread pool: reads, parses and answers the body",
            "load": f"httpx on one asyncio loop in the benchmark's process (at most {MAX_CONNECTIONS} connections); "
            f"{WARMUP} warm-up requests per endpoint, then {bench.duration_s:g} s runs, echo first, then decide: a "
            f"closed loop of {CLIENTS} clients (sustainable rate: 2xx answers a second), then an open loop at each "
            "rate (sent at the scheduled instants whatever came back; latency from them, so queueing counts)",
            "requests": "the world's simulated payments after its history, each decided once and stamped with the "
            "time it is handed out, as a live payment is; the echo gets the same bodies",
        },
    )
    missed, echo, decide = [], bench.throughput[ECHO], bench.throughput[DECIDE]
    ratio, met = throughput_verdict(echo, decide)
    row = [f"{echo.per_second:,.0f}", f"{decide.per_second:,.0f}", f"{ratio:.2f}x", f">= {THROUGHPUT_GOAL:g}x"]
    columns = ["echo", "decide", "decide / echo", "goal", "met"]
    report.section("Sustainable rate (2xx answers a second)").table(columns, [[*row, MET[met]]], "rrrrl")
    if not met:
        missed.append(f"decide's sustainable rate is {ratio:.2f}x echo's (goal: at least {THROUGHPUT_GOAL:g}x)")
    report.section("Latency at fixed rates (p99, ms)")
    rows = []
    for rate, echo_run, decide_run in bench.latency:
        ratio, met = latency_verdict(echo_run, decide_run)
        half = " (half the sustainable)" * (rate == bench.half_rate)
        row = [f"{rate:g}{half}", _ms(echo_run.p(99)), _ms(decide_run.p(99)), f"{ratio:.1f}x", decide_run.failed]
        lag = floor_lag(echo_run)
        verdict = MET[met] if lag is None else f"**not judged** (echo's client lag p99 {lag:,.0f} ms)"
        rows.append([*row, f"<= {LATENCY_GOAL:g}x, none failed", verdict])
        if lag is not None:
            missed.append(f"at {rate:g}/s the echo's run is not a floor (its load generator lagged {lag:,.0f} ms)")
        elif not met:
            missed.append(f"at {rate:g}/s decide's p99 is {ratio:.1f}x echo's and {decide_run.failed} decisions failed")
    report.table(["rate /s", "echo", "decide", "decide / echo", "decide failed", "goal", "met"], rows, "lrrrrll")
    report.text(f"**Goals missed:** {'; '.join(missed)}." if missed else "Every goal is met in this run.")
    runs = [*bench.throughput.values(), *(run for _, *pair in bench.latency for run in pair)]
    columns = ["load", "endpoint", "2xx", "failed", "answered /s", *(f"{p} ms" for p in ("p50", "p95", "p99", "max"))]
    columns += ["client lag p99 ms", "service CPU", "client CPU"]
    report.section("Absolute figures").table(columns, map(_absolute, runs), "ll" + "r" * 10)
    report.text(
        "Client lag: how late the load generator sent a request after its instant (it is in the latency). CPU: of the "
        "service's process and of the load generator's, 100 % = a core (the broker and Redis are not counted)."
    )
    failures = [f"- {r.endpoint}, {r.load}: {n:,} x {kind}" for r in runs for kind, n in r.failures.items()]
    if failures:
        report.text("Failed requests:", *failures)
    timed = [(rate, run) for rate, _, run in bench.latency if run.steps]
    order = (*DECISION_STEPS, UNSTEPPED, "total", OVERHEAD)
    stats = lambda values: (sum(values) / len(values), percentile(values, 99)) if values else (math.nan,) * 2  # noqa: E731
    steps = [[step, *(_ms(v, 2) for _, run in timed for v in stats(run.steps.get(step, [])))] for step in order]
    columns = ["step", *(f"{rate:g}/s {stat}" for rate, _ in timed for stat in ("mean", "p99"))]
    heading = "Where a decision's time goes (ms, the open-loop runs' answers)"
    report.section(heading).table(columns, steps, "l" + "r" * 2 * len(timed))
    outcomes = sum((Counter(run.outcomes) for _, _, run in bench.latency), Counter())
    mix = ", ".join(f"{name} {outcomes[name]:,}" for name in ("approve", "review", "decline"))
    report.text(f"{OVERHEAD}: the client's latency minus the service's total. Decisions of these runs: {mix}.")
    batches = [
        f"{run.load} {stats(run.steps[BATCH])[0]:.1f} (largest {max(run.steps[BATCH]):,.0f})"
        for run in [bench.throughput.get(DECIDE), *(r for _, _, r in bench.latency)]
        if run is not None and run.steps.get(BATCH)
    ]
    if batches:
        report.text("Decisions per batch (mean): " + "; ".join(batches) + ".")
    if bench.setup:
        report.text("Set-up (not measured): " + ", ".join(f"{k} {v:,.0f} s" for k, v in bench.setup.items()) + ".")
    return report
