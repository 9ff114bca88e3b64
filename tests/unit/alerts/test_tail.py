"""The alert consumer's parts without a broker: parsing, deduplication, file and JSON-lines outputs,
and the tail loop's error handling."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from lakehouse.alerts.dedup import Deduplicator
from lakehouse.alerts.outputs import FileOutput, JsonLinesOutput
from lakehouse.alerts.parsing import parse_alert
from lakehouse.contract.alerts import ALERT_FIELDS
from lakehouse.errors import FraudlakeError
from tests.alert_helpers import sample_alert


def encoded(alert: dict[str, Any]) -> bytes:
    return json.dumps(alert).encode()


# ----------------------------------------------------------------------------- parse_alert


def test_parse_alert_returns_every_field_of_a_complete_alert() -> None:
    alert = sample_alert(1, extra_field="kept")

    parsed = parse_alert(encoded(alert))

    assert parsed == alert
    assert set(ALERT_FIELDS) <= parsed.keys()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b"{not json", "not JSON"),
        (b"", "not JSON"),
        (b"\xff\xfe\x00garbage", "not"),
        (None, "empty record"),
        (b"[1, 2]", "not a JSON object but a JSON list"),
        (encoded({k: v for k, v in sample_alert(1).items() if k != "score"}), "missing field score"),
        (
            encoded({k: v for k, v in sample_alert(1).items() if k not in ("score", "user_id")}),
            "missing fields user_id, score",
        ),
        (encoded(sample_alert(1, alert_id=None)), "alert_id must be a non-empty string, got null"),
        (encoded(sample_alert(1, alert_id="")), "alert_id must be a non-empty string"),
    ],
    ids=[
        "bad-json",
        "empty-bytes",
        "not-utf8",
        "tombstone",
        "list",
        "one-missing",
        "two-missing",
        "null-id",
        "empty-id",
    ],
)
def test_parse_alert_names_what_is_wrong(value: bytes | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_alert(value)


# ----------------------------------------------------------------------------- Deduplicator


def test_deduplicator_seen_marks_new_ids_and_reports_repeats() -> None:
    dedup = Deduplicator()

    assert dedup.seen("a") is False
    assert dedup.seen("a") is True
    assert dedup.seen("b") is False
    assert len(dedup) == 2 and "a" in dedup and "c" not in dedup


def test_deduplicator_bounded_capacity_evicts_the_oldest() -> None:
    dedup = Deduplicator(capacity=3)
    for alert in ("a", "b", "c", "d"):
        dedup.seen(alert)

    assert len(dedup) == 3
    assert "a" not in dedup
    assert [x in dedup for x in ("b", "c", "d")] == [True, True, True]
    assert dedup.seen("a") is False  # forgotten, so new again (and now "b" is the oldest to go)
    assert "b" not in dedup


def test_deduplicator_rejects_a_capacity_below_one() -> None:
    with pytest.raises(ValueError, match="capacity must be at least 1"):
        Deduplicator(capacity=0)


def test_deduplicator_save_load_round_trip_keeps_the_newest_ids(tmp_path) -> None:
    path = tmp_path / "state" / "alert-ids.txt"
    dedup = Deduplicator(capacity=10)
    for n in range(5):
        dedup.seen(f"id-{n}")
    dedup.save(path)

    same = Deduplicator.load(path, capacity=10)
    smaller = Deduplicator.load(path, capacity=2)

    assert [f"id-{n}" in same for n in range(5)] == [True] * 5
    assert not same.changed and same.path == path
    assert "id-3" in smaller and "id-4" in smaller and "id-2" not in smaller
    same.add("id-5")
    assert same.changed
    same.save()  # to where it was loaded from
    assert path.read_text().splitlines() == [f"id-{n}" for n in range(6)]
    assert not list(path.parent.glob(".*.tmp"))


def test_deduplicator_load_of_a_missing_file_is_empty(tmp_path) -> None:
    dedup = Deduplicator.load(tmp_path / "absent.txt")

    assert len(dedup) == 0 and dedup.path == tmp_path / "absent.txt"


def test_deduplicator_load_of_an_unreadable_path_is_a_plain_error(tmp_path) -> None:
    with pytest.raises(FraudlakeError, match=f"cannot read the dedup state file {tmp_path}"):
        Deduplicator.load(tmp_path)  # a folder


# ----------------------------------------------------------------------------- file and stream outputs


def test_json_lines_output_writes_one_compact_alert_per_line() -> None:
    stream = io.StringIO()
    output = JsonLinesOutput(stream)

    output.handle(sample_alert(1))
    output.handle(sample_alert(2))
    output.close()

    lines = stream.getvalue().splitlines()
    assert lines == [json.dumps(sample_alert(n), separators=(",", ":")) for n in (1, 2)]


def test_file_output_appends_and_starts_on_a_fresh_line_after_a_partial_one(tmp_path) -> None:
    path = tmp_path / "out" / "alerts.jsonl"
    path.parent.mkdir()
    path.write_text(json.dumps(sample_alert(0)) + "\n" + '{"alert_id": "cut sho')  # a writer killed mid-line

    output = FileOutput(path)
    output.handle(sample_alert(1))
    output.flush()
    output.close()

    lines = path.read_text().splitlines()
    assert json.loads(lines[0]) == sample_alert(0)
    assert lines[1] == '{"alert_id": "cut sho'
    assert json.loads(lines[2]) == sample_alert(1)


def test_file_output_that_cannot_open_its_file_is_a_plain_error(tmp_path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")

    with pytest.raises(FraudlakeError, match=r"cannot open the alert file .*a-file/alerts\.jsonl for appending"):
        FileOutput(blocker / "alerts.jsonl")


def test_parse_alert_replaces_lone_surrogates_that_no_output_could_encode() -> None:
    value = json.dumps(sample_alert(1, merchant_id="m-\ud800", reasons=[{"text": "\udc00!"}])).encode()

    alert = parse_alert(value)

    assert (alert["merchant_id"], alert["reasons"][0]["text"]) == ("m-\ufffd", "\ufffd!")
    assert json.dumps(alert, ensure_ascii=False).encode()  # encodable now


# ----------------------------------------------------------------------------- idle probes


def test_an_unanswered_probe_stops_the_tail_only_after_several_in_a_row() -> None:
    """One broker of a cluster lost leaves its partitions leaderless for a while: a probe that goes
    unanswered (the cluster test's flake: the tail stopped 10 s after a broker was killed) does not
    stop the tail; PROBES_BEFORE_STOPPING in a row do, with the broker's plain error."""
    from lakehouse.alerts.tail import PROBES_BEFORE_STOPPING, Unanswered
    from lakehouse.errors import BrokerUnavailableError

    error = BrokerUnavailableError("Kafka broker not reachable at 127.0.0.1:1 (waited 10s)")
    probes = Unanswered()
    for _ in range(PROBES_BEFORE_STOPPING - 1):
        probes.failed(error)  # goes on
    probes.answered()
    for _ in range(PROBES_BEFORE_STOPPING - 1):
        probes.failed(error)
    with pytest.raises(BrokerUnavailableError, match="not reachable"):
        probes.failed(error)
    assert PROBES_BEFORE_STOPPING >= 2
