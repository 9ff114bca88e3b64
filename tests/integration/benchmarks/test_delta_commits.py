"""The ingest benchmark's count of a table's commits and its measure of one append's cost, on
real Delta tables."""

from __future__ import annotations

import pytest

from lakehouse.benchmarks.delta_commits import IDEMPOTENT, PLAIN, commit_cost, data_commits

pytestmark = pytest.mark.integration


def test_commits_count_the_writes_not_the_definition_and_the_cost_run_leaves_no_job_group(spark, tmp_path) -> None:
    path = str(tmp_path / "counted")
    spark.sql(f"CREATE TABLE delta.`{path}` (id BIGINT) USING delta")
    for _ in range(2):
        spark.range(3).write.format("delta").mode("append").save(path)
    assert data_commits(spark, f"delta.`{path}`") == 2

    cost = commit_cost(spark, tmp_path, rows=10, repeats=1)
    assert set(cost.seconds) == set(cost.jobs) == {PLAIN, IDEMPOTENT}
    assert all(seconds > 0 for seconds in cost.seconds.values()) and all(jobs >= 1 for jobs in cost.jobs.values())
    # Both kinds wrote once each: the scratch table holds its first write and the two appends.
    scratch = next(p for p in tmp_path.iterdir() if p.name.startswith("commit-cost-"))
    assert spark.read.format("delta").load(str(scratch)).count() == 30
    assert spark.sparkContext.getLocalProperty("spark.jobGroup.id") is None
