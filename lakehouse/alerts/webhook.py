"""The webhook output: :class:`WebhookOutput` POSTs each alert as JSON to a URL (``requests``) and
retries what may pass later (``tenacity``); :func:`redact_url` is the only form of that URL that may
appear in messages and logs.

:func:`redact_url` and the retry policy (:func:`_is_permanent`, :class:`_Backoff`) are pure;
:class:`WebhookOutput` does network I/O.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import ssl
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import requests
import requests.adapters
import requests.auth
import tenacity

from lakehouse.alerts.errors import DeliveryError, error_reason
from lakehouse.errors import ConfigError

log = logging.getLogger(__name__)

#: Cap of one webhook backoff wait, whatever the attempt number or Retry-After says.
MAX_BACKOFF_S = 30.0


def redact_url(url: str) -> str:
    """``scheme://host[:port]/…`` of a URL: what may appear in messages and logs.

    User info and query strings hold credentials, and so does the path of many webhooks (Slack,
    Discord, Teams put the token there), so only the origin is shown.
    """
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        port = ""
    path = "/…" if parts.path not in ("", "/") or parts.query else ""
    return f"{parts.scheme}://{host}{port}{path}"


class _Transient(Exception):
    """An attempt that failed in a way that may pass later: the only failure :class:`WebhookOutput` retries.

    ``reason`` is safe to show (no URL path or query); ``retry_after_s`` is the server's Retry-After.
    """

    def __init__(self, reason: str, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s


def _is_permanent(status: int) -> bool:
    """A non-2xx status that retrying cannot fix: redirects and 4xx other than 429 (Too Many Requests)."""
    return status != 429 and status < 500


class _Backoff(tenacity.wait.wait_base):
    """Wait ``backoff_s`` after the first failed attempt, doubling after each next one, or the server's
    Retry-After when that is longer; never more than :data:`MAX_BACKOFF_S`."""

    def __init__(self, backoff_s: float) -> None:
        self.exponential = tenacity.wait_exponential(multiplier=backoff_s, exp_base=2, max=MAX_BACKOFF_S)

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        wait = self.exponential(retry_state)
        failure = retry_state.outcome.exception() if retry_state.outcome is not None else None
        if isinstance(failure, _Transient) and failure.retry_after_s is not None:
            wait = max(wait, failure.retry_after_s)
        return min(wait, MAX_BACKOFF_S)


class _URLAuthorization(requests.auth.AuthBase):
    """The URL's user info as HTTP basic authentication (UTF-8), or no ``Authorization`` at all.

    Always set on the session: a request without auth makes requests look the host up in ~/.netrc,
    which would send credentials that the webhook URL does not hold.
    """

    def __init__(self, header: str | None) -> None:
        self.header = header

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if self.header is not None:
            request.headers["Authorization"] = self.header
        return request


class _SystemTrustAdapter(requests.adapters.HTTPAdapter):
    """Verify TLS against the operating system's CA store too, not only certifi's bundle.

    requests trusts certifi's bundle alone; a webhook on an internal host is often signed by a company
    CA that only the OS store holds (urllib, used before, trusted that store).
    """

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("ssl_context", ssl.create_default_context())
        super().init_poolmanager(*args, **kwargs)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        proxy_kwargs.setdefault("ssl_context", ssl.create_default_context())
        return super().proxy_manager_for(proxy, **proxy_kwargs)


class _RedactingFilter(logging.Filter):
    """Replaces the webhook's path and query in the HTTP client's own log records (urllib3 logs every
    request line at DEBUG): the token often sits there."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _redact(message, self.secrets)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def _client_loggers() -> list[logging.Logger]:
    """The loggers of requests and urllib3 (a filter on a parent logger does not see its children's records)."""
    names = [name for name in logging.Logger.manager.loggerDict if name.split(".")[0] in ("urllib3", "requests")]
    return [logger for name in names if isinstance(logger := logging.getLogger(name), logging.Logger)]


def _redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "/…")
    return text


def _innermost(exc: BaseException) -> BaseException:
    """The error at the bottom of a requests/urllib3 exception chain (refused, DNS, TLS, timed out)."""
    seen = {id(exc)}
    while True:
        nested = exc.__cause__ or exc.__context__ or next((a for a in exc.args if isinstance(a, BaseException)), None)
        if nested is None or id(nested) in seen:
            return exc
        seen.add(id(nested))
        exc = nested


class WebhookOutput:
    """POST each alert as JSON to a URL, retrying what may pass later.

    Connection errors, timeouts, 5xx and 429 are retried with exponential backoff (``backoff_s``,
    doubling, at most 30 s, or the server's Retry-After when longer, still at most 30 s); any other
    4xx and redirects are permanent. ``retries`` is the number of attempts in all, the first one
    included; ``timeout_s`` bounds the connection and each read of one attempt. User info in the URL
    (``https://user:token@host/...``) is sent as HTTP basic authentication. Each request carries the
    alert id as ``Idempotency-Key``, so the receiver can drop repeats too. ``sleep`` waits between
    attempts (tests pass a recorder). Until :meth:`close`, the URL's path and query are also redacted
    from the log records of requests and urllib3 (urllib3 logs each request line at DEBUG).
    """

    def __init__(
        self,
        url: str,
        retries: int = 5,
        backoff_s: float = 0.5,
        timeout_s: float = 10,
        *,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                f"webhook URL must be http(s)://host/...: got {redact_url(url) if parts.scheme else 'no scheme'}"
            )
        if retries < 1:
            raise ConfigError(f"webhook retries must be at least 1, got {retries}")
        self.display_url = redact_url(url)
        self.retries = retries
        self.backoff_s = backoff_s
        self.timeout_s = timeout_s
        netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        if parts.port:
            netloc += f":{parts.port}"
        # Without user info and fragment: those never go on the wire as part of the URL.
        self._url = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
        # What must not appear in a message or log: the path and query (tokens), as given and as
        # requests quotes them on the wire, longest first.
        try:
            sent = urllib.parse.urlsplit(requests.Request("POST", self._url).prepare().url or "")
        except requests.RequestException:
            raise ConfigError(f"webhook URL {self.display_url} is not a valid URL") from None
        forms: set[str] = set()
        for path, query in ((parts.path, parts.query), (sent.path, sent.query)):
            forms |= {urllib.parse.urlunsplit(("", "", path, query, "")), path, query}
        self._secrets = sorted(forms - {"", "/"}, key=len, reverse=True)
        self._log_filter = _RedactingFilter(self._secrets)
        for logger in _client_loggers():
            logger.addFilter(self._log_filter)
        authorization = None
        if parts.username is not None:
            user = urllib.parse.unquote(parts.username)
            password = urllib.parse.unquote(parts.password or "")
            authorization = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self._session = requests.Session()
        self._session.headers.clear()  # only ours, as before: no Accept-Encoding, no keep-alive advertising
        self._session.headers.update({"Content-Type": "application/json", "User-Agent": "fraudlake-alerts-tail"})
        self._session.auth = _URLAuthorization(authorization)
        self._session.mount("https://", _SystemTrustAdapter())
        self._retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(retries),
            wait=_Backoff(backoff_s),
            retry=tenacity.retry_if_exception_type(_Transient),
            before_sleep=self._log_retry,
            sleep=sleep,
            reraise=True,
        )
        self.attempts = 0  # requests sent, all alerts together

    def handle(self, alert: dict[str, Any]) -> None:
        body = json.dumps(alert, separators=(",", ":"), ensure_ascii=False).encode()
        alert_id = str(alert.get("alert_id", "?"))
        try:
            self._retrying(self._post, body, alert_id)
        except _Transient as exc:
            raise DeliveryError(
                f"webhook {self.display_url} failed for alert {alert_id} after {self.retries} attempt(s): {exc.reason}"
            ) from None

    def _post(self, body: bytes, alert_id: str) -> None:
        """One attempt: returns on 2xx, raises :class:`DeliveryError` when retrying cannot help, else
        :class:`_Transient`."""
        self.attempts += 1
        try:
            # Redirects are not followed: requests would turn a 301/302/303 into a GET without the alert.
            response = self._session.post(
                self._url,
                data=body,
                headers={"Idempotency-Key": alert_id},
                timeout=self.timeout_s,
                allow_redirects=False,
                stream=True,
            )
        except (OSError, http.client.HTTPException) as exc:  # requests' errors are OSErrors
            raise _Transient(self._failure_reason(exc)) from None
        with response:
            status = response.status_code
            if 200 <= status < 300:
                try:
                    response.content  # noqa: B018 (read to the end: a cut-off answer is a failed attempt)
                except (OSError, http.client.HTTPException) as exc:
                    raise _Transient(self._failure_reason(exc)) from None
                return
            last = f"HTTP {status} {response.reason}"
            if _is_permanent(status):
                kind = "redirected" if 300 <= status < 400 else "rejected"
                raise DeliveryError(
                    f"webhook {self.display_url} {kind} alert {alert_id}: {last} "
                    "(not retried: the request itself is refused)",
                    permanent=True,
                )
            retry_after = response.headers.get("Retry-After", "")
            raise _Transient(last, float(retry_after) if retry_after.isdigit() else None)

    def _failure_reason(self, exc: BaseException) -> str:
        """Why an attempt failed, without the URL's path and query: requests' messages quote them."""
        root = _innermost(exc)
        text = error_reason(root) if isinstance(root, OSError) else f"{type(root).__name__}: {root}"
        return _redact(text, self._secrets)

    def _log_retry(self, retry_state: tenacity.RetryCallState) -> None:
        failure = retry_state.outcome.exception() if retry_state.outcome is not None else None
        log.warning(
            "webhook %s: %s; attempt %d of %d again in %.1fs",
            self.display_url,
            failure.reason if isinstance(failure, _Transient) else failure,
            retry_state.attempt_number + 1,
            self.retries,
            retry_state.next_action.sleep if retry_state.next_action is not None else 0.0,
        )

    def close(self) -> None:
        self._session.close()
        for logger in _client_loggers():
            logger.removeFilter(self._log_filter)
