"""A fraudlake command run as an Airflow task, in the task's process: its output and exit code are
the command's own, a non-zero exit fails the task, and the host's logging is left as it was."""

from __future__ import annotations

import logging

import pytest


def test_a_hosted_command_prints_its_output_and_leaves_the_hosts_logging(airflow_environ, capsys) -> None:
    from lakehouse.cli.hosted import run_fraudlake

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    run_fraudlake(["--env", "test", "config", "show"])
    assert "kafka" in capsys.readouterr().out
    assert (root.handlers, root.level) == (handlers, level)


def test_a_hosted_command_that_exits_non_zero_fails_the_task_naming_the_command(airflow_environ, capsys) -> None:
    from lakehouse.cli.hosted import FraudlakeCommandFailed, run_fraudlake

    with pytest.raises(FraudlakeCommandFailed, match=r"fraudlake --env no-such-env config show exited with code [1-9]"):
        run_fraudlake(["--env", "no-such-env", "config", "show"])
    assert "no-such-env" in capsys.readouterr().err
