"""Where handled alerts go, apart from the webhook (:mod:`lakehouse.alerts.webhook`): the
:class:`AlertOutput` protocol every output follows, JSON lines on a stream (:class:`JsonLinesOutput`),
an appended file (:class:`FileOutput`), a live terminal table (:class:`TableOutput`), and
:func:`close_outputs`.

Every output does I/O (a stream, a file, the terminal); only the row and line formatting is pure.
"""

from __future__ import annotations

import collections
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from lakehouse.alerts.errors import DeliveryError, TailError, error_reason

if TYPE_CHECKING:
    from rich.console import Console


class AlertOutput(Protocol):
    """Where handled alerts go. ``handle`` raises (ideally :class:`DeliveryError`) when it cannot take
    one; ``flush`` (optional) makes what was handled durable and runs before every commit."""

    def handle(self, alert: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


def _json_line(alert: dict[str, Any]) -> str:
    return json.dumps(alert, separators=(",", ":"), ensure_ascii=False) + "\n"


class JsonLinesOutput:
    """One compact JSON object per line on a text stream (stdout: pipe it to ``jq``), flushed per alert."""

    def __init__(self, stream: IO[str], name: str = "stdout") -> None:
        self.stream = stream
        self.name = name
        self._broken = False

    def handle(self, alert: dict[str, Any]) -> None:
        try:
            self.stream.write(_json_line(alert))
            self.stream.flush()
        except BrokenPipeError:
            self._broken = True
            raise DeliveryError(f"{self.name} was closed by its reader (broken pipe)") from None

    def flush(self) -> None:
        if not self._broken:
            self.stream.flush()

    def close(self) -> None:
        if self._broken:
            # Python flushes stdout again at exit; point it at /dev/null so that a reader that left
            # (`| head`) ends with our one-line error rather than a BrokenPipeError trace.
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, self.stream.fileno())
            except (OSError, ValueError, AttributeError):
                pass
            return
        self.flush()


class FileOutput:
    """Append alerts as JSON lines to a file; flushed and fsynced before each commit."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 (closed in close())
            # A previous writer killed mid-line left a partial line: start ours on a fresh line.
            if self._file.tell() > 0:
                self._file.seek(self._file.tell() - 1)
                if self._file.read(1) != "\n":
                    self._file.write("\n")
        except OSError as exc:
            raise TailError(f"cannot open the alert file {self.path} for appending: {error_reason(exc)}") from None

    def handle(self, alert: dict[str, Any]) -> None:
        try:
            self._file.write(_json_line(alert))
        except OSError as exc:
            raise DeliveryError(f"cannot write to the alert file {self.path}: {error_reason(exc)}") from None

    def flush(self) -> None:
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
        except OSError as exc:
            raise DeliveryError(f"cannot write to the alert file {self.path}: {error_reason(exc)}") from None

    def close(self) -> None:
        if not self._file.closed:
            try:
                self.flush()
            finally:
                self._file.close()


def _fmt(value: Any, spec: str) -> str:
    try:
        return format(value, spec)
    except (TypeError, ValueError):
        return "" if value is None else str(value)


class TableOutput:
    """A live-updating terminal table of the latest ``rows`` alerts, newest first."""

    def __init__(self, console: Console, rows: int = 20, title: str = "fraud alerts") -> None:
        from rich.live import Live

        self.console = console
        self.title = title
        self.latest: collections.deque[dict[str, Any]] = collections.deque(maxlen=rows)
        self.count = 0
        self._live = Live(self._render(), console=console, refresh_per_second=4, transient=False)
        self._live.start()

    def _render(self):
        from rich.table import Table

        caption = (
            f"{self.count:,} alert(s) so far, latest {len(self.latest)} shown" if self.count else "waiting for alerts…"
        )
        table = Table(title=self.title, caption=caption, expand=True)
        table.add_column("time (UTC)", no_wrap=True)
        table.add_column("user", no_wrap=True, overflow="ellipsis", max_width=14)
        table.add_column("merchant", no_wrap=True, overflow="ellipsis", max_width=14)
        table.add_column("amount", justify="right", no_wrap=True)
        table.add_column("score", justify="right", no_wrap=True)
        table.add_column("model", justify="right", no_wrap=True)
        table.add_column("top reason", overflow="ellipsis", no_wrap=True, ratio=1)
        for alert in reversed(self.latest):
            reasons = alert.get("reasons") or []
            first = reasons[0] if isinstance(reasons, list) and reasons else {}
            reason = first.get("text") or first.get("feature", "") if isinstance(first, dict) else str(first)
            when = str(alert.get("event_time") or "").replace("T", " ").rstrip("Z")[:19]
            table.add_row(
                when,
                str(alert.get("user_id", "")),
                str(alert.get("merchant_id", "")),
                f"{_fmt(alert.get('amount'), ',.2f')} {alert.get('currency', '')}",
                f"[bold red]{_fmt(alert.get('score'), '.3f')}[/]",
                f"v{alert.get('model_version', '?')}",
                reason,
            )
        return table

    def handle(self, alert: dict[str, Any]) -> None:
        self.latest.append(alert)
        self.count += 1
        self._live.update(self._render())

    def close(self) -> None:
        self._live.stop()


def close_outputs(outputs: Iterable[AlertOutput]) -> None:
    """Close every output, even when one fails to (the first error is re-raised)."""
    error: BaseException | None = None
    for output in outputs:
        try:
            output.close()
        except BaseException as exc:
            error = error or exc
    if error is not None:
        raise error
