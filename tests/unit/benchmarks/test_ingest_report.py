"""The ingest benchmark's drain time (the union of micro-batch intervals, of one query or of
several side by side) and its report: ratios to both floors, the verdict, the step breakdown."""

from __future__ import annotations

from lakehouse.benchmarks.ingest import DELTA_FLOOR, INGEST, KAFKA_FLOOR, Drain, IngestBench, ingest_report
from lakehouse.ingest.queries import SilverTimings
from lakehouse.platform.measure import busy_seconds


def batch(start: str, ms: int, rows: int = 10) -> dict:
    return {"timestamp": f"2026-12-05T10:00:{start}Z", "numInputRows": rows, "durationMs": {"triggerExecution": ms}}


def test_busy_time_counts_overlapping_batches_once_and_leaves_gaps_out() -> None:
    one_query = [batch("00.000", 2000), batch("05.000", 1000)]
    assert busy_seconds(one_query) == 3.0
    side_by_side = [batch("00.000", 2000), batch("01.000", 2000), batch("01.500", 500), batch("10.000", 500)]
    assert busy_seconds(side_by_side) == 3.5
    assert busy_seconds([]) == 0.0


def test_the_report_gives_both_ratios_the_verdict_and_where_the_time_goes(settings) -> None:
    bench = IngestBench(1000, records={"transactions": 1000, "users": 50, "merchants": 10, "labels": 0}, bad=11)
    bench.drains = {
        DELTA_FLOOR: [Drain(1060, 1.0, 2.0, 1), Drain(1060, 0.5, 1.0, 1), Drain(1060, 1.0, 2.0, 1)],
        KAFKA_FLOOR: [Drain(1060, 0.5, 1.0, 1)] * 3,
        INGEST: [Drain(1060, 4.0, 5.0, 8), Drain(1060, 2.0, 3.0, 8), Drain(1060, 2.0, 3.0, 8)],
    }
    bench.progress = {"silver_users": [batch("00.000", 1500)]}
    bench.silver_steps = [SilverTimings("silver_users", 0, {"latest merge": 0.75})] * 2
    text = ingest_report(bench, settings, machine="test machine").render()
    assert "**0.50x** (goal ≥ 0.5x: **met**)" in text and "pass-through: **0.25x**" in text
    assert "| silver_users | 1 | 1.5 |" in text and "| silver_users | latest merge | 1.5 |" in text
    assert "1,060 preloaded once" in text and "11 of them bad" in text


def test_the_flat_run_compares_the_last_day_with_the_first_counted_one(settings) -> None:
    from lakehouse.benchmarks.ingest_flat import FlatRun

    bench = IngestBench(1000, records={"transactions": 1000}, bad=10)
    bench.drains = {pipeline: [Drain(1000, 1.0, 1.0, 1)] for pipeline in (DELTA_FLOOR, KAFKA_FLOOR, INGEST)}
    flat = FlatRun(days=4, per_day=100, rate=50.0, trigger="2 seconds")
    # Day 0 is the warm-up (slow, not counted); silver grows 1.5x from day 1 to day 4.
    flat.batches = {"silver_transactions": {0: [9.0], 1: [2.0, 2.0], 2: [2.5], 3: [2.8], 4: [3.0, 3.0, 2.0]}}
    bench.flat = flat
    text = ingest_report(bench, settings, machine="test machine").render()
    assert flat.ratio("silver_transactions") == 1.5
    assert "| silver_transactions | 2.00 | 2.50 | 2.80 | 3.00 | 1.50x |" in text
    assert "**1.50x** (goal ≤ 1.2x: **not met**)" in text and "--days 4 --per-day 100 --rate 50" in text
    # Over two days each side: days 1-2 (2.0, 2.0, 2.5) against days 3-4 (2.8, 3.0, 3.0, 2.0).
    assert "days 3 to 4): silver_transactions 1.45x" in text
    assert "ran 2 batches with input on day 1 and 3 on day 4" in text
    assert '{"query": "silver_transactions", "day": 4, "batch_seconds": [3.0, 3.0, 2.0]}' in bench_attachment(
        bench, settings
    )


def test_the_report_puts_ingest_s_delta_commits_against_the_time_the_goal_leaves(settings) -> None:
    from lakehouse.benchmarks.delta_commits import IDEMPOTENT, PLAIN, CommitCost

    bench = IngestBench(1000, records={"transactions": 1000}, bad=10)
    bench.drains = {DELTA_FLOOR: [Drain(1000, 2.0, 2.0, 1)], KAFKA_FLOOR: [Drain(1000, 1.0, 1.0, 1)]}
    bench.drains[INGEST] = [Drain(1000, 20.0, 25.0, 8)]
    bench.commits = {
        DELTA_FLOOR: {"the table": 1},
        KAFKA_FLOOR: {},
        INGEST: {"bronze transactions": 1, "silver transactions": 1, "quarantine": 3, "progress": 0},
    }
    bench.commit_cost = CommitCost(1000, {PLAIN: 0.4, IDEMPOTENT: 0.9}, {PLAIN: 1, IDEMPOTENT: 4})
    text = ingest_report(bench, settings, machine="test machine").render()
    assert "| ingest → bronze, silver | 5 | bronze transactions 1, silver transactions 1, quarantine 3 |" in text
    assert "| Kafka → Delta append | 1 | the table 1 |" in text
    assert f"| {IDEMPOTENT} | 0.90 | 4 |" in text and f"| {PLAIN} | 0.40 | 1 |" in text
    # 5 commits x 0.9 s = 4.5 s one after another; the goal (0.5x of a 2 s floor) leaves 4 s.
    assert "about 4.5 s one after another" in text and "against 4.0 s for the whole drain" in text
    assert "(ingest's own drain: 20.0 s)" in text


def test_the_trend_uses_every_batch_and_finds_a_steady_growth_through_noisy_days() -> None:
    from lakehouse.benchmarks.ingest_flat import FlatRun

    flat = FlatRun(days=5, per_day=100, rate=50.0, trigger="2 seconds")
    # 10% a day (1.1**4 = 1.4641 from day 1 to day 5), each day's batches 20% apart around it; the
    # warm-up day is left out however slow.
    flat.batches = {"q": {0: [30.0], **{day: [1.1 ** (day - 1) * 0.9, 1.1 ** (day - 1) * 1.1] for day in range(1, 6)}}}
    assert abs(flat.trend("q") - 1.1**4) < 1e-9
    flat.batches = {"q": {0: [9.0], 1: [2.0, 2.0], 3: [2.0]}, "sparse": {4: [1.0]}}
    assert flat.trend("q") == 1.0 and flat.trend("sparse") != flat.trend("sparse")  # one day: no line
    assert flat.batches_on(1) == 2 and flat.batches_on(4) == 1


def bench_attachment(bench, settings) -> str:
    return ingest_report(bench, settings, machine="m").attachments[".jsonl"]
