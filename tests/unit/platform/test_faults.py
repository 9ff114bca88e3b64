"""Fault injection refuses a step the job does not have (it would never fire), and does nothing
unless armed for the step reached."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from lakehouse.errors import FraudlakeError
from lakehouse.platform import faults


def test_an_unknown_step_is_refused_by_name(monkeypatch) -> None:
    monkeypatch.setenv(faults.FAULT_ENV, "after_lunch")
    with pytest.raises(FraudlakeError, match="'after_lunch' is not a step of this job; its steps: a, b"):
        faults.arm(("a", "b"))


def test_the_armed_step_kills_the_process_group_and_no_other_step_does(tmp_path) -> None:
    script = (
        "from lakehouse.platform import faults\n"
        "faults.arm(('one', 'two'))\n"
        "faults.reached('one')\n"
        "print('passed one', flush=True)\n"
        "faults.reached('two')\n"
        "print('passed two', flush=True)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, faults.FAULT_ENV: "two"},
        capture_output=True,
        text=True,
        timeout=60,
        start_new_session=True,  # its own process group: the one it kills
    )
    assert done.returncode == -9 and done.stdout == "passed one\n"
    assert "killing the job at step 'two'" in done.stderr
