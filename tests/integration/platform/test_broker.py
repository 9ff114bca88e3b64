"""The real `fraudlake` CLI against the session's broker: idempotent `up`, `down`/`up` keeping data,
plain errors when the broker is down or the config is wrong."""

from __future__ import annotations

import re

import pytest

from lakehouse.operations.smoke import consume_json, probe_records, produce_json
from tests.helpers import fraudlake

pytestmark = pytest.mark.integration


def pid_of(output: str) -> int:
    match = re.search(r"pid (\d+)", output)
    assert match, output
    return int(match.group(1))


def test_kafka_up_twice_is_harmless_and_down_up_keeps_topics_and_data(kafka_broker, make_topic, cli_env) -> None:
    topic = make_topic("durable")
    records = probe_records(30, "durable")
    produce_json(kafka_broker.kafka, topic, records, key_field="probe_id")

    again = fraudlake("kafka", "up", env=cli_env)
    assert again.returncode == 0, again.stderr
    assert "already running" in again.stdout
    first_pid = pid_of(again.stdout)

    down = fraudlake("kafka", "down", env=cli_env)
    assert down.returncode == 0, down.stderr
    assert "stopped" in down.stdout

    # While it is down: status says so, and a command that needs the broker says so plainly.
    status = fraudlake("kafka", "status", env=cli_env)
    assert status.returncode == 3
    assert "down" in status.stdout
    needs_broker = fraudlake("topics", "list", env=cli_env)
    assert needs_broker.returncode == 3
    assert needs_broker.stderr.startswith("error: Kafka broker not reachable at 127.0.0.1:")
    assert "fraudlake kafka up" in needs_broker.stderr
    assert "Traceback" not in needs_broker.stderr

    up = fraudlake("kafka", "up", env=cli_env)
    assert up.returncode == 0, up.stderr
    assert "started" in up.stdout
    assert pid_of(up.stdout) != first_pid

    listed = fraudlake("kafka", "status", env=cli_env)
    assert listed.returncode == 0
    assert topic in listed.stdout
    received = consume_json(kafka_broker.kafka, topic, expected=len(records), timeout_s=30)
    assert sorted(r["probe_id"] for r in received) == sorted(r["probe_id"] for r in records)


def test_topics_ensure_creates_the_configured_topics_once(kafka_broker, cli_env) -> None:
    first = fraudlake("topics", "ensure", env=cli_env)
    second = fraudlake("topics", "ensure", env=cli_env)

    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    for topic in kafka_broker.kafka.topics.all():
        assert topic.name in first.stdout
        assert re.search(rf"{topic.name}\s+exists", second.stdout)


def test_bad_config_value_is_one_line_naming_the_key(cli_env) -> None:
    result = fraudlake("kafka", "status", env={**cli_env, "FRAUDLAKE_SPARK__SHUFFLE_PARTITIONS": "lots"})

    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "FRAUDLAKE_SPARK__SHUFFLE_PARTITIONS" in lines[0] and "spark.shuffle_partitions" in lines[0]
