"""The console's web application (FastAPI, server-rendered Jinja2 pages, a few lines of script for
the live queue). Every page needs a session (a signed cookie, ``console.session_hours`` long);
every form carries the session's CSRF token, and a POST without it is refused. State changes are
audited. Nothing here reads a secret into a page or a log line."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import FastAPI, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.middleware.sessions import SessionMiddleware

from lakehouse.console.accounts import Account, authenticate
from lakehouse.console.audit import AuditTrail
from lakehouse.console.decisions import OUTCOMES, Decider
from lakehouse.console.queue import AlertQueue, Filters
from lakehouse.errors import FraudlakeError

TEMPLATES = Path(__file__).parent / "templates"
SESSION_COOKIE = "fraudlake_console"


@dataclass
class Services:
    """What the pages read and act through (the product's own modules, built by ``serve``)."""

    accounts: dict[str, Account]
    queue: AlertQueue
    decide: Decider
    audit: AuditTrail
    history: Callable[[str], list[dict]] | None = None  # a user's recent payments from silver
    merchant: Callable[[str, date], dict] | None = None  # a merchant's recent fraud rate
    models: Any = None  # versions(), history(), live(), report(version), promote(version, actor), rollback()
    health: Any = None  # streams(), latency(), retraining(): PipelineHealth
    data_docs: Path | None = None  # the quality gates' Data Docs site
    page_size: int = 50


class LoginRequired(Exception):
    def __init__(self, path: str) -> None:
        self.path = path


def create_app(services: Services, *, secret_key: str, session_hours: float) -> FastAPI:
    app = FastAPI(title="Fraudlake console", docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(
        SessionMiddleware,
        secret_key=secret_key,
        session_cookie=SESSION_COOKIE,
        max_age=int(session_hours * 3600),
        same_site="strict",
    )
    app.state.services = services  # (tests swap a source to show how a page copes without it)
    templates = Jinja2Templates(directory=str(TEMPLATES))
    templates.env.globals["query_string"] = lambda query, page: urlencode({**query, "page": page})

    @app.exception_handler(LoginRequired)
    async def to_login(_request: Request, exc: LoginRequired) -> Response:
        return RedirectResponse(f"/login?next={quote(exc.path)}", status_code=303)

    def csrf_token(request: Request) -> str:
        token = request.session.get("csrf")
        if not token:
            token = request.session["csrf"] = secrets.token_urlsafe(32)
        return token

    def check_csrf(request: Request, token: str) -> None:
        expected = request.session.get("csrf")
        if not expected or not token or not secrets.compare_digest(expected, token):
            raise HTTPException(403, "this form is out of date or forged (no valid CSRF token): reload the page")

    def user(request: Request) -> Account:
        account = services.accounts.get(request.session.get("user", ""))
        if account is None:
            request.session.pop("user", None)
            raise LoginRequired(request.url.path)
        return account

    def render(request: Request, name: str, account: Account | None, **context: Any) -> HTMLResponse:
        return templates.TemplateResponse(request, name, {"user": account, "csrf": csrf_token(request), **context})

    @app.get("/login", response_class=HTMLResponse)
    def login_page(request: Request, next: str = "/") -> HTMLResponse:
        return render(request, "login.html", None, next=safe_next(next), error=None)

    @app.post("/login")
    def login(
        request: Request,
        name: str = Form(...),
        password: str = Form(...),
        csrf: str = Form(""),
        next: str = Form("/"),
    ) -> Response:
        check_csrf(request, csrf)
        account = authenticate(services.accounts, name, password)
        if account is None:
            response = render(request, "login.html", None, next=safe_next(next), error="Wrong name or password.")
            response.status_code = 401
            return response
        request.session.clear()  # a new session (and CSRF token) at login
        request.session.update({"user": account.name, "csrf": secrets.token_urlsafe(32), "since": time.time()})
        services.audit({"actor": account.name, "action": "login"})
        return RedirectResponse(safe_next(next), status_code=303)

    @app.post("/logout")
    def logout(request: Request, csrf: str = Form("")) -> Response:
        check_csrf(request, csrf)
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    def filters_of(request: Request) -> tuple[Filters, int]:
        q = request.query_params
        decided = {"yes": True, "no": False}.get(q.get("decided", ""))
        filters = Filters(
            model_version=int(q["model"]) if q.get("model", "").isdigit() else None,
            min_amount=number(q.get("min_amount")),
            max_amount=number(q.get("max_amount")),
            max_age_s=number(q.get("max_age_min"), scale=60),
            decided=decided,
        )
        page = int(q["page"]) if q.get("page", "").isdigit() else 1
        return filters, max(page, 1)

    @app.get("/", response_class=HTMLResponse)
    def queue_page(request: Request) -> HTMLResponse:
        account = user(request)
        filters, page = filters_of(request)
        cases, total = services.queue.page(filters, (page - 1) * services.page_size, services.page_size)
        pages = max(1, -(-total // services.page_size))
        return render(
            request,
            "queue.html",
            account,
            cases=cases,
            total=total,
            page=page,
            pages=pages,
            query=dict(request.query_params),
            changes=services.queue.changes,
        )

    @app.get("/changes")
    def changes(request: Request) -> JSONResponse:
        """How many changes the queue has seen: the queue page reloads its rows when it grows."""
        user(request)
        return JSONResponse({"changes": services.queue.changes})

    @app.get("/alerts/{alert_id}", response_class=HTMLResponse)
    def case_page(request: Request, alert_id: str) -> HTMLResponse:
        account = user(request)
        case = services.queue.get(alert_id)
        if case is None:
            raise HTTPException(404, f"no alert {alert_id} in the queue")
        user_id = case.alert.get("user_id", "")
        lookups: dict[str, Any] = {"history": [], "merchant": None}
        errors: list[str] = []  # a lookup that fails leaves the rest of the case to work on
        wanted = {
            "history": (services.history, "the user's payments", lambda look: look(user_id)),
            "merchant": (
                services.merchant,
                "the merchant's fraud rate",
                lambda look: look(case.alert.get("merchant_id", ""), event_date(case.alert)),
            ),
        }
        for name, (look, what, call) in wanted.items():
            if look is None:
                continue
            try:
                lookups[name] = call(look)
            except Exception as exc:
                errors.append(f"{what} could not be read ({type(exc).__name__})")
        return render(
            request,
            "case.html",
            account,
            case=case,
            others=services.queue.of_user(user_id, alert_id),
            lookup_errors=errors,
            **lookups,
            audit=services.audit.entries(alert_id),
            outcomes=OUTCOMES,
        )

    @app.post("/alerts/{alert_id}/decision")
    def decide(
        request: Request,
        alert_id: str,
        outcome: str = Form(...),
        note: str = Form(""),
        version: int = Form(...),
        csrf: str = Form(""),
    ) -> Response:
        account = user(request)
        check_csrf(request, csrf)
        if outcome not in OUTCOMES:
            raise HTTPException(422, f"outcome must be one of {', '.join(OUTCOMES)}")
        try:
            decision, _made = services.queue.decide(alert_id, version, services.decide(outcome, account.name, note))
        except FraudlakeError as exc:
            raise HTTPException(503, f"the decision was not recorded: {exc}; try again") from None
        if decision is None:
            raise HTTPException(404, f"no alert {alert_id} in the queue")
        return RedirectResponse(f"/alerts/{alert_id}", status_code=303)

    def admin(request: Request) -> Account:
        account = user(request)
        if not account.is_admin:
            services.audit({"actor": account.name, "action": f"refused:{request.url.path}"})
            raise HTTPException(403, "only an admin may do this")
        return account

    @app.get("/models", response_class=HTMLResponse)
    def models_page(request: Request) -> HTMLResponse:
        account = user(request)
        if services.models is None:
            raise HTTPException(404, "no model registry is configured for this console")
        versions = sorted(services.models.versions(), key=lambda v: -v.version)
        parts, errors = readable(services.models, ("history", "live"))
        champion = next((v.version for v in versions if v.champion), None)
        return render(request, "models.html", account, versions=versions, champion=champion, errors=errors, **parts)

    @app.get("/models/{version}/report/{path:path}")
    def model_report(request: Request, version: int, path: str) -> Response:
        """A version's training report (its page and plots), from the registry's artifacts."""
        user(request)
        folder = services.models.report(version) if services.models is not None else None
        if folder is None:
            raise HTTPException(404, f"model version {version} has no training report")
        return file_in(folder, path, "no such file in the training report")

    def model_action(request: Request, account: Account, action: str, work: Callable[[], object]) -> Response:
        from lakehouse.ml.registry import RegistryError

        try:
            outcome = work()
        except RegistryError as exc:
            raise HTTPException(409, str(exc)) from None
        services.audit({"actor": account.name, "action": action, "model_version": outcome})
        return RedirectResponse("/models", status_code=303)

    @app.post("/models/{version}/promote")
    def promote(request: Request, version: int, csrf: str = Form(""), confirm: str = Form("")) -> Response:
        account = admin(request)
        check_csrf(request, csrf)
        if confirm != "yes":
            raise HTTPException(422, "a promotion must be confirmed")
        return model_action(
            request, account, "promote", lambda: services.models.promote(version, account.name) or version
        )

    @app.post("/models/rollback")
    def rollback(request: Request, csrf: str = Form(""), confirm: str = Form("")) -> Response:
        account = admin(request)
        check_csrf(request, csrf)
        if confirm != "yes":
            raise HTTPException(422, "a rollback must be confirmed")
        return model_action(request, account, "rollback", services.models.rollback)

    @app.get("/health", response_class=HTMLResponse)
    def health_page(request: Request) -> HTMLResponse:
        account = user(request)
        if services.health is None:
            raise HTTPException(404, "no pipeline health source is configured for this console")
        parts, errors = readable(services.health, ("streams", "latency", "retraining"))
        docs = services.data_docs is not None and (services.data_docs / "index.html").is_file()
        return render(request, "health.html", account, errors=errors, data_docs=docs, **parts)

    @app.get("/data-docs/{path:path}")
    def data_docs(request: Request, path: str) -> Response:
        """The Data Docs site, behind the same login (a static mount would serve it to anyone)."""
        user(request)
        if services.data_docs is None:
            raise HTTPException(404, "no Data Docs")
        return file_in(services.data_docs, path, "no such page in the Data Docs")

    return app


def readable(source: Any, names: tuple[str, ...]) -> tuple[dict[str, Any], list[str]]:
    """Each part ``source.<name>()`` of a page, or None and the reason it could not be read: one
    part that cannot be read must not hide the others."""
    parts: dict[str, Any] = {}
    errors: list[str] = []
    for name in names:
        try:
            parts[name] = getattr(source, name)()
        except Exception as exc:
            parts[name] = None
            errors.append(f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    return parts, errors


def file_in(folder: Path, path: str, missing: str) -> Response:
    """A file below ``folder`` (``index.html`` for the folder itself), never one outside it."""
    from fastapi.responses import FileResponse

    root = folder.resolve()
    target = (root / (path or "index.html")).resolve()
    if not target.is_relative_to(root) or not target.is_file():
        raise HTTPException(404, missing)
    return FileResponse(target)


def event_date(alert: dict) -> date:
    """The payment's date (UTC) from the alert; today when it cannot be read."""
    try:
        return datetime.fromisoformat(str(alert.get("event_time", "")).replace("Z", "+00:00")).date()
    except ValueError:
        return datetime.now(UTC).date()


def safe_next(target: str) -> str:
    """Only a path of this site (no scheme, no host, no protocol-relative ``//``): no open redirect."""
    return target if target.startswith("/") and not target.startswith("//") else "/"


def number(text: str | None, scale: float = 1.0) -> float | None:
    try:
        return float(text) * scale if text not in (None, "") else None
    except ValueError:
        return None
