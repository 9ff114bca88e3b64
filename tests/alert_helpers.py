"""Alert test helpers: a complete sample alert, and a scripted real HTTP(S) server for webhooks."""

from __future__ import annotations

import http.server
import ssl
import threading
from typing import Any

from lakehouse.contract.alerts import example_alert


def sample_alert(n: int, **overrides: Any) -> dict[str, Any]:
    """A complete alert as the scorer writes it (transaction ``tx-<n>``)."""
    minute = f"2026-11-30T08:{n % 60:02d}"
    fields = {
        "user_id": f"user-{n % 3}",
        "merchant_id": f"merchant-{n}",
        "amount": 100.0 + n,
        "event_time": f"{minute}:03.120Z",
        "transaction_created_at": f"{minute}:03.250Z",
        "emitted_at": f"{minute}:05.004Z",
    }
    return example_alert(f"tx-{n}", **{**fields, **overrides})


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
