"""The webhook output: :class:`WebhookOutput` POSTs each alert as JSON to a URL and retries what may
pass later; :func:`redact_url` is the only form of that URL that may appear in messages and logs.

:func:`redact_url` is pure; :class:`WebhookOutput` does network I/O.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

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


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # urllib turns a redirected POST into a GET without body: the alert would silently vanish.
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class WebhookOutput:
    """POST each alert as JSON to a URL, retrying what may pass later.

    Connection errors, timeouts, 5xx and 429 are retried with exponential backoff (``backoff_s``,
    doubling, at most 30 s, or the server's Retry-After when longer); any other 4xx and redirects
    are permanent. ``retries`` is the number of attempts in all, the first one included. User info
    in the URL (``https://user:token@host/...``) is sent as HTTP basic authentication. Each request
    carries the alert id as ``Idempotency-Key``, so the receiver can drop repeats too.
    """

    def __init__(self, url: str, retries: int = 5, backoff_s: float = 0.5, timeout_s: float = 10) -> None:
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
        self._url = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
        self._headers = {"Content-Type": "application/json", "User-Agent": "fraudlake-alerts-tail"}
        if parts.username is not None:
            user = urllib.parse.unquote(parts.username)
            password = urllib.parse.unquote(parts.password or "")
            self._headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        self._opener = urllib.request.build_opener(_NoRedirect)
        self.attempts = 0  # requests sent, all alerts together

    def handle(self, alert: dict[str, Any]) -> None:
        body = json.dumps(alert, separators=(",", ":"), ensure_ascii=False).encode()
        alert_id = alert.get("alert_id", "?")
        last = ""
        for attempt in range(1, self.retries + 1):
            request = urllib.request.Request(
                self._url, data=body, method="POST", headers={**self._headers, "Idempotency-Key": str(alert_id)}
            )
            self.attempts += 1
            wait = self.backoff_s * 2 ** (attempt - 1)
            try:
                with self._opener.open(request, timeout=self.timeout_s) as response:
                    response.read()
                return
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code} {exc.reason}"
                retry_after = exc.headers.get("Retry-After", "") if exc.headers else ""
                exc.close()
                if exc.code != 429 and exc.code < 500:
                    kind = "redirected" if 300 <= exc.code < 400 else "rejected"
                    raise DeliveryError(
                        f"webhook {self.display_url} {kind} alert {alert_id}: {last} "
                        "(not retried: the request itself is refused)"
                    ) from None
                if retry_after.isdigit():
                    wait = max(wait, float(retry_after))
            except (urllib.error.URLError, OSError) as exc:  # refused, reset, DNS, TLS, timeout
                reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
                last = error_reason(reason) if isinstance(reason, BaseException) else str(reason)
            except Exception as exc:  # http.client.HTTPException: a garbled response
                last = f"{type(exc).__name__}: {exc}"
            if attempt < self.retries:
                wait = min(wait, MAX_BACKOFF_S)
                log.warning(
                    "webhook %s: %s; attempt %d of %d again in %.1fs",
                    self.display_url,
                    last,
                    attempt + 1,
                    self.retries,
                    wait,
                )
                time.sleep(wait)
        raise DeliveryError(
            f"webhook {self.display_url} failed for alert {alert_id} after {self.retries} attempt(s): {last}"
        )

    def close(self) -> None:
        pass
