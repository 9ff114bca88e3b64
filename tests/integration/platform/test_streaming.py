"""How the long-running jobs wait for their queries (`lakehouse.platform.streaming.supervise`), on the real
SparkSession: SIGTERM (a service manager's stop) stops every query cleanly, and a query that
fails ends the wait, stops the others and is reported."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from lakehouse.platform.streaming import supervise
from lakehouse.platform.waits import wait_until

pytestmark = pytest.mark.integration


def rate_query(spark, checkpoint, on_batch=None):
    rows = spark.readStream.format("rate").option("rowsPerSecond", 20).load()
    writer = rows.writeStream.foreachBatch(on_batch) if on_batch else rows.writeStream.format("noop")
    return writer.option("checkpointLocation", str(checkpoint)).trigger(processingTime="200 milliseconds").start()


def test_supervise_stops_every_query_cleanly_on_sigterm(spark, tmp_path) -> None:
    queries = [rate_query(spark, tmp_path / name) for name in ("a", "b")]
    original = signal.getsignal(signal.SIGTERM)
    sent = threading.Event()

    def terminate_once_running() -> None:
        # Only once supervise listens (its handler in place) and both queries committed a batch.
        wait_until(
            lambda: signal.getsignal(signal.SIGTERM) is not original and all(q.lastProgress for q in queries),
            timeout_s=60,
            what="running queries",
        )
        os.kill(os.getpid(), signal.SIGTERM)
        sent.set()

    sender = threading.Thread(target=terminate_once_running, daemon=True)
    sender.start()
    try:
        failed = supervise(queries, poll_s=0.2)
    finally:
        for query in queries:
            query.stop()
    sender.join(5)
    assert sent.is_set() and failed == []
    assert not any(q.isActive for q in queries) and all(q.exception() is None for q in queries)
    assert signal.getsignal(signal.SIGTERM) is original


def test_supervise_ends_when_a_query_fails_and_stops_the_others(spark, tmp_path) -> None:
    def broken(_batch, batch_id: int) -> None:
        if batch_id >= 1:
            raise ValueError("a broken micro-batch")

    healthy, failing = rate_query(spark, tmp_path / "healthy"), rate_query(spark, tmp_path / "failing", broken)
    try:
        failed = supervise([healthy, failing], poll_s=0.2)
    finally:
        healthy.stop()
        failing.stop()
    assert failed == [failing] and not healthy.isActive
    assert "a broken micro-batch" in str(failing.exception())


def test_supervise_restarts_a_failed_query_alone_and_the_others_run_on(spark, tmp_path) -> None:
    """Defect: one failed query (a broker timeout, a concurrent writer) stopped all six ingest
    queries. With a restart, it resumes from its checkpoint after a back-off, and the job goes on."""
    failed_once = tmp_path / "failed-once"

    def flaky(_batch, batch_id: int) -> None:
        if batch_id >= 1 and not failed_once.exists():
            failed_once.touch()
            raise ValueError("a transient failure")

    healthy, failing = rate_query(spark, tmp_path / "healthy"), rate_query(spark, tmp_path / "flaky", flaky)
    restarted, healthy_meanwhile = [], []

    def restart(query):
        healthy_meanwhile.append(healthy.isActive)
        restarted.append(rate_query(spark, tmp_path / "flaky", flaky))
        return restarted[-1]

    original = signal.getsignal(signal.SIGTERM)

    def terminate_once_restarted_and_past_the_failure() -> None:
        wait_until(
            lambda: restarted and (restarted[0].lastProgress or {}).get("batchId", -1) >= 2,
            timeout_s=120,
            what="the restarted query past the failed batch",
        )
        assert signal.getsignal(signal.SIGTERM) is not original
        os.kill(os.getpid(), signal.SIGTERM)

    sender = threading.Thread(target=terminate_once_restarted_and_past_the_failure, daemon=True)
    sender.start()
    try:
        failed = supervise([healthy, failing], poll_s=0.2, restart=restart, backoff_s=0.5)
    finally:
        for query in [healthy, failing, *restarted]:
            query.stop()
    sender.join(5)
    assert failed == [] and len(restarted) == 1 and healthy_meanwhile == [True]
    assert "a transient failure" in str(failing.exception())
    assert healthy.exception() is None and restarted[0].exception() is None
