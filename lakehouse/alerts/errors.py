"""The alerts stage's failures: :class:`TailError` (the tail cannot run as asked) and
:class:`DeliveryError` (an output could not take an alert), and :func:`error_reason`, how an OS error is
worded inside their messages. Pure: no I/O.
"""

from __future__ import annotations

from lakehouse.errors import FraudlakeError


class TailError(FraudlakeError):
    """The tail cannot run as asked: missing topic, unusable output file or state file."""


class DeliveryError(TailError):
    """An output could not take an alert; its offset was not committed, so a restart redelivers it.

    ``permanent``: the output refused this alert itself (a webhook's 4xx), so trying again cannot help;
    the tail sets such an alert aside in its dead-letter file instead of stopping on it.
    """

    exit_code = 5

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


def error_reason(exc: BaseException) -> str:
    """The short reason of an OS error (``No space left on device``), else its message, else its type."""
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
