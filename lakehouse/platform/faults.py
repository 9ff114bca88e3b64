"""Deterministic fault injection: kill a job's whole process tree at a named step, so a test can
show what a crash at exactly that point leaves behind (``FRAUDLAKE_FAULT=<step>``).

The job arms it (:func:`arm`) before it starts Spark: the variable and the job's process group
then reach the JVM and the Python workers it forks, and whichever process reaches the step first
sends SIGKILL to the job's group (driver and JVM) and to its own (PySpark's worker daemon keeps
its workers in a group of their own), as a power cut would. Nothing is flushed
or closed. Unset, :func:`reached` is one dictionary lookup.

The steps are named where they are reached (the scorer's: ``after_state``, ``after_alerts``,
``before_commit``, ``after_table``; the import's ``import_after_bronze``; the alerts tail's
``tail_after_outputs`` and ``tail_before_commit``; ingest's ``silver_<stream>_after_table``); an unknown name never
fires, so :func:`arm` refuses it.

``FRAUDLAKE_FAULT_MODE=raise`` makes the step raise :class:`InjectedFault` instead, for code that
runs inside a test's own process (an import through the Python API, which shares the test's
Spark and catalog): the work stops at the same point, and nothing after it runs.

``FRAUDLAKE_FAULT_POISON`` makes records poison (:func:`poisoned`), for the poison-pill guard.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from typing import TYPE_CHECKING

from lakehouse.errors import FraudlakeError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

FAULT_ENV = "FRAUDLAKE_FAULT"
GROUP_ENV = "FRAUDLAKE_FAULT_GROUP"
#: Optional: a file that gets one line per kill (a worker's stderr may be lost with its JVM).
LOG_ENV = "FRAUDLAKE_FAULT_LOG"
#: ``kill`` (the default: the job's process group gets SIGKILL) or ``raise`` (:class:`InjectedFault`).
MODE_ENV = "FRAUDLAKE_FAULT_MODE"
log = logging.getLogger(__name__)


class InjectedFault(BaseException):
    """Raised at the named step in ``raise`` mode: a crash, not an error, so no ``except Exception``
    on the way up catches it."""


def arm(known: tuple[str, ...]) -> str | None:
    """Check ``FRAUDLAKE_FAULT`` against the job's steps and record the process group to kill."""
    step = os.environ.get(FAULT_ENV)
    if not step:
        return None
    if step not in known:
        raise FraudlakeError(f"{FAULT_ENV}={step!r} is not a step of this job; its steps: {', '.join(known)}")
    os.environ[GROUP_ENV] = str(os.getpgrp())
    log.warning("fault injection armed: this job kills itself at step %r", step)
    return step


def reached(step: str) -> None:
    """Kill the job's process group here when ``FRAUDLAKE_FAULT`` names this step (or raise, see above)."""
    if os.environ.get(FAULT_ENV) != step:
        return
    if os.environ.get(MODE_ENV) == "raise":
        raise InjectedFault(f"fraudlake fault injection: stopped at step {step!r}")
    if GROUP_ENV not in os.environ:
        return
    message = f"fraudlake fault injection: killing the job at step {step!r}"
    print(message, file=sys.stderr, flush=True)
    if os.environ.get(LOG_ENV):
        with open(os.environ[LOG_ENV], "a") as log_file:
            log_file.write(message + "\n")
    job = int(os.environ[GROUP_ENV])
    os.killpg(job, signal.SIGKILL)
    if os.getpgrp() != job:  # a Python worker: PySpark's daemon keeps its workers in a group of their own
        os.killpg(os.getpgrp(), signal.SIGKILL)


#: ``FRAUDLAKE_FAULT_POISON=<text>``: a record whose raw value contains the text makes its
#: micro-batch fail in silver's transforms, and a transaction whose id contains it makes the
#: scorer's step fail, as a record no validation rule foresaw would.
POISON_ENV = "FRAUDLAKE_FAULT_POISON"


def poison_marker() -> str | None:
    """The scorer's poison marker, read in the driver (its tasks get it from the processor)."""
    return os.environ.get(POISON_ENV) or None


def refuse_poison(transaction_ids, marker: str | None) -> None:
    """Raise when one of ``transaction_ids`` (strings) contains ``marker`` (see :data:`POISON_ENV`)."""
    if marker and any(marker in str(t) for t in transaction_ids):
        raise ValueError(f"fraudlake fault injection: a poison record ({POISON_ENV})")


def poisoned(bronze: DataFrame) -> DataFrame:
    """``bronze`` as the silver step reads it: unchanged, unless ``FRAUDLAKE_FAULT_POISON`` is set."""
    marker = os.environ.get(POISON_ENV)
    if not marker:
        return bronze
    from pyspark.sql import functions as F

    value = F.col("value")
    failing = F.raise_error(F.lit(f"fraudlake fault injection: a poison record ({POISON_ENV})"))
    return bronze.withColumn("value", F.when(value.contains(marker), failing).otherwise(value))
