"""The console benchmark's report: the queue page's latency percentiles and the alerts that reached it."""

from __future__ import annotations

from lakehouse.benchmarks.console import ConsoleBench, console_report


def test_the_report_gives_the_queue_latency_percentiles_and_the_alerts_queued(settings) -> None:
    bench = ConsoleBench(rate=50, duration_s=60, requests_per_s=5, sent=3000, queued=3000, failures=1)
    bench.latencies_ms = [float(v) for v in range(1, 101)]
    text = console_report(bench, settings).render()
    assert "| 100 | 1 | 50 | 95 | 99 | 100 |" in text
    assert "Payments sent 3,000; alerts in the queue at the end 3,000." in text
