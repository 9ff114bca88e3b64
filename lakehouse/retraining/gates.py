"""The data-quality gates of a retraining run: ``fraudlake validate <suites> --interval-end T``.

A gate validates as of the run's interval end. Suites of the training window read what the run
pinned (its training window and the Delta version of the feature table), so the gate checks
exactly the data the challenger is trained on; results go to the run's state (and to GX under
the run's name).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lakehouse.retraining.steps import Run
from lakehouse.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from lakehouse.quality.suites import Suite, SuiteResult, TrainingWindow


def validate_run_gates(
    spark: SparkSession,
    settings: Settings,
    run: Run,
    suites: list[Suite],
    *,
    as_of_version: int | None = None,
    training: TrainingWindow | None = None,
) -> list[SuiteResult]:
    """Validate ``suites`` as the gates of ``run`` and record the results in its state.

    ``training`` is used only when no suite reads the training window (then nothing is pinned);
    a suite of the training window needs the run's ``pin`` step to have run first.
    """
    from lakehouse.quality.suites import validate

    pinned = any(s.window == "training" for s in suites)
    results = validate(
        spark,
        settings,
        suites,
        as_of=run.interval_end,
        as_of_version=as_of_version,
        training=run.training_window() if pinned else training,
        training_version=run.state["pin"]["features_version"] if pinned else None,
        run_name=f"retraining-{run.key}",
    )
    run.record_gates(results)
    return results
