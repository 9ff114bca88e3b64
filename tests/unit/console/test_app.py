"""The console's pages and rules, served in process (FastAPI's test client) over an in-memory
queue: sessions, CSRF, roles of the forms, and a decision recorded once however often its
button is pressed. The label events go to a list here; the tests in tests/integration/console
send them to the real broker."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from lakehouse.console.accounts import Account, hash_password
from lakehouse.console.app import Services, create_app, safe_next
from lakehouse.console.audit import AuditTrail
from lakehouse.console.decisions import Decider
from lakehouse.console.queue import AlertQueue
from lakehouse.ml.live import LiveMetrics
from lakehouse.ml.registry import ModelVersionInfo
from lakehouse.operations.stream_status import QueryStatus, StreamStatus

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


class Desk:
    """The registry's side of the models page, in memory (the integration test uses MLflow's)."""

    def __init__(self, reports: Path) -> None:
        self.champion, self.before = 2, [{"version": 1, "replaced_at": "2026-12-01T00:00:00", "reason": "trained"}]
        self.reports = reports  # version 2's training report; the others have none

    def live(self) -> dict:
        seen = LiveMetrics(2, scored=900, alerts=40, frauds=20, caught=30, first_day=None, last_day=None)
        return {"by_version": {2: seen}, "matured_before": datetime(2026, 11, 24, tzinfo=UTC)}

    def report(self, version: int) -> Path | None:
        return self.reports if version == 2 else None

    def versions(self) -> list[ModelVersionInfo]:
        return [
            ModelVersionInfo(v, "2026-12-01", "gbt", 0.5, 0.7 + v / 100, v == self.champion, f"run{v}", {})
            for v in (1, 2, 3)
        ]

    def history(self) -> list[dict]:
        return self.before

    def promote(self, version: int, actor: str) -> None:
        self.before.append({"version": self.champion, "replaced_at": "now", "reason": f"promoted by {actor}"})
        self.champion = version

    def rollback(self) -> int:
        self.champion = self.before.pop()["version"]
        return self.champion


class Health:
    """The health page's sources, in memory; the retraining table cannot be read."""

    def streams(self) -> StreamStatus:
        query = QueryStatus("ingest", "silver_transactions", "t", "c", 7, None, 3.0, 0, "healthy", "up to date")
        return StreamStatus(datetime(2026, 12, 1, tzinfo=UTC), 60.0, [query])

    def latency(self) -> dict:
        return {"minutes": 15, "alerts": 42, "p50_ms": 1200.0, "p99_ms": 4100.0}

    def retraining(self) -> list[dict]:
        raise RuntimeError("Table or view not found: gold.retraining_runs")


@pytest.fixture
def console(tmp_path):
    sent: list[tuple[bytes, bytes]] = []
    audit = AuditTrail(lambda row: None)  # the table itself: tests/unit/console/test_queue.py
    docs, report = tmp_path / "data_docs", tmp_path / "reports" / "2"
    docs.mkdir()
    report.mkdir(parents=True)
    (report / "index.html").write_text("<h1>Training report</h1>")
    (report / "roc.png").write_bytes(b"\x89PNG")
    (docs / "index.html").write_text("<h1>Data Docs</h1>")
    (tmp_path / "secret.txt").write_text("not for the web")
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
        merchant=lambda merchant, until: {"days": 30, "payments": 400, "frauds": 6, "rate": 0.015},
        models=Desk(report),
        health=Health(),
        data_docs=docs,
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


def test_an_analyst_sees_no_promote_button_and_a_direct_promotion_is_refused_and_audited(console) -> None:
    client, _, audit = console
    log_in(client, "ana")
    page = client.get("/models").text
    assert "Promote" not in page and "Roll back" not in page and "<td>3</td>" in page
    refused = client.post("/models/3/promote", data={"csrf": csrf_of(page), "confirm": "yes"})
    assert refused.status_code == 403
    assert [e["action"] for e in audit.entries()] == ["login", "refused:/models/3/promote"]
    desk = client.get("/models").text  # version 2 is still the champion
    assert desk.count('class="highlight"') == 1 and desk.index("<td>2</td>") < desk.index("<td>champion</td>")


def test_an_admins_confirmed_promotion_changes_the_champion_and_is_audited_and_rollback_restores_it(console) -> None:
    client, _, audit = console
    log_in(client, "root")
    page = client.get("/models").text
    assert page.count(">Promote<") == 2  # every version but the champion
    token = csrf_of(page)
    assert client.post("/models/3/promote", data={"csrf": token}).status_code == 422  # not confirmed
    assert client.post("/models/3/promote", data={"csrf": token, "confirm": "yes"}).status_code == 303
    assert "promoted by root" in client.get("/models").text
    assert client.post("/models/rollback", data={"csrf": token, "confirm": "yes"}).status_code == 303
    actions = [(e["action"], e["model_version"]) for e in audit.entries()]
    assert actions == [("login", None), ("promote", 3), ("rollback", 2)]


def test_the_health_page_shows_what_it_can_read_and_says_what_it_cannot(console) -> None:
    client, _, _ = console
    assert client.get("/data-docs/index.html").status_code == 303  # behind the login too
    log_in(client)
    page = client.get("/health").text
    assert "silver_transactions" in page and "all 1 streaming queries healthy" in page
    assert "42 alerts in the last 15 minutes: p50 1,200 ms, p99 4,100 ms" in page
    assert "Not readable now: retraining: RuntimeError" in page and 'href="/data-docs/index.html"' in page
    assert client.get("/data-docs/index.html").text == "<h1>Data Docs</h1>"
    assert client.get("/data-docs/../secret.txt").status_code == 404
    assert client.get("/data-docs/%2e%2e/secret.txt").status_code == 404


def test_a_case_shows_the_merchants_fraud_rate_and_still_opens_when_a_lookup_fails(console) -> None:
    client, _, _ = console
    log_in(client)
    page = client.get("/alerts/a1").text
    assert "6 known frauds in 400 payments over the 30 days to the payment (1.50%)" in page

    def broken(_user):
        raise ConnectionError("the catalog is down")

    client.app.state.services.history = broken
    page = client.get("/alerts/a1").text
    assert "Not readable now: the user&#39;s payments could not be read (ConnectionError)" in page
    assert "Confirm fraud" in page and "1.50%" in page


def test_the_models_page_shows_live_precision_and_the_champions_report_behind_the_login(console) -> None:
    client, _, _ = console
    assert client.get("/models/2/report/index.html").status_code == 303  # no session: the login page
    log_in(client)
    page = client.get("/models").text
    assert '<td class="num live-precision">0.750</td>' in page  # 30 of version 2's 40 matured alerts
    assert "before 2026-11-24 00:00 UTC" in page and 'src="/models/2/report/roc.png"' in page
    assert "Training report" in client.get("/models/2/report/index.html").text
    assert client.get("/models/2/report/roc.png").content == b"\x89PNG"
    assert client.get("/models/3/report/index.html").status_code == 404  # no report
    assert client.get("/models/2/report/..%2F..%2Fsecret.txt").status_code == 404  # never outside it
