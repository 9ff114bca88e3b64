"""The console's pages and rules, served in process (FastAPI's test client) over an in-memory
queue: sessions, CSRF, roles of the forms, and a decision recorded once however often its
button is pressed. The label events go to a list here; the tests in tests/integration/console
send them to the real broker."""

from __future__ import annotations

import json
import re

import pytest
from fastapi.testclient import TestClient

from lakehouse.console.accounts import Account, hash_password
from lakehouse.console.app import Services, create_app, safe_next
from lakehouse.console.decisions import AuditLog, Decider
from lakehouse.console.queue import AlertQueue

PASSWORD = "correct horse"


def alert(n: int, score: float, user: str = "u1") -> dict:
    return {
        "alert_id": f"a{n}",
        "transaction_id": f"t{n}",
        "user_id": user,
        "merchant_id": "m1",
        "amount": 100.0 * n,
        "currency": "EUR",
        "event_time": "2026-12-01T10:00:00.000Z",
        "score": score,
        "threshold": 0.5,
        "model_version": 3,
        "reasons": [{"feature": "amount", "value": 900.0, "text": "Amount <b>900</b>: higher than 99%"}],
        "emitted_at": "2026-12-01T10:00:01.000Z",
    }


@pytest.fixture
def console(tmp_path):
    sent: list[tuple[bytes, bytes]] = []
    audit = AuditLog(tmp_path / "audit.jsonl")
    queue = AlertQueue(limit=100)
    for n, score in ((1, 0.91), (2, 0.97), (3, 0.62)):
        queue.add(alert(n, score))
    accounts = {
        "ana": Account("ana", "analyst", hash_password(PASSWORD)),
        "root": Account("root", "admin", hash_password(PASSWORD)),
    }
    services = Services(
        accounts,
        queue,
        Decider(lambda k, v: sent.append((k, v)), audit),
        audit,
        history=lambda user: [{"transaction_id": "t1", "event_time": "x", "amount": 1.0, "currency": "EUR"}],
    )
    client = TestClient(create_app(services, secret_key="k" * 32, session_hours=1), follow_redirects=False)
    return client, sent, audit


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def log_in(client: TestClient, name: str = "ana") -> None:
    token = csrf_of(client.get("/login").text)
    reply = client.post("/login", data={"name": name, "password": PASSWORD, "csrf": token, "next": "/"})
    assert reply.status_code == 303 and reply.headers["location"] == "/"


def test_a_page_without_a_session_redirects_to_the_login_page(console) -> None:
    client, _, _ = console
    for path in ("/", "/alerts/a1", "/changes"):
        reply = client.get(path)
        assert reply.status_code == 303 and reply.headers["location"].startswith("/login?next=")


def test_a_wrong_password_is_refused_and_a_right_one_opens_the_queue_sorted_by_score(console) -> None:
    client, _, audit = console
    token = csrf_of(client.get("/login").text)
    wrong = client.post("/login", data={"name": "ana", "password": "nope", "csrf": token})
    assert wrong.status_code == 401 and "Wrong name or password" in wrong.text and PASSWORD not in wrong.text
    log_in(client)
    page = client.get("/").text
    assert page.index(">0.970<") < page.index(">0.910<") < page.index(">0.620<")
    assert [e["action"] for e in audit.entries()] == ["login"]


def test_a_login_or_a_decision_without_the_csrf_token_is_refused(console) -> None:
    client, sent, _ = console
    assert client.post("/login", data={"name": "ana", "password": PASSWORD}).status_code == 403
    log_in(client)
    forged = client.post("/alerts/a1/decision", data={"outcome": "fraud", "version": 0, "csrf": "forged"})
    assert forged.status_code == 403 and sent == []


def test_confirm_fraud_pressed_twice_sends_one_label_event_and_the_case_shows_who_decided(console) -> None:
    client, sent, audit = console
    log_in(client)
    page = client.get("/alerts/a1").text
    assert "Amount &lt;b&gt;900&lt;/b&gt;" in page  # a reason's text is escaped, never markup
    form = {"outcome": "fraud", "version": 0, "csrf": csrf_of(page), "note": "card reported stolen"}
    first, second = client.post("/alerts/a1/decision", data=form), client.post("/alerts/a1/decision", data=form)
    assert first.status_code == second.status_code == 303
    assert len(sent) == 1
    key, value = sent[0]
    event = json.loads(value)
    assert key == b"u1" and event["label"] == "fraud" and event["source"] == "analyst" and event["analyst"] == "ana"
    assert event["transaction_id"] == "t1" and event["note"] == "card reported stolen"
    assert "fraud by ana" in client.get("/alerts/a1").text and "fraud by ana" in client.get("/").text
    assert [e["action"] for e in audit.entries("a1")] == ["decide:fraud"]


def test_an_escalation_makes_no_label_event_and_a_later_decision_supersedes_it(console) -> None:
    client, sent, audit = console
    log_in(client)
    token = csrf_of(client.get("/alerts/a2").text)
    client.post("/alerts/a2/decision", data={"outcome": "escalate", "version": 0, "csrf": token})
    assert sent == []
    client.post("/alerts/a2/decision", data={"outcome": "legitimate", "version": 1, "csrf": token})
    assert [json.loads(v)["label"] for _, v in sent] == ["legitimate"]
    assert [e["action"] for e in audit.entries("a2")] == ["decide:escalate", "decide:legitimate"]


def test_the_filters_and_the_pages_narrow_the_queue(console) -> None:
    client, _, _ = console
    log_in(client)
    assert "(1 alerts)" in client.get("/", params={"min_amount": "250"}).text
    assert "(3 alerts)" in client.get("/", params={"decided": "no"}).text
    assert "(0 alerts)" in client.get("/", params={"model": "4"}).text


@pytest.mark.parametrize("target", ["//evil.example/", "https://evil.example/", "evil"])
def test_login_never_redirects_off_the_site(target) -> None:
    assert safe_next(target) == "/"
