"""`fraudlake stream status`, its pure parts: reading a checkpoint, Kafka and Delta lag, and the
healthy / stale / not started verdict."""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime

import pytest

from lakehouse.errors import FraudlakeError
from lakehouse.operations.stream_status import (
    DELTA_END_INDEX,
    HEALTHY,
    NOT_STARTED,
    STALE,
    CheckpointError,
    QueryStatus,
    StreamStatus,
    checkpoint_offsets,
    classify,
    delta_pending_rows,
    kafka_lag,
    last_commit,
    local_path,
    offsets_out_of_range,
)
from tests.helpers import write_checkpoint


def test_checkpoint_offsets_reads_the_last_committed_batch(tmp_path) -> None:
    assert checkpoint_offsets(tmp_path) is None
    batches = {
        b: {"transaction_stream": o}
        for b, o in ((0, {"0": 5, "1": 7}), (1, {"0": 9, "1": 12}), (2, {"0": 20, "1": 20}))
    }
    write_checkpoint(tmp_path, batches, committed=[0, 1])  # batch 2 started but did not commit
    assert checkpoint_offsets(tmp_path) == {0: 9, 1: 12}


def test_last_commit_takes_the_batch_timestamp_else_the_commit_file_time(tmp_path) -> None:
    stamped, unstamped = tmp_path / "stamped", tmp_path / "unstamped"
    write_checkpoint(
        stamped,
        {0: {"t": {"0": 3}}},
        committed=[0],
        metadata={"batchWatermarkMs": 0, "batchTimestampMs": 1_796_000_000_000},
    )
    write_checkpoint(unstamped, {0: {"t": {"0": 3}}}, committed=[0])
    os.utime(unstamped / "commits" / "0", (1_700_000_000, 1_700_000_000))

    assert last_commit(stamped).planned_at == datetime.fromtimestamp(1_796_000_000, UTC)
    batch = last_commit(unstamped)
    assert (batch.batch_id, batch.planned_at, batch.source_offset) == (
        0,
        datetime.fromtimestamp(1_700_000_000, UTC),
        {"t": {"0": 3}},
    )


@pytest.mark.parametrize(
    ("committed", "end", "lag"),
    [
        ({0: 10, 1: 4}, {0: 10, 1: 4}, 0),
        ({0: 10, 1: 4}, {0: 15, 1: 6}, 7),
        ({0: 10}, {0: 10, 1: 3}, 3),  # a partition the query has not read yet counts from 0
        ({0: 12}, {0: 10}, 0),  # the end read before a later commit: never negative
    ],
)
def test_kafka_lag_counts_records_after_the_committed_offsets(committed, end, lag) -> None:
    assert kafka_lag(committed, end) == lag


def write_delta_log(table, commits: dict[int, list[dict]], last_checkpoint: int | None = None) -> None:
    log = table / "_delta_log"
    log.mkdir(parents=True)
    for version, actions in commits.items():
        (log / f"{version:020d}.json").write_text("\n".join(json.dumps(a) for a in actions) + "\n")
    if last_checkpoint is not None:
        (log / "_last_checkpoint").write_text(json.dumps({"version": last_checkpoint, "size": 10}))


def add(rows: int | None, data_change: bool = True) -> dict:
    stats = None if rows is None else json.dumps({"numRecords": rows})
    return {"add": {"path": f"part-{rows}.parquet", "dataChange": data_change, "stats": stats}}


def source_offset(version: int, index: int = -1, starting: bool = False) -> dict:
    return {
        "sourceVersion": 1,
        "reservoirId": "r",
        "reservoirVersion": version,
        "index": index,
        "isStartingVersion": starting,
    }


COMMITS = {
    0: [{"metaData": {"id": "r"}}],
    1: [{"commitInfo": {}}, add(100), add(96)],
    2: [{"commitInfo": {}}, add(40)],
    3: [
        {"commitInfo": {"operation": "OPTIMIZE"}},
        add(136, data_change=False),
        {"remove": {"path": "part-40.parquet"}},
    ],
    4: [{"commitInfo": {}}, add(7)],
}


@pytest.mark.parametrize(
    ("offset", "pending"),
    [
        (source_offset(5), 0),  # everything before version 5 read: up to date
        (source_offset(2), 47),  # versions 2 to 4 waiting; the compaction adds no new rows
        (source_offset(1, DELTA_END_INDEX), 47),  # version 1 read to its end
        (source_offset(1, 0), 243),  # version 1 read partly: counted whole
        (source_offset(1, 0, starting=True), None),  # still reading the first snapshot
        ({"transaction_stream": {"0": 1}}, None),  # not a Delta offset
    ],
)
def test_delta_pending_rows_counts_the_rows_of_unread_commits(tmp_path, offset, pending) -> None:
    write_delta_log(tmp_path, COMMITS)
    assert delta_pending_rows(tmp_path, offset) == pending


def test_delta_pending_rows_is_unknown_without_statistics_or_when_the_log_was_cleaned(tmp_path) -> None:
    write_delta_log(tmp_path / "no-stats", {1: [add(None)]})
    assert delta_pending_rows(tmp_path / "no-stats", source_offset(1)) is None
    write_delta_log(tmp_path / "cleaned", {30: [add(5)]}, last_checkpoint=30)  # versions 2..29 gone
    assert delta_pending_rows(tmp_path / "cleaned", source_offset(2)) is None
    write_delta_log(tmp_path / "current", {29: [add(5)]}, last_checkpoint=20)
    assert delta_pending_rows(tmp_path / "current", source_offset(30)) == 0


@pytest.mark.parametrize(
    ("idle_s", "lag", "state"),
    [
        (None, None, NOT_STARTED),
        (3600.0, 0, HEALTHY),  # idle, but nothing waits
        (10.0, 5000, HEALTHY),  # records waiting, and it committed recently: keeping up
        (301.0, 1, STALE),
        (301.0, None, STALE),  # lag unknown and no recent commit: reported, not assumed fine
        (10.0, None, HEALTHY),
    ],
)
def test_classify_healthy_stale_or_not_started(idle_s, lag, state) -> None:
    assert classify(idle_s, lag, max_idle_s=300) == state


def status(query: str, state: str, detail: str) -> QueryStatus:
    return QueryStatus("ingest", query, "kafka t", "/cp", None, None, None, None, state, detail)


def test_summary_names_the_stale_and_the_not_started_queries() -> None:
    now = datetime(2026, 11, 30, tzinfo=UTC)
    fine = StreamStatus(now, 300, [status("bronze_users", HEALTHY, "up to date")])
    assert fine.healthy and fine.summary() == "all 1 streaming queries healthy (max idle 300 s)"
    report = StreamStatus(
        now,
        300,
        [
            status("bronze_users", HEALTHY, "up to date"),
            status("score", NOT_STARTED, "no committed batch"),
            status("bronze_transactions", STALE, "12 records waiting"),
        ],
    )
    assert not report.healthy
    assert (
        report.summary() == "stale: bronze_transactions (12 records waiting) | not started: score (no committed batch)"
    )
    assert json.loads(json.dumps(report.as_json()))["queries"][2]["state"] == STALE


def test_local_path_accepts_file_uris_and_refuses_remote_ones() -> None:
    assert local_path("file:/data/cp") == local_path("file:///data/cp") == local_path("/data/cp")
    with pytest.raises(
        FraudlakeError, match=r"s3a://bucket/cp: fraudlake stream status reads .* local or mounted folders only"
    ):
        local_path("s3a://bucket/cp")


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (lambda f: f.write_text('v1\n{"batchWatermarkMs": 0}\n{"t": {"0": 3'), "unreadable (JSONDecodeError"),
        (lambda f: f.write_text("v1\n"), "unreadable (IndexError"),
        (lambda f: f.write_bytes(b"v1\n\xff\xfe"), "unreadable (UnicodeDecodeError"),
        (lambda f: f.unlink(), "missing"),
    ],
)
def test_last_commit_of_a_damaged_checkpoint_is_a_plain_error(tmp_path, damage, said) -> None:
    """Defect: a truncated checkpoint file made `stream status` die with a traceback."""
    write_checkpoint(tmp_path, {0: {"t": {"0": 3}}}, committed=[0])
    damage(tmp_path / "offsets" / "0")
    with pytest.raises(
        CheckpointError, match=rf"offsets/0 of committed batch 0 is {re.escape(said)}.*A damaged checkpoint"
    ):
        last_commit(tmp_path)


def test_offsets_out_of_range_names_a_recreated_topic_and_records_deleted_unread() -> None:
    ranges = {0: (0, 10), 1: (40, 50), 2: (0, 0)}
    assert offsets_out_of_range({0: 10, 1: 45}, ranges) == []
    assert offsets_out_of_range({0: 500, 1: 12, 2: 0}, ranges) == [
        "partition 0: checkpoint at offset 500, past the end (10): the topic was recreated or truncated",
        "partition 1: checkpoint at offset 12, before the first retained offset (40): 28 records were deleted unread",
    ]
