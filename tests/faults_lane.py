"""The faults lane: long fault runs (every kill point of a job in turn, crashes during recovery, a
cluster worker lost under both streaming jobs) that belong in a command writing its report to
``docs/``, not in the suite, which keeps one focused test per guarantee. ``make faults`` runs
``pytest --faults``: only the tests marked ``faults``, on the same real broker, Spark and jobs as
the suite, and the outcome of each, with what it checks and how long it took, goes to
``docs/faults.md``. Without ``--faults`` (``make test``) they are deselected.
"""

from __future__ import annotations

import inspect
import time
from datetime import UTC, datetime

import pytest

from lakehouse.benchmarks.report import machine_description
from tests.helpers import PROJECT_DIR

REPORT = PROJECT_DIR / "docs" / "faults.md"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--faults",
        action="store_true",
        help="run only the faults lane (tests marked `faults`) and write docs/faults.md",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--faults"):
        config.pluginmanager.register(FaultsReport(config), "fraudlake-faults-report")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep the faults lane's tests with ``--faults``, every other test without it."""
    wanted = bool(config.getoption("--faults"))
    kept = [item for item in items if (item.get_closest_marker("faults") is not None) == wanted]
    dropped = [item for item in items if item not in kept]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


class FaultsReport:
    """Collects each faults-lane test's outcome and writes the report when the session ends."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.started = time.monotonic()
        self.rows: dict[str, dict[str, object]] = {}

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        row = self.rows.setdefault(report.nodeid, {"outcome": "passed", "seconds": 0.0, "error": ""})
        row["seconds"] = float(row["seconds"]) + report.duration
        if report.failed:
            row["outcome"] = "failed" if report.when == "call" else f"error in {report.when}"
            row["error"] = str(report.longrepr).strip().splitlines()[-1][:300] if report.longrepr else ""
        elif report.skipped and report.when != "teardown":
            row["outcome"] = "skipped"

    @pytest.hookimpl
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.docs = {item.nodeid: inspect.getdoc(getattr(item, "function", None)) or "" for item in session.items}

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        if not self.rows:
            return
        lines = [
            "# Fault sweeps",
            "",
            f"Written by `make faults` (`pytest --faults`) on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
            f"{time.monotonic() - self.started:,.0f} s in all.",
            f"Machine: {machine_description()}; the suite's real broker, Spark and jobs.",
            "",
            "The suite (`make test`) keeps one focused test per guarantee: one kill point per job, and the",
            "ingest job alone on the cluster when a worker is lost. These runs are the long versions: each",
            "job killed at every step in turn (each restart killed at the next), and the worker lost with",
            "the scorer job running beside ingest. Each checks that nothing is lost or written twice.",
            "",
            "| test | outcome | seconds |",
            "|---|---|---:|",
        ]
        for nodeid, row in self.rows.items():
            lines.append(f"| `{nodeid}` | {row['outcome']} | {float(row['seconds']):,.0f} |")
        for nodeid, row in self.rows.items():
            lines += ["", f"## `{nodeid.split('::')[-1]}`", "", self.docs.get(nodeid, "")]
            if row["error"]:
                lines += ["", f"Failed: `{row['error']}`"]
        REPORT.write_text("\n".join(lines) + "\n")
