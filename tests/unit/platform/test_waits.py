"""The one deadline wait: returns what the condition found, gives up early, fails clearly."""

from __future__ import annotations

import itertools

import pytest

from lakehouse.platform.waits import Deadline, wait_until


def test_wait_until_returns_the_first_truthy_result() -> None:
    polls = itertools.count()

    assert wait_until(lambda: next(polls) >= 3 and "ready", timeout_s=5, what="ready", poll_s=0.001) == "ready"


def test_wait_until_fails_at_the_deadline_naming_what_was_not_seen() -> None:
    with pytest.raises(TimeoutError, match=r"the answer not seen within 0\.05s"):
        wait_until(lambda: None, timeout_s=0.05, what="the answer", poll_s=0.01)


def test_wait_until_raises_the_callers_error_at_the_deadline() -> None:
    with pytest.raises(RuntimeError, match="broker down"):
        wait_until(lambda: False, timeout_s=0.01, what="x", on_timeout=lambda: RuntimeError("broker down"))


def test_wait_until_gives_up_early_when_the_check_raises() -> None:
    def died() -> None:
        raise AssertionError("the job exited early (1)")

    deadline = Deadline(60)
    with pytest.raises(AssertionError, match="exited early"):
        wait_until(lambda: False, timeout_s=60, what="x", check=died)
    assert not deadline.expired()
