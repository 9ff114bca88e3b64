"""What every entry point shares: logging set-up and turning expected errors into one line."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path

from lakehouse.errors import FraudlakeError

# Third-party loggers that narrate every connection attempt at INFO.
NOISY_LOGGERS = ("kafka", "librdkafka", "py4j", "urllib3", "faker")


#: Files and folders an entry point creates are its owner's alone (0600 and 0700): the warehouse
#: holds personal data, the MLflow database and Airflow's generated password are secrets.
PRIVATE_UMASK = 0o077


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (readers see the old file or the new one), readable by
    its owner only from the first byte: for passwords, keys and account files."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
        out.write(text)
    os.chmod(temporary, 0o600)  # a temporary left by a crash keeps its own mode through O_CREAT
    os.replace(temporary, path)


def private_files() -> None:
    """Make every file and folder this process, and the processes it starts, creates private."""
    os.umask(PRIVATE_UMASK)


class SecretsFilter(logging.Filter):
    """Masks the secrets given in the environment (``FRAUDLAKE_*PASSWORD*``, ``*SECRET*``) in
    every record that reaches a handler, at any level: kafka-python's DEBUG output shows SASL
    exchanges, and a library may put a connection string in an error."""

    MASK = "*****"

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        super().__init__()
        env = os.environ if environ is None else environ
        self.secrets = sorted(
            {v for k, v in env.items() if k.startswith("FRAUDLAKE_") and ("PASSWORD" in k or "SECRET" in k) and v},
            key=len,
            reverse=True,
        )

    def filter(self, record: logging.LogRecord) -> bool:
        if self.secrets:
            message = record.getMessage()
            masked = message
            for secret in self.secrets:
                masked = masked.replace(secret, self.MASK)
            if masked != message:
                record.msg, record.args = masked, None
        return True


def configure_logging(verbose: bool = False, *, hosted: bool = False) -> None:
    """Configure logging once, at the entry point (modules only call ``logging.getLogger``).

    ``hosted``: the entry point runs inside a process that owns logging (an Airflow task runs the
    command in its own process): its handlers stay, only the noisy loggers are quietened."""
    if not hosted:
        logging.basicConfig(
            level=logging.DEBUG if verbose else logging.INFO,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
            datefmt="%H:%M:%S",
            stream=sys.stderr,
            force=True,
        )
    secrets = SecretsFilter()
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, SecretsFilter) for f in handler.filters):
            handler.addFilter(secrets)
    for name in NOISY_LOGGERS:
        # kafka-python logs every refused connection as ERROR while a broker starts; our own
        # messages say plainly when it is really unreachable.
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.CRITICAL)
    # Great Expectations narrates its own start-up at INFO; its warnings still show.
    logging.getLogger("great_expectations").setLevel(logging.INFO if verbose else logging.WARNING)


@contextlib.contextmanager
def exit_on_error() -> Iterator[None]:
    """Print a :class:`FraudlakeError` as one line on stderr and exit with its code; no stack trace."""
    try:
        yield
    except FraudlakeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(exc.exit_code) from None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None


def freeze_heap() -> None:
    """For a long-running server, once it is ready: collect, then move every object alive now (the
    imported libraries, the loaded model, the warmed caches) out of the reach of Python's cyclic
    garbage collector (``gc.freeze``), so a full collection scans only what came after. In the
    decision service under load, full collections of the whole heap took 76-93 ms each, a pause
    every request in flight waits out."""
    import gc

    gc.collect()
    gc.freeze()
