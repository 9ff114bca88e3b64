"""The fixed cost under a drain: how many Delta commits a pipeline makes, and what one costs.

A small micro-batch's time is mostly fixed cost, and most of that is Delta commits. Every
exactly-once append (:func:`lakehouse.platform.delta.append_once`, and Delta's own streaming
sink) asks the table which version its writer last committed (``txnAppId``). Delta 4.4 answers
from the table's reconstructed state: a query with a shuffle over the table's log, three Spark
jobs, on every such append, although the checksum file of the version it reads already holds the
answer (newer Delta code reads it from there; no release had it on 2026-12-07). A plain append
runs one job.

:func:`commit_cost` measures both on a scratch table, side by side in the benchmark's own run;
:func:`data_commits` counts the commits a run left in its tables (``DESCRIBE HISTORY``, table
definitions left out), so the report can put the two together: the time the commits alone take,
against the time the goal leaves for the whole drain.
"""

from __future__ import annotations

import statistics
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lakehouse.benchmarks.report import Report
from lakehouse.platform.delta import append_once

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: History operations that define a table rather than write to it.
DEFINITIONS = ("CREATE TABLE", "CREATE OR REPLACE TABLE", "REPLACE TABLE", "SET TBLPROPERTIES", "ADD CONSTRAINT")
PLAIN, IDEMPOTENT = "plain append", "idempotent append (txnAppId, txnVersion)"


@dataclass(frozen=True)
class CommitCost:
    """Median seconds and Spark jobs of one append of ``rows`` rows, by kind."""

    rows: int
    seconds: dict[str, float]
    jobs: dict[str, int]


def data_commits(spark: SparkSession, table: str) -> int:
    """The commits that wrote to ``table`` (a name, or ``delta.`<path>```), its definition left out."""
    from pyspark.sql import functions as F

    history = spark.sql(f"DESCRIBE HISTORY {table}")
    return history.where(~F.col("operation").isin(*DEFINITIONS)).count()


def commit_cost(spark: SparkSession, folder: Path, *, rows: int = 1000, repeats: int = 5) -> CommitCost:
    """Append ``rows`` bronze-like rows to a scratch Delta table ``repeats`` times each way, the two
    kinds taking turns; the median seconds and the Spark jobs of each kind."""
    context = spark.sparkContext
    path = str(folder / f"commit-cost-{uuid.uuid4().hex[:8]}")
    frame = spark.range(rows).selectExpr(
        "CAST(id AS STRING) AS key", "repeat('x', 200) AS value", "CAST(id % 3 AS INT) AS partition", "id AS offset"
    )
    frame.write.format("delta").save(path)
    seconds: dict[str, list[float]] = {PLAIN: [], IDEMPOTENT: []}
    jobs: dict[str, list[int]] = {PLAIN: [], IDEMPOTENT: []}
    try:
        for attempt in range(repeats):
            for kind in (PLAIN, IDEMPOTENT):
                group = f"commit-cost-{uuid.uuid4().hex[:8]}"
                context.setJobGroup(group, f"bench ingest: {kind}")
                began = time.perf_counter()
                if kind == PLAIN:
                    frame.write.format("delta").mode("append").save(path)
                else:
                    append_once(frame, path, app_id="bench-commit-cost", batch_id=attempt)
                seconds[kind].append(time.perf_counter() - began)
                jobs[kind].append(len(context.statusTracker().getJobIdsForGroup(group)))
    finally:
        context.setLocalProperty("spark.jobGroup.id", None)
        context.setLocalProperty("spark.job.description", None)
    return CommitCost(
        rows,
        {kind: statistics.median(values) for kind, values in seconds.items()},
        {kind: int(statistics.median(values)) for kind, values in jobs.items()},
    )


def commits_section(
    report: Report,
    commits: dict[str, dict[str, int]],
    cost: CommitCost,
    *,
    ingest: str,
    drain_s: float,
    goal_s: float,
    cores: int,
) -> None:
    """The report's section: each pipeline's commits by table in its last run, one append's cost
    both ways, and the time ``ingest``'s commits alone take against ``goal_s`` (the drain time the
    goal allows; ``drain_s``: ingest's own)."""
    report.section("The fixed cost under the drain: Delta commits")
    report.table(
        ["pipeline", "Delta commits (last run)", "by table"],
        [
            (pipeline, f"{sum(tables.values()):,}", ", ".join(f"{t} {n}" for t, n in tables.items() if n))
            for pipeline, tables in commits.items()
        ],
        "lrl",
    )
    report.table(
        [f"one append of {cost.rows:,} rows (median of the turns)", "seconds", "Spark jobs"],
        [(kind, f"{cost.seconds[kind]:.2f}", f"{cost.jobs[kind]}") for kind in (PLAIN, IDEMPOTENT)],
        "lrr",
    )
    count = sum(commits[ingest].values())
    alone = count * cost.seconds[IDEMPOTENT]
    report.text(
        "Every ingest append is idempotent, and so is each batch of Delta's own streaming sink; the"
        " extra jobs are Delta 4.4 reconstructing the table's state to read its writers' last"
        " versions (`lakehouse/benchmarks/delta_commits.py`).",
        f"- ingest's {count:,} commits at {cost.seconds[IDEMPOTENT]:.2f} s each: about {alone:,.1f} s one"
        f" after another, {alone / cores:,.1f} s spread over {cores} cores, against"
        f" {goal_s:,.1f} s for the whole drain at the goal (ingest's own drain: {drain_s:,.1f} s).",
    )
