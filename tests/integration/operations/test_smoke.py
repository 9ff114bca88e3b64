"""The smoke round trip that `make demo` runs, on the real broker and Spark."""

from __future__ import annotations

import pytest

from lakehouse.operations.smoke import run_smoke
from lakehouse.platform.kafka.topics import list_topics

pytestmark = pytest.mark.integration


def test_smoke_round_trip_reconciles_and_cleans_up_its_topic(kafka_broker, spark, tmp_path) -> None:
    report = run_smoke(kafka_broker, lambda: spark, str(tmp_path / "smoke"), count=40, timeout_s=30)

    assert (report.produced, report.consumed, report.spark_read) == (40, 40, 40)
    assert (report.delta_rows_at_version_0, report.delta_rows_now, report.delta_version) == (40, 41, 1)
    assert report.ok
    assert report.topic not in list_topics(kafka_broker.kafka)
