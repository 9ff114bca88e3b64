"""The cluster benchmark's report renders from what a run collects: each pipeline on one worker
against two, and the scorer against the pass-through for each size; without the running cluster
the benchmark stops at once with what to do."""

from __future__ import annotations

import pytest

from lakehouse.benchmarks.cluster import ClusterBench, bench_cluster, cluster_report
from lakehouse.benchmarks.scoring import PASSTHROUGH, PIPELINE
from lakehouse.errors import FraudlakeError
from lakehouse.settings import load_settings


def test_the_report_gives_two_workers_against_one_and_the_scorer_against_the_floor(settings) -> None:
    bench = ClusterBench(preload=20_000, partitions=4, setup={"train": 60.0})
    bench.throughput = {
        (PIPELINE, 1): [900.0, 1000.0, 1100.0],
        (PIPELINE, 2): [1500.0, 1400.0, 1600.0],
        (PASSTHROUGH, 1): [5000.0] * 3,
        (PASSTHROUGH, 2): [8000.0] * 3,
    }
    bench.spread = {1: [1, 1, 1], 2: [2, 2, 2]}
    text = cluster_report(bench, settings).render()
    assert "| scorer | 1,000 | 1,500 | 1.50x |" in text
    assert "| pass-through | 5,000 | 8,000 | 1.60x |" in text
    assert "| 1 executor(s) | 0.20x | [1, 1, 1] |" in text and "| 2 executor(s) | 0.19x | [2, 2, 2] |" in text


def test_without_the_local_cluster_the_benchmark_says_what_to_run(tmp_path) -> None:
    plain = load_settings("local", environ={"FRAUDLAKE_PATHS__DATA_DIR": str(tmp_path)})
    with pytest.raises(FraudlakeError, match="fraudlake cluster up"):
        bench_cluster(plain, folder=tmp_path, preload=10, runs=1)
