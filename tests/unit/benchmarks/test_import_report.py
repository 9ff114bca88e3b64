"""The import benchmark's report: medians of each pipeline, the speed-up over the baseline
release with its verdict, and the ratio to the floor."""

from __future__ import annotations

from lakehouse.benchmarks.imports import FLOOR, THIS, ImportBench, baseline_label, import_report


def test_the_report_gives_the_speed_up_over_the_baseline_and_its_verdict(settings) -> None:
    bench = ImportBench(1_000_000, 20_000, 45, "3c5cf6c52c158bf9a8ef0409036058cb81596ea7")
    bench.seconds = {FLOOR: [10.0, 12.0, 11.0], baseline_label(bench.baseline): [90.0, 96.0, 93.0], THIS: [30, 31, 40]}
    text = import_report(bench, settings, machine="test machine").render()
    assert "**3.00x** as fast as the round's start (goal 3x: met)" in text
    assert "| fraudlake import (this release) | 30.0 / 31.0 / 40.0 | **31.0** | 2.82x |" in text
    bench.seconds[THIS] = [40.0]
    assert "(goal 3x: **not met**)" in import_report(bench, settings, machine="m").render()
