"""The alert consumer's parts without a broker: parsing, deduplication, file and JSON-lines outputs,
and the webhook against a real local HTTP server (retries, permanent errors, no secrets in errors)."""

from __future__ import annotations

import base64
import datetime
import http.server
import io
import ipaddress
import json
import logging
import socket
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path
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
    """A real HTTP(S) server on 127.0.0.1 that answers POSTs with the scripted statuses (the last repeats).

    ``headers`` are added to every answer (``Retry-After``); ``tls`` makes it an HTTPS server.
    """

    def __init__(
        self, statuses: list[int], headers: dict[str, str] | None = None, tls: ssl.SSLContext | None = None
    ) -> None:
        self.statuses = statuses
        self.headers = headers or {}
        self.requests: list[dict[str, Any]] = []
        self.scheme = "https" if tls else "http"
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                status = server.statuses[min(len(server.requests), len(server.statuses)) - 1]
                self.send_response(status)
                if status in (301, 307):
                    self.send_header("Location", "http://127.0.0.1:1/elsewhere")
                for name, value in server.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hook") -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def http_server() -> Iterator[Any]:
    servers: list[ScriptedServer] = []

    def start(
        *statuses: int, headers: dict[str, str] | None = None, tls: ssl.SSLContext | None = None
    ) -> ScriptedServer:
        servers.append(ScriptedServer(list(statuses), headers, tls))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.mark.parametrize("transient", [503, 429])
def test_webhook_retries_transient_statuses_then_delivers_the_json_body(http_server, transient: int) -> None:
    server = http_server(transient, transient, 200)
    waits: list[float] = []
    output = WebhookOutput(server.url("/hook?token=abc"), retries=5, backoff_s=0.5, sleep=waits.append)
    alert = sample_alert(7)

    output.handle(alert)

    assert output.attempts == 3 and len(server.requests) == 3
    assert waits == [0.5, 1.0]
    assert all(json.loads(r["body"]) == alert for r in server.requests)
    last = server.requests[-1]
    assert last["path"] == "/hook?token=abc"
    assert last["headers"]["Content-Type"] == "application/json"
    assert last["headers"]["Idempotency-Key"] == alert["alert_id"]
    assert "Authorization" not in last["headers"]


def test_webhook_backoff_doubles_up_to_its_cap(http_server) -> None:
    server = http_server(500)
    waits: list[float] = []
    output = WebhookOutput(server.url(), retries=6, backoff_s=4, sleep=waits.append)

    with pytest.raises(DeliveryError, match=r"after 6 attempt\(s\): HTTP 500"):
        output.handle(sample_alert(1))

    assert waits == [4, 8, 16, 30, 30]  # one wait between each two attempts, at most MAX_BACKOFF_S
    assert len(server.requests) == 6


@pytest.mark.parametrize(("retry_after", "wait"), [("3", 3.0), ("120", 30.0), ("0", 0.5), ("soon", 0.5)])
def test_webhook_waits_for_retry_after_when_longer_but_never_beyond_the_cap(
    http_server, retry_after: str, wait: float
) -> None:
    server = http_server(429, 200, headers={"Retry-After": retry_after})
    waits: list[float] = []
    output = WebhookOutput(server.url(), retries=3, backoff_s=0.5, sleep=waits.append)

    output.handle(sample_alert(1))

    assert waits == [wait] and len(server.requests) == 2


def test_webhook_always_failing_raises_delivery_error_after_retries_without_secrets(http_server, caplog) -> None:
    server = http_server(500)
    url = f"http://hook-user:hook-secret@127.0.0.1:{server.port}/services/TOKEN123?token=query-secret"
    output = WebhookOutput(url, retries=3, backoff_s=0)

    with caplog.at_level(logging.DEBUG), pytest.raises(DeliveryError) as raised:
        output.handle(sample_alert(1))

    message = str(raised.value)
    assert len(server.requests) == 3
    assert (
        f"webhook http://127.0.0.1:{server.port}/… failed for alert {sample_alert(1)['alert_id']} after 3 attempt(s)"
        in message
    )
    assert "HTTP 500" in message
    assert f"webhook http://127.0.0.1:{server.port}/…: HTTP 500 Internal Server Error; attempt 2 of 3" in caplog.text
    for secret in ("hook-user", "hook-secret", "TOKEN123", "query-secret"):
        assert secret not in message
        assert secret not in caplog.text
    # User info is sent as basic authentication, not as part of the request line.
    assert server.requests[0]["path"] == "/services/TOKEN123?token=query-secret"
    assert (
        server.requests[0]["headers"]["Authorization"] == "Basic " + base64.b64encode(b"hook-user:hook-secret").decode()
    )
    assert isinstance(raised.value, FraudlakeError) and raised.value.exit_code == 5


@pytest.mark.parametrize(("status", "word"), [(400, "rejected"), (404, "rejected"), (307, "redirected")])
def test_webhook_client_errors_and_redirects_are_not_retried(http_server, status: int, word: str) -> None:
    server = http_server(status)
    waits: list[float] = []
    output = WebhookOutput(server.url(), retries=5, backoff_s=0, sleep=waits.append)

    with pytest.raises(DeliveryError, match=f"{word} alert .*HTTP {status}.*not retried"):
        output.handle(sample_alert(1))

    assert len(server.requests) == 1 and output.attempts == 1 and waits == []


def test_webhook_connection_refused_is_retried_then_a_delivery_error() -> None:
    output = WebhookOutput(
        f"http://127.0.0.1:{free_port()}/hook?token=query-secret", retries=2, backoff_s=0, timeout_s=2
    )

    with pytest.raises(DeliveryError, match=r"after 2 attempt\(s\): Connection refused$") as raised:
        output.handle(sample_alert(1))

    assert output.attempts == 2
    assert "query-secret" not in str(raised.value)


def test_webhook_server_that_never_answers_times_out_and_is_retried() -> None:
    with socket.socket() as listener:  # accepts connections (backlog), never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        output = WebhookOutput(
            f"http://127.0.0.1:{listener.getsockname()[1]}/hook", retries=2, backoff_s=0, timeout_s=0.2
        )

        with pytest.raises(DeliveryError, match=r"after 2 attempt\(s\): timed out$"):
            output.handle(sample_alert(1))

    assert output.attempts == 2


def test_webhook_sends_no_credentials_from_netrc(http_server, tmp_path, monkeypatch) -> None:
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login netrc-user password netrc-secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    server = http_server(200)

    WebhookOutput(server.url()).handle(sample_alert(1))

    assert "Authorization" not in server.requests[0]["headers"]


def test_webhook_https_trusts_the_operating_system_ca_store(http_server, tmp_path, monkeypatch) -> None:
    ca_file, server_tls = private_ca_and_server_tls(tmp_path)
    # A CA that only the OS store (SSL_CERT_FILE) holds, as a company CA would be: not certifi's bundle.
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    for variable in ("SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(variable, raising=False)
    server = http_server(200, tls=server_tls)

    output = WebhookOutput(server.url(), retries=1)
    output.handle(sample_alert(1))
    output.close()

    assert len(server.requests) == 1


def private_ca_and_server_tls(folder: Path) -> tuple[Path, ssl.SSLContext]:
    """A fresh CA (its certificate written to a PEM file) and a server context with a certificate for
    127.0.0.1 that it signed."""
    pytest.importorskip("cryptography")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def certificate(subject: str, key, issuer: x509.Name, signer, *, ca: bool) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
            )
        else:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fraudlake test CA")])
    ca_cert = certificate("fraudlake test CA", ca_key, ca_name, ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = certificate("127.0.0.1", server_key, ca_name, ca_key, ca=False)
    ca_file = folder / "ca.pem"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    chain = folder / "server.pem"
    chain.write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        + server_cert.public_bytes(serialization.Encoding.PEM)
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain)
    return ca_file, context


@pytest.mark.parametrize("url", ["ftp://example.com/hook", "hooks.example.com/x", "http:///path"])
def test_webhook_url_must_be_http_with_a_host(url: str) -> None:
    with pytest.raises(ConfigError, match="webhook URL must be http"):
        WebhookOutput(url)


def test_webhook_retries_must_be_at_least_one() -> None:
    with pytest.raises(ConfigError, match="webhook retries must be at least 1, got 0"):
        WebhookOutput("http://127.0.0.1/hook", retries=0)


# ----------------------------------------------------------------------------- no broker


def test_tail_without_a_broker_is_a_plain_broker_unavailable_error(settings) -> None:
    kafka = settings.kafka.model_copy(update={"bootstrap_servers": f"127.0.0.1:{free_port()}", "connect_timeout_s": 1})

    with pytest.raises(BrokerUnavailableError, match=r"Kafka broker not reachable at 127\.0\.0\.1:\d+ \(waited 1s"):
        tail(settings.model_copy(update={"kafka": kafka}), group_id="g", from_beginning=False, outputs=[])
