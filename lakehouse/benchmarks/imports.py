"""`fraudlake bench import`: ``fraudlake import`` of one simulated file against the same import by
an earlier release (the round's starting point, taken from git) and against Spark's own copy of
the same files into Delta (the floor for landing them), side by side in one run.

Each of the three runs as its own process, in turn, ``--runs`` times interleaved, each with a fresh
data folder and an embedded catalog of its own: every figure is a whole command's wall time,
Python, JVM and Spark start included, the same for all three. The earlier release runs its own
code and config, unpacked from git (``git archive``) as an upgrade would find it, with this
checkout's jars.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from lakehouse.benchmarks.report import Report
from lakehouse.errors import ConfigError
from lakehouse.platform.jobs import job_environ
from lakehouse.settings import Settings

#: The code base this round of work started from (2026-11-30), whose import the goal is set against.
BASELINE = "3c5cf6c52c158bf9a8ef0409036058cb81596ea7"
FILES = ("transactions", "users", "merchants")
FLOOR = "Spark: Parquet → Delta copy (the floor)"
THIS = "fraudlake import (this release)"
GOAL = 3.0  # this release at least 3x faster than the baseline


@dataclass
class ImportBench:
    transactions: int
    users: int
    days: int
    baseline: str
    seconds: dict[str, list[float]] = field(default_factory=dict)  # pipeline → each run's wall time

    def median(self, pipeline: str) -> float:
        return statistics.median(self.seconds[pipeline])

    @property
    def speedup(self) -> float:
        """The baseline's median time over this release's."""
        return self.median(baseline_label(self.baseline)) / self.median(THIS)


def baseline_label(ref: str) -> str:
    return f"fraudlake import ({ref[:7]}, the round's start)"


def copy_floor(batch: str, target: str, env: str) -> None:
    """The floor, run as ``python -c``: the batch's Parquet files copied into Delta tables by Spark
    alone (no validation, no bronze JSON, no catalog), with the settings of ``env``."""
    from lakehouse.platform.spark import build_spark
    from lakehouse.settings import load_settings

    spark = build_spark(load_settings(env))
    for name in FILES:
        spark.read.parquet(f"{batch}/{name}.parquet").write.format("delta").save(f"{target}/{name}")
    spark.stop()


def baseline_code(project_dir: Path, ref: str, folder: Path) -> Path:
    """The release ``ref``'s code and config unpacked from git into ``folder``."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", ref, "lakehouse", "jobs", "conf"], cwd=project_dir, capture_output=True
    )
    if archive.returncode != 0:
        raise ConfigError(
            f"--baseline {ref}: not found in the git history of {project_dir} "
            f"({archive.stderr.decode(errors='replace').strip()})"
        )
    with tempfile.TemporaryFile() as tar_file:
        tar_file.write(archive.stdout)
        tar_file.seek(0)
        with tarfile.open(fileobj=tar_file) as tar:
            tar.extractall(folder, filter="data")
    return folder


def _commands(
    settings: Settings, batch: Path, code: Path, baseline: str
) -> dict[str, tuple[list[str], Path, dict[str, str]]]:
    """Each pipeline's label → its command line, working folder and extra environment."""
    files = [arg for name in FILES for arg in (f"--{name}", str(batch / f"{name}.parquet"))]
    cli = "from lakehouse.cli import app; app()"  # both releases' CLI, whatever their entry point
    floor = (
        "import sys; from lakehouse.benchmarks.imports import copy_floor; "
        f"copy_floor({str(batch)!r}, sys.argv[1], {settings.env!r})"
    )
    earlier = {  # its own code and config, this checkout's jars
        "PYTHONPATH": str(code),
        "FRAUDLAKE_CONF_DIR": str(code / "conf"),
        "FRAUDLAKE_SPARK__JARS_DIR": str(settings.spark.jars_dir),
        "FRAUDLAKE_SPARK__CATALOG_SERVER__JARS_DIR": str(settings.spark.catalog_server.jars_dir),
        "FRAUDLAKE_KAFKA__BROKER__JARS_DIR": str(settings.kafka.broker.jars_dir),
    }
    here = settings.project_dir
    return {
        FLOOR: ([sys.executable, "-c", floor], here, {}),
        baseline_label(baseline): ([sys.executable, "-c", cli, "import", *files, "--name", "bench"], code, earlier),
        THIS: ([sys.executable, "-c", cli, "--env", settings.env, "import", *files, "--name", "bench"], here, {}),
    }


def bench_import(
    settings: Settings,
    *,
    transactions: int,
    users: int,
    days: int,
    runs: int,
    baseline: str = BASELINE,
    folder: Path,
    on_progress: Callable[[str], None] = print,
) -> ImportBench:
    """Simulate the file once (Parquet, as ``fraudlake simulate`` writes it), then run the three
    pipelines in turn, ``runs`` times; a failed run stops the benchmark with its output."""
    from lakehouse.benchmarks.training import bench_world
    from lakehouse.simulator.files import write_offline_batch
    from lakehouse.simulator.simulation import Simulation

    world = bench_world(settings, folder, simulator={"transactions": transactions, "users": users, "days": days})
    batch = folder / "batch"
    write_offline_batch(Simulation(world.simulator, date.today() - timedelta(days=days)), batch)
    code = baseline_code(settings.project_dir, baseline, folder / "baseline")
    bench = ImportBench(transactions, users, days, baseline)
    for run in range(1, runs + 1):
        for name, (command, cwd, extra) in _commands(settings, batch, code, baseline).items():
            data = folder / f"run-{run}"
            env = {
                **job_environ(),
                **extra,
                "FRAUDLAKE_PATHS__DATA_DIR": str(data),
                "FRAUDLAKE_SPARK__CATALOG": "derby",
            }
            target = [str(data / "floor")] if name == FLOOR else []
            began = time.perf_counter()
            done = subprocess.run([*command, *target], cwd=cwd, env=env, capture_output=True, text=True)
            seconds = time.perf_counter() - began
            shutil.rmtree(data, ignore_errors=True)
            if done.returncode != 0:
                raise RuntimeError(f"{name} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
            bench.seconds.setdefault(name, []).append(seconds)
            on_progress(f"run {run}: {name}: {seconds:,.1f} s")
    return bench


def import_report(bench: ImportBench, settings: Settings, machine: str | None = None) -> Report:
    """The page of ``fraudlake bench import``: each pipeline's runs and median, against the floor,
    and this release's speed-up over the baseline."""
    this, floor = bench.median(THIS), bench.median(FLOOR)
    rows = [
        (
            name,
            " / ".join(f"{s:,.1f}" for s in seconds),
            f"**{statistics.median(seconds):,.1f}**",
            f"{statistics.median(seconds) / floor:,.2f}x",
        )
        for name, seconds in bench.seconds.items()
    ]
    verdict = "met" if bench.speedup >= GOAL else "**not met**"
    report = Report(
        "import",
        "Import (backfill) of a simulated file",
        command=(
            f"fraudlake bench import --transactions {bench.transactions} --users {bench.users} --days {bench.days} "
            f"--runs {len(bench.seconds[THIS])}"
        ),
        settings={
            "data": f"{bench.transactions:,} simulated transactions with their users and merchants (Parquet)",
            "baseline": f"{bench.baseline} from git, its own code and config, this checkout's jars",
            "each run": "its own process, a fresh data folder and embedded catalog; the whole command's wall time",
        },
        **({"machine": machine} if machine else {}),
    )
    return report.table(["pipeline", "runs (s)", "median (s)", "time against the floor"], rows, "lrrr").text(
        f"This release imports the file **{bench.speedup:,.2f}x** as fast as the round's start "
        f"(goal {GOAL:.0f}x: {verdict}); the floor is {this / floor:,.1f}x faster than this release "
        f"({bench.transactions / this:,.0f} transactions/s for the whole command)."
    )
