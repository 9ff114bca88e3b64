"""The soak run's measurements from outside the jobs, and its report (no broker, no Spark)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date

import pytest

from lakehouse.demo.pipeline import DemoError, check_live_room
from lakehouse.demo.soak import Sample, SoakResult, last_batch_s, tree_rss_mb, write_soak_report
from lakehouse.settings import load_settings
from tests.helpers import write_checkpoint


def test_the_last_batch_time_is_its_commit_after_its_offsets(tmp_path) -> None:
    assert last_batch_s(tmp_path / "none") is None
    write_checkpoint(tmp_path, {0: {}, 1: {}}, committed=[0, 1])
    os.utime(tmp_path / "offsets" / "1", (1000.0, 1000.0))
    os.utime(tmp_path / "commits" / "1", (1002.5, 1002.5))
    assert last_batch_s(tmp_path) == 2.5


def test_rss_counts_the_whole_process_tree() -> None:
    holding = "import sys; x = bytearray(64 << 20); sys.stdin.read()"  # holds 64 MB until killed
    child = subprocess.Popen([sys.executable, "-c", holding], stdin=subprocess.PIPE)
    try:
        parent = os.getpid()
        alone = tree_rss_mb(child.pid)
        assert alone > 0 and tree_rss_mb(parent) > alone  # the test process plus its child
    finally:
        child.kill()
        child.wait()
    assert tree_rss_mb(child.pid) == 0.0


def test_the_report_gives_the_alerts_accounting_and_the_samples_over_time(tmp_path) -> None:
    samples = [
        Sample(0, {"ingest": 900.0, "score": 1200.0}, {"score": 5, "silver_transactions": 0}, {"score": 1.5}, 2.0),
        Sample(60, {"ingest": 950.0, "score": 1210.0}, {"score": 0, "silver_transactions": 3}, {"score": 1.1}, 2.5),
    ]
    result = SoakResult(120, 25, sent=3000, scored=3000, flagged=60, alert_records=61, delivered=60, samples=samples)
    result.repeated_records = 1

    text = write_soak_report(tmp_path / "soak.md", result, "test machine")

    assert (tmp_path / "soak.md").read_text() == text
    assert "| 3,000 | 3,000 | 60 | 61 | **0** | 60 | **0** | 1 |" in text
    assert "| 60 | 950 | 1,210 | 3 | 1.1 | - | 2.5 |" in text  # no silver batch sampled yet
    assert "ingest 900 → 950 MB" in text and "max 1.5 s" in text
    paused = Sample(90, {"ingest": 950.0}, {}, {}, 2.5)  # the broker did not answer: no lag
    assert "| 90 | 950 | unknown |" in write_soak_report(tmp_path / "p.md", SoakResult(90, 25, samples=[paused]), "m")
    early = SoakResult(3600, 25, samples=samples, traffic_s=2376.4, stopped_early="the simulated time reached x")
    assert "**The traffic stopped after 2,376 s of the 3,600 s asked**: the simulated time reached x." in (
        write_soak_report(tmp_path / "e.md", early, "m")
    )


def test_a_run_the_simulator_has_no_room_for_is_refused_with_the_setting_to_change(tmp_path) -> None:
    settings = load_settings("local", environ={"FRAUDLAKE_PATHS__DATA_DIR": str(tmp_path)})
    sim = settings.simulator  # 30 days of history at 3,333 a day, 60 days of room before today
    today = date(2026, 12, 5)
    check_live_room(settings, 25 * 3600, today)  # 27 days of traffic
    with pytest.raises(DemoError, match=r"need about 109 simulated days .* at least 109"):
        check_live_room(settings, 360_000, today)
    assert sim.live_days == 60
