"""The webhook output against a real local HTTP server: retries, backoff, permanent errors, TLS trust,
no secrets in errors or logs."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import logging
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lakehouse.alerts.errors import DeliveryError
from lakehouse.alerts.tail import tail
from lakehouse.alerts.webhook import WebhookOutput, redact_url
from lakehouse.errors import BrokerUnavailableError, ConfigError, FraudlakeError
from tests.alert_helpers import ScriptedServer, sample_alert
from tests.helpers import free_port


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
