"""The scoring benchmark's report renders from what a run collects (progress with observed
metrics as Spark returns them), with the goals' verdicts and the per-step breakdown."""

from __future__ import annotations

from pyspark.sql import Row

from lakehouse.benchmarks.scoring import PASSTHROUGH, PIPELINE, QUIX, LatencyRun, QuixParity, ScoreBench
from lakehouse.benchmarks.scoring_report import score_report
from lakehouse.scoring.processor import STEP_NAMES
from lakehouse.scoring.scorer import STEP_METRICS, BatchTimings


def progress(rows: int) -> dict:
    steps = Row(**dict.fromkeys(STEP_NAMES, 0.01), rows=float(rows), alerts=float(rows))
    return {
        "numInputRows": rows,
        "durationMs": {"latestOffset": 20, "queryPlanning": 30, "addBatch": 400, "walCommit": 40, "commitOffsets": 30},
        "stateOperators": [{"numRowsUpdated": 500, "memoryUsedBytes": 2_000_000, "commitTimeMs": 125}],
        "observedMetrics": {STEP_METRICS: steps},
    }


def test_the_report_renders_verdicts_and_the_step_breakdown(settings) -> None:
    bench = ScoreBench(preload=1000, throughput={PASSTHROUGH: [20_000.0], PIPELINE: [12_000.0]})
    for pipeline, p99 in ((PASSTHROUGH, 1000.0), (PIPELINE, 1500.0)):
        bench.latency.append(LatencyRun(pipeline, 200.0, 100, 100, samples_ms=[p99] * 100))
    bench.batches[200.0] = [BatchTimings(i, 0.4) for i in range(5)]
    bench.progress[200.0] = [progress(200) for _ in range(5)]
    text = score_report(bench, settings, duration_s=60, machine="test machine").render()
    assert "0.60x" in text and "1.50x" in text
    assert "state s" in text and "0.010" in text and "500" in text
    assert "store commit s" in text and "0.125" in text


def test_the_report_puts_quix_streams_beside_them_with_its_parity_and_its_time_per_event(settings) -> None:
    bench = ScoreBench(preload=1000, throughput={PASSTHROUGH: [20_000.0], PIPELINE: [12_000.0], QUIX: [400.0]})
    for pipeline, p99 in ((PASSTHROUGH, 1000.0), (PIPELINE, 1500.0), (QUIX, 9000.0)):
        bench.latency.append(LatencyRun(pipeline, 200.0, 100, 100, samples_ms=[p99] * 100))
    bench.parity = QuixParity(compared=1000, only_one=0, max_score_diff=1e-16, alert_differences=0)
    steps = {"parse": 0.1, "state": 0.5, "features": 0.5, "model": 0.2, "reasons": 0.1, "records": 0.1}
    bench.quix_figures = {"processed": 1000, "seconds": 2.5, "skipped": 0, "steps": steps}
    text = score_report(bench, settings, duration_s=60, machine="test machine").render()
    assert "| quix streams | 400 |" in text and "0.020x" in text and "30.0x Quix Streams" in text
    assert "Quix Streams p99 / pass-through p99 = 9.00x" in text and "**1.50x**" in text
    assert "differ from the Spark scorer's by at most 1.0e-16, with 0 different alert decisions" in text
    assert "(equal within 1e-9)" in text and "2.50 in all" in text and "Quix itself" in text and "1.00." in text
