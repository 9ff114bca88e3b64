"""`fraudlake alerts tail` on the real broker: duplicates and malformed records handled, offsets
committed only after handling (a second tail of the group reads nothing again, a failed delivery is
read again), where new and rewound groups start, and the real CLI in JSON mode with a webhook set
through its environment variable and a state file across restarts."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from lakehouse.alerts.dedup import Deduplicator
from lakehouse.alerts.errors import DeliveryError, TailError
from lakehouse.alerts.outputs import FileOutput, close_outputs
from lakehouse.alerts.tail import tail
from lakehouse.alerts.webhook import WebhookOutput
from lakehouse.platform.kafka.clients import admin_client, producer
from lakehouse.settings import Settings
from tests.alert_helpers import ScriptedServer, sample_alert

pytestmark = pytest.mark.integration

FRAUDLAKE = str(Path(sys.executable).parent / "fraudlake")


def with_alerts_topic(settings: Settings, topic: str) -> Settings:
    kafka = settings.kafka
    alerts = kafka.topics.alerts.model_copy(update={"name": topic})
    return settings.model_copy(
        update={"kafka": kafka.model_copy(update={"topics": kafka.topics.model_copy(update={"alerts": alerts})})}
    )


def produce(settings: Settings, records: list[tuple[int, str, bytes]]) -> None:
    """Send (partition, key, value) records and wait until the broker acknowledged every one."""
    client = producer(settings.kafka)
    try:
        futures = [
            client.send(settings.kafka.topics.alerts.name, key=key.encode(), value=value, partition=partition)
            for partition, key, value in records
        ]
        client.flush(timeout=30)
        for future in futures:
            future.get(timeout=30)
    finally:
        client.close()


def record(partition: int, alert: dict[str, Any]) -> tuple[int, str, bytes]:
    return partition, alert["user_id"], json.dumps(alert).encode()


def committed_offsets(settings: Settings, group: str) -> dict[int, int]:
    admin = admin_client(settings.kafka)
    try:
        offsets = admin.list_group_offsets(group).get(group, {})
    finally:
        admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == settings.kafka.topics.alerts.name}


def read_alerts(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def tail_to_file(settings: Settings, path: Path, **options: Any):
    output = FileOutput(path)
    try:
        return tail(settings, outputs=[output], **options)
    finally:
        output.close()


@pytest.fixture
def alerts_settings(kafka_broker: Settings, make_topic) -> Settings:
    return with_alerts_topic(kafka_broker, make_topic("alerts", partitions=2))


def test_alerts_tail_drops_duplicates_and_malformed_and_resumes_after_what_it_committed(
    alerts_settings, tmp_path
) -> None:
    settings = alerts_settings
    alerts = [sample_alert(n) for n in range(5)]
    # Each partition ends with a new alert, so a tail stopping at the 5th has read every record.
    produce(
        settings,
        [
            record(0, alerts[0]),
            record(0, alerts[0]),
            (0, "user-0", b'{"alert_id": "cut'),
            record(0, alerts[1]),
            record(0, alerts[2]),
            record(1, alerts[3]),
            record(1, alerts[3]),
            record(1, alerts[4]),
        ],
    )
    group = f"tail-{uuid.uuid4().hex[:8]}"
    first_file = tmp_path / "first.jsonl"

    first = tail_to_file(settings, first_file, group_id=group, from_beginning=True, max_alerts=5, idle_timeout_s=20)

    assert (first.received, first.handled, first.duplicates, first.malformed) == (8, 5, 2, 1)
    assert first.stopped_by == "max_alerts"
    assert sorted(read_alerts(first_file), key=lambda a: a["transaction_id"]) == alerts
    assert first.malformed_records == [(0, 2, first.malformed_records[0][2])]
    assert "not JSON" in first.malformed_records[0][2]
    assert first.committed == {0: 5, 1: 3} == committed_offsets(settings, group)

    # The same group again: everything was committed, nothing is read again.
    again = tail_to_file(settings, tmp_path / "again.jsonl", group_id=group, from_beginning=False, idle_timeout_s=1)
    assert (again.received, again.handled, again.stopped_by) == (0, 0, "idle")
    assert read_alerts(tmp_path / "again.jsonl") == []

    # Two new alerts: the group reads exactly those.
    new = [sample_alert(n) for n in (10, 11)]
    produce(settings, [record(0, new[0]), record(1, new[1])])
    later = tail_to_file(
        settings, tmp_path / "later.jsonl", group_id=group, from_beginning=False, max_alerts=2, idle_timeout_s=20
    )
    assert (later.received, later.handled) == (2, 2)
    assert sorted(read_alerts(tmp_path / "later.jsonl"), key=lambda a: a["transaction_id"]) == new
    assert committed_offsets(settings, group) == {0: 6, 1: 4}


def test_alerts_tail_new_group_starts_at_the_end_and_reads_what_comes_after_joining(alerts_settings, tmp_path) -> None:
    settings = alerts_settings
    produce(settings, [record(0, sample_alert(1)), record(1, sample_alert(2))])
    fresh = sample_alert(3)
    joined = threading.Event()

    def produce_once_joined(starts: dict[int, int]) -> None:
        assert starts == {0: 1, 1: 1}  # the end of each partition
        joined.set()
        produce(settings, [record(1, fresh)])

    report = tail_to_file(
        settings,
        tmp_path / "new-group.jsonl",
        group_id=f"tail-{uuid.uuid4().hex[:8]}",
        from_beginning=False,
        max_alerts=1,
        idle_timeout_s=20,
        on_assigned=produce_once_joined,
    )

    assert joined.is_set()
    assert (report.received, report.handled, report.stopped_by) == (1, 1, "max_alerts")
    assert read_alerts(tmp_path / "new-group.jsonl") == [fresh]


def test_alerts_tail_failed_delivery_is_not_committed_and_read_again(alerts_settings, tmp_path) -> None:

    settings = alerts_settings
    alerts = [sample_alert(n) for n in range(3)]
    produce(settings, [record(0, alert) for alert in alerts])
    group = f"tail-{uuid.uuid4().hex[:8]}"
    state = tmp_path / "ids.txt"
    server = ScriptedServer([200, 503])  # the first alert goes through, then the webhook is down
    failing = [FileOutput(tmp_path / "before-failure.jsonl"), WebhookOutput(server.url(), retries=2, backoff_s=0)]
    try:
        with pytest.raises(DeliveryError, match="after 2 attempt"):
            tail(
                settings,
                group_id=group,
                from_beginning=True,
                outputs=failing,
                idle_timeout_s=20,
                dedup=Deduplicator.load(state),
            )
    finally:
        close_outputs(failing)
        server.stop()
    assert len(server.requests) == 3  # alert 0 once, alert 1 twice; the tail stopped there
    assert committed_offsets(settings, group) == {0: 1, 1: 0}  # rewound, then only alert 0 committed
    assert state.read_text().split() == [alerts[0]["alert_id"]]  # alert 1 is not "seen": it was not delivered

    # A restart of the group, without --from-beginning, delivers the rest, and nothing twice.
    report = tail_to_file(
        settings,
        tmp_path / "retry.jsonl",
        group_id=group,
        from_beginning=False,
        max_alerts=2,
        idle_timeout_s=20,
        dedup=Deduplicator.load(state),
    )

    assert (report.received, report.handled, report.duplicates) == (2, 2, 0)
    assert read_alerts(tmp_path / "retry.jsonl") == alerts[1:]
    assert committed_offsets(settings, group) == {0: 3, 1: 0}


def test_alerts_tail_stopping_at_max_leaves_the_rest_of_the_batch_uncommitted(alerts_settings, tmp_path) -> None:
    settings = alerts_settings
    alerts = [sample_alert(n) for n in range(5)]
    produce(settings, [record(0, alert) for alert in alerts])  # one poll returns them all
    group = f"tail-{uuid.uuid4().hex[:8]}"

    first = tail_to_file(
        settings, tmp_path / "first.jsonl", group_id=group, from_beginning=True, max_alerts=2, idle_timeout_s=20
    )
    rest = tail_to_file(
        settings, tmp_path / "rest.jsonl", group_id=group, from_beginning=False, max_alerts=3, idle_timeout_s=20
    )

    assert first.committed == {0: 2, 1: 0} and first.received == 2
    assert rest.committed == {0: 5, 1: 0} and rest.received == 3
    assert read_alerts(tmp_path / "first.jsonl") == alerts[:2]
    assert read_alerts(tmp_path / "rest.jsonl") == alerts[2:]


class InterruptedOutput:
    """Takes ``before`` alerts, then behaves as if Ctrl-C was pressed while delivering the next."""

    def __init__(self, before: int) -> None:
        self.before = before
        self.alerts: list[dict[str, Any]] = []

    def handle(self, alert: dict[str, Any]) -> None:
        if len(self.alerts) == self.before:
            raise KeyboardInterrupt
        self.alerts.append(alert)

    def close(self) -> None:
        pass


def test_alerts_tail_ctrl_c_commits_what_was_handled_and_returns(alerts_settings) -> None:
    settings = alerts_settings
    alerts = [sample_alert(n) for n in range(3)]
    produce(settings, [record(1, alert) for alert in alerts])
    group = f"tail-{uuid.uuid4().hex[:8]}"
    output = InterruptedOutput(before=1)

    report = tail(settings, group_id=group, from_beginning=True, outputs=[output], idle_timeout_s=20)

    assert report.stopped_by == "interrupted"
    assert output.alerts == alerts[:1] and report.handled == 1
    assert committed_offsets(settings, group) == {0: 0, 1: 1}


def test_alerts_tail_stop_event_ends_the_run(alerts_settings, tmp_path) -> None:
    stop = threading.Event()

    report = tail_to_file(
        alerts_settings,
        tmp_path / "stopped.jsonl",
        group_id=f"tail-{uuid.uuid4().hex[:8]}",
        from_beginning=False,
        stop=stop,
        on_assigned=lambda _starts: stop.set(),
    )

    assert report.stopped_by == "stop" and report.received == 0


def test_alerts_tail_of_a_missing_topic_is_a_plain_error(kafka_broker, tmp_path) -> None:
    settings = with_alerts_topic(kafka_broker, f"absent_{uuid.uuid4().hex[:8]}")

    with pytest.raises(TailError, match=r"topic absent_\w+ does not exist .*fraudlake topics ensure"):
        tail_to_file(settings, tmp_path / "x.jsonl", group_id="g", from_beginning=False, idle_timeout_s=1)


def test_alerts_tail_cli_json_to_stdout_webhook_from_environment_and_state_across_restarts(
    alerts_settings, cli_env, tmp_path
) -> None:

    settings = alerts_settings
    alerts = [sample_alert(n) for n in range(3)]
    produce(settings, [record(0, alerts[0]), record(1, alerts[1]), record(0, alerts[2]), record(1, alerts[1])])
    server = ScriptedServer([200])
    env = {
        **cli_env,
        "FRAUDLAKE_KAFKA__TOPICS__ALERTS__NAME": settings.kafka.topics.alerts.name,
        "FRAUDLAKE_ALERTS_WEBHOOK": server.url("/hook?token=query-secret"),
    }
    state = tmp_path / "state" / "alert-ids.txt"
    base = [FRAUDLAKE, "alerts", "tail", "--format", "json", "--from-beginning", "--state-file", str(state)]
    try:
        first = subprocess.run(
            [*base, "--group", f"cli-{uuid.uuid4().hex[:8]}", "--max", "3", "--idle-timeout", "20"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        # A new group re-reads everything from the beginning: the state file knows every alert.
        second = subprocess.run(
            [*base, "--group", f"cli-{uuid.uuid4().hex[:8]}", "--idle-timeout", "1"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        server.stop()

    assert first.returncode == 0, first.stderr
    printed = [json.loads(line) for line in first.stdout.splitlines()]
    assert sorted(printed, key=lambda a: a["transaction_id"]) == alerts
    assert sorted(json.loads(r["body"])["alert_id"] for r in server.requests) == sorted(a["alert_id"] for a in alerts)
    assert "3 new alerts" in first.stderr and "query-secret" not in first.stderr
    assert state.read_text().split() and set(state.read_text().split()) == {a["alert_id"] for a in alerts}

    assert second.returncode == 0, second.stderr
    assert second.stdout == ""
    assert "0 new alerts, 4 duplicates dropped" in second.stderr
    assert len(server.requests) == 3


def test_alerts_tail_cli_rejects_an_unknown_format(cli_env) -> None:
    result = subprocess.run(
        [FRAUDLAKE, "alerts", "tail", "--format", "xml"], env=cli_env, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 2
    assert result.stderr.strip() == "error: --format 'xml': use table or json"


def test_alerts_tail_dedup_state_is_saved_before_commit(alerts_settings, tmp_path) -> None:
    settings = alerts_settings
    produce(settings, [record(0, sample_alert(1)), record(1, sample_alert(2))])
    state = tmp_path / "ids.txt"

    report = tail_to_file(
        settings,
        tmp_path / "out.jsonl",
        group_id=f"tail-{uuid.uuid4().hex[:8]}",
        from_beginning=True,
        max_alerts=2,
        idle_timeout_s=20,
        dedup=Deduplicator.load(state),
    )

    assert report.handled == 2
    assert set(state.read_text().split()) == {sample_alert(1)["alert_id"], sample_alert(2)["alert_id"]}


def delete_records_before(settings: Settings, partition: int, offset: int) -> None:
    """What retention does: the broker drops the partition's records below ``offset``."""
    from kafka.structs import TopicPartition

    admin = admin_client(settings.kafka)
    try:
        admin.delete_records({TopicPartition(settings.kafka.topics.alerts.name, partition): offset}, timeout_ms=30_000)
    finally:
        admin.close()


def test_alerts_tail_offset_deleted_by_retention_reads_on_from_the_earliest_retained_or_fails(
    alerts_settings, tmp_path
) -> None:
    """Defect: the tail jumped to the end of the partition and skipped every retained alert."""
    settings = alerts_settings
    group = f"tail-{uuid.uuid4().hex[:8]}"
    produce(settings, [record(0, sample_alert(n)) for n in range(2)])
    first = tail_to_file(settings, tmp_path / "a.jsonl", group_id=group, from_beginning=True, max_alerts=2)
    assert first.committed == {0: 2, 1: 0}
    produce(settings, [record(0, sample_alert(n)) for n in range(2, 6)])  # offsets 2 to 5
    delete_records_before(settings, 0, 4)  # 2 and 3 are gone before the group read them

    with pytest.raises(TailError, match=r"partition 0: committed offset 2 is below the earliest retained offset 4"):
        tail_to_file(settings, tmp_path / "b.jsonl", group_id=group, from_beginning=False, out_of_range="fail")
    assert committed_offsets(settings, group) == {0: 2, 1: 0}
    assert read_alerts(tmp_path / "b.jsonl") == []

    report = tail_to_file(settings, tmp_path / "c.jsonl", group_id=group, from_beginning=False, idle_timeout_s=2)

    assert read_alerts(tmp_path / "c.jsonl") == [sample_alert(4), sample_alert(5)]
    assert [(r.partition, r.committed, r.earliest, r.end, r.skipped) for r in report.offset_resets] == [(0, 2, 4, 6, 2)]
    assert committed_offsets(settings, group) == {0: 6, 1: 0}


def test_alerts_tail_offset_past_the_end_of_a_recreated_topic_reads_it_from_the_start(
    alerts_settings, tmp_path
) -> None:
    """A topic deleted and created again starts at offset 0 under the group's old, larger offsets."""
    from kafka.structs import OffsetAndMetadata, TopicPartition

    from lakehouse.platform.kafka.clients import consumer

    settings = alerts_settings
    topic = settings.kafka.topics.alerts.name
    group = f"tail-{uuid.uuid4().hex[:8]}"
    produce(settings, [record(0, sample_alert(1)), record(1, sample_alert(2))])
    old = consumer(settings.kafka, group_id=group)
    try:
        old.commit({TopicPartition(topic, p): OffsetAndMetadata(500, "", -1) for p in (0, 1)})
    finally:
        old.close()

    report = tail_to_file(settings, tmp_path / "out.jsonl", group_id=group, from_beginning=False, idle_timeout_s=2)

    assert sorted(read_alerts(tmp_path / "out.jsonl"), key=lambda a: a["transaction_id"]) == [
        sample_alert(1),
        sample_alert(2),
    ]
    assert sorted((r.partition, r.committed, r.earliest, r.skipped) for r in report.offset_resets) == [
        (0, 500, 0, 0),
        (1, 500, 0, 0),
    ]
    assert "recreated" in report.offset_resets[0].describe()


def test_alerts_tail_group_whose_offsets_expired_reads_on_from_the_earliest_dropping_what_it_delivered(
    alerts_settings, tmp_path
) -> None:
    """No committed offsets, but a state file with ids: the group ran before and lost its offsets."""
    settings = alerts_settings
    produce(settings, [record(0, sample_alert(1)), record(0, sample_alert(2)), record(1, sample_alert(3))])
    state = tmp_path / "ids.txt"
    state.write_text(f"{sample_alert(1)['alert_id']}\n")

    report = tail_to_file(
        settings,
        tmp_path / "out.jsonl",
        group_id=f"tail-{uuid.uuid4().hex[:8]}",
        from_beginning=False,
        idle_timeout_s=2,
        dedup=Deduplicator.load(state),
    )

    assert sorted(read_alerts(tmp_path / "out.jsonl"), key=lambda a: a["transaction_id"]) == [
        sample_alert(2),
        sample_alert(3),
    ]
    assert report.duplicates == 1
    assert sorted((r.partition, r.committed) for r in report.offset_resets) == [(0, None), (1, None)]


def test_alerts_tail_one_alert_refused_for_good_or_unencodable_cannot_stop_the_group(alerts_settings, tmp_path) -> None:
    """Defect: a webhook's 4xx for one alert, or a lone surrogate no output can encode, stopped the
    group on every restart. The refused alert is set aside in the dead-letter file; the other is
    delivered with U+FFFD in place of the surrogate."""
    settings = alerts_settings
    odd = json.dumps(sample_alert(2)).replace('"merchant-2"', '"merchant-\\ud800"').encode()
    produce(settings, [record(0, sample_alert(1)), (0, "user-2", odd), record(0, sample_alert(3))])
    server = ScriptedServer([200, 200, 422])  # the third alert is refused for itself
    group = f"tail-{uuid.uuid4().hex[:8]}"
    outputs = [FileOutput(tmp_path / "out.jsonl"), WebhookOutput(server.url(), retries=2)]
    dead_letter = FileOutput(tmp_path / "dead.jsonl")
    try:
        report = tail(
            settings,
            group_id=group,
            from_beginning=True,
            outputs=outputs,
            dead_letter=dead_letter,
            max_alerts=3,
            idle_timeout_s=20,
        )
    finally:
        close_outputs([*outputs, dead_letter])
        server.stop()

    assert (report.handled, report.dead_lettered) == (3, 1)
    delivered = read_alerts(tmp_path / "out.jsonl")
    assert [a["merchant_id"] for a in delivered] == ["merchant-1", "merchant-\ufffd", "merchant-3"]
    assert json.loads(server.requests[1]["body"])["merchant_id"] == "merchant-\ufffd"
    [dead] = read_alerts(tmp_path / "dead.jsonl")
    assert (dead["alert"], dead["partition"], dead["offset"]) == (sample_alert(3), 0, 2)
    assert "HTTP 422" in dead["reason"] and dead["output"] == outputs[1].display_url
    assert committed_offsets(settings, group) == {0: 3, 1: 0}


@pytest.mark.parametrize(
    ("step", "at_most"),
    [("tail_after_outputs", 2), ("tail_before_commit", 1)],  # before the state file is saved: at least once
)
def test_alerts_tail_killed_at_each_step_delivers_every_alert_after_one_restart(
    alerts_settings, cli_env, tmp_path, step, at_most
) -> None:
    """FRAUDLAKE_FAULT kills the real CLI at a named step of its first commit (SIGKILL to its
    process group); one restart of the same group delivers every alert, none lost, and once the
    state file was saved, none twice."""
    settings = alerts_settings
    alerts = [sample_alert(n) for n in range(4)]
    produce(settings, [record(n % 2, alert) for n, alert in enumerate(alerts)])
    group, out = f"kill-{uuid.uuid4().hex[:8]}", tmp_path / "alerts.jsonl"
    env = {**cli_env, "FRAUDLAKE_KAFKA__TOPICS__ALERTS__NAME": settings.kafka.topics.alerts.name}
    base = [FRAUDLAKE, "alerts", "tail", "--format", "json", "--group", group, "--output-file", str(out)]
    base += ["--state-file", str(tmp_path / "ids.txt")]

    def run(*extra: str, **more_env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*base, *extra],
            env={**env, **more_env},
            capture_output=True,
            text=True,
            timeout=120,
            start_new_session=True,  # the fault kills the CLI's whole process group, not this test
        )

    killed = run("--from-beginning", "--idle-timeout", "5", FRAUDLAKE_FAULT=step)
    # The killed member holds its partitions until its session times out (6 s here): then they move.
    restarted = run("--idle-timeout", "5")

    assert killed.returncode == -9, killed.stderr
    assert restarted.returncode == 0, restarted.stderr
    delivered = Counter(alert["alert_id"] for alert in read_alerts(out))
    assert set(delivered) == {a["alert_id"] for a in alerts}
    assert max(delivered.values()) <= at_most
    assert sum(committed_offsets(settings, group).values()) == len(alerts)
