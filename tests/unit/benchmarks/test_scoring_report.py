"""The scoring benchmark's report renders from what a run collects (progress with observed
metrics as Spark returns them), with the goals' verdicts and the per-step breakdown."""

from __future__ import annotations

from pyspark.sql import Row

from lakehouse.benchmarks.scoring import PASSTHROUGH, PIPELINE, LatencyRun, ScoreBench
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
