"""Helpers shared by test modules (test modules never import each other)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

#: The checkout under test (the folder holding conf/, jobs/ and lakehouse/).
PROJECT_DIR = Path(__file__).resolve().parent.parent


def still_running(process: subprocess.Popen, name: str) -> Callable[[], None]:
    """A ``check`` for :func:`lakehouse.platform.waits.wait_until`: give up as soon as the job died."""

    def check() -> None:
        if process.poll() is not None:
            raise AssertionError(f"{name} exited early ({process.returncode})")

    return check
