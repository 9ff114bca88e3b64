"""The alert consumer's parts without a broker: parsing, deduplication, file and JSON-lines outputs,
and the webhook against a real local HTTP server (retries, permanent errors, no secrets in errors)."""

from __future__ import annotations

import base64
import http.server
import io
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from lakehouse.alerts.dedup import Deduplicator
from lakehouse.alerts.errors import DeliveryError
from lakehouse.alerts.outputs import FileOutput, JsonLinesOutput
from lakehouse.alerts.parsing import parse_alert
from lakehouse.alerts.tail import tail
from lakehouse.alerts.webhook import WebhookOutput, redact_url
from lakehouse.contract.alerts import ALERT_FIELDS, alert_id
from lakehouse.errors import BrokerUnavailableError, ConfigError, FraudlakeError
from tests.conftest import free_port


def sample_alert(n: int, **overrides: Any) -> dict[str, Any]:
    """A complete alert as the scorer writes it (transaction ``tx-<n>``)."""
    transaction_id = f"tx-{n}"
    alert = {
        "alert_id": alert_id(transaction_id),
        "transaction_id": transaction_id,
        "user_id": f"user-{n % 3}",
        "merchant_id": f"merchant-{n}",
        "amount": 100.0 + n,
        "currency": "EUR",
        "event_time": f"2026-11-30T08:{n % 60:02d}:03.120Z",
        "transaction_created_at": f"2026-11-30T08:{n % 60:02d}:03.250Z",
        "score": 0.9,
        "threshold": 0.41,
        "model_version": 3,
        "reasons": [
            {"feature": "user_amount_ratio_30d", "value": 14.2, "text": "Amount / the user's 30-day mean amount: 14.20"}
        ],
        "emitted_at": f"2026-11-30T08:{n % 60:02d}:05.004Z",
    }
    return {**alert, **overrides}


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


# ----------------------------------------------------------------------------- webhook


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://user:secret@hooks.example.com/services/T0/B0/TOKEN?token=abc#frag", "https://hooks.example.com/…"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
        ("http://[::1]:9000/hook", "http://[::1]:9000/…"),
        ("https://example.com?key=abc", "https://example.com/…"),
    ],
)
def test_redact_url_keeps_only_the_origin(url: str, shown: str) -> None:
    assert redact_url(url) == shown


class ScriptedServer:
    """A real HTTP server on 127.0.0.1 that answers POSTs with the scripted statuses (the last repeats)."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                status = server.statuses[min(len(server.requests), len(server.statuses)) - 1]
                self.send_response(status)
                if status in (301, 307):
                    self.send_header("Location", "http://127.0.0.1:1/elsewhere")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def http_server() -> Iterator[Any]:
    servers: list[ScriptedServer] = []

    def start(*statuses: int) -> ScriptedServer:
        servers.append(ScriptedServer(list(statuses)))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.mark.parametrize("transient", [503, 429])
def test_webhook_retries_transient_statuses_then_delivers_the_json_body(http_server, transient: int) -> None:
    server = http_server(transient, transient, 200)
    output = WebhookOutput(server.url("/hook?token=abc"), retries=5, backoff_s=0.001)
    alert = sample_alert(7)

    output.handle(alert)

    assert output.attempts == 3 and len(server.requests) == 3
    assert all(json.loads(r["body"]) == alert for r in server.requests)
    last = server.requests[-1]
    assert last["path"] == "/hook?token=abc"
    assert last["headers"]["Content-Type"] == "application/json"
    assert last["headers"]["Idempotency-Key"] == alert["alert_id"]


def test_webhook_always_failing_raises_delivery_error_after_retries_without_secrets(http_server) -> None:
    server = http_server(500)
    url = f"http://hook-user:hook-secret@127.0.0.1:{server.port}/services/TOKEN123?token=query-secret"
    output = WebhookOutput(url, retries=3, backoff_s=0.001)

    with pytest.raises(DeliveryError) as raised:
        output.handle(sample_alert(1))

    message = str(raised.value)
    assert len(server.requests) == 3
    assert (
        f"webhook http://127.0.0.1:{server.port}/… failed for alert {sample_alert(1)['alert_id']} after 3 attempt(s)"
        in message
    )
    assert "HTTP 500" in message
    for secret in ("hook-user", "hook-secret", "TOKEN123", "query-secret"):
        assert secret not in message
    # User info is sent as basic authentication, not as part of the request line.
    assert server.requests[0]["path"] == "/services/TOKEN123?token=query-secret"
    assert (
        server.requests[0]["headers"]["Authorization"] == "Basic " + base64.b64encode(b"hook-user:hook-secret").decode()
    )
    assert isinstance(raised.value, FraudlakeError) and raised.value.exit_code == 5


@pytest.mark.parametrize(("status", "word"), [(400, "rejected"), (404, "rejected"), (307, "redirected")])
def test_webhook_client_errors_and_redirects_are_not_retried(http_server, status: int, word: str) -> None:
    server = http_server(status)
    output = WebhookOutput(server.url(), retries=5, backoff_s=0.001)

    with pytest.raises(DeliveryError, match=f"{word} alert .*HTTP {status}.*not retried"):
        output.handle(sample_alert(1))

    assert len(server.requests) == 1


def test_webhook_connection_refused_is_retried_then_a_delivery_error() -> None:
    output = WebhookOutput(f"http://127.0.0.1:{free_port()}/hook", retries=2, backoff_s=0.001, timeout_s=2)

    with pytest.raises(DeliveryError, match=r"after 2 attempt\(s\): .*refused"):
        output.handle(sample_alert(1))

    assert output.attempts == 2


@pytest.mark.parametrize("url", ["ftp://example.com/hook", "hooks.example.com/x", "http:///path"])
def test_webhook_url_must_be_http_with_a_host(url: str) -> None:
    with pytest.raises(ConfigError, match="webhook URL must be http"):
        WebhookOutput(url)


# ----------------------------------------------------------------------------- no broker


def test_tail_without_a_broker_is_a_plain_broker_unavailable_error(settings) -> None:
    kafka = settings.kafka.model_copy(update={"bootstrap_servers": f"127.0.0.1:{free_port()}", "connect_timeout_s": 1})

    with pytest.raises(BrokerUnavailableError, match=r"Kafka broker not reachable at 127\.0\.0\.1:\d+ \(waited 1s"):
        tail(settings.model_copy(update={"kafka": kafka}), group_id="g", from_beginning=False, outputs=[])
