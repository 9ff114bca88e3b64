"""Retraining and scheduling: ``fraudlake retrain pin|train|evaluate|promote|await-scorer|record|show``
(the steps of the ``fraud_model_retraining`` DAG, usable by hand too) and ``fraudlake airflow``
(Airflow on this machine with Fraudlake's DAGs). The run's data-quality gates are
``fraudlake validate ... --interval-end`` (:mod:`lakehouse.cli.quality`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from lakehouse.cli.common import console, settings_of, spark_session

if TYPE_CHECKING:
    from lakehouse.retraining.steps import Run

app = typer.Typer()
retrain_app = typer.Typer(
    help="The steps of a retraining run (what the fraud_model_retraining DAG calls), keyed by its data interval's end.",
    no_args_is_help=True,
)
app.add_typer(retrain_app, name="retrain")

IntervalEnd = Annotated[
    str,
    typer.Option("--interval-end", help="End of the run's data interval (ISO 8601, e.g. 2026-11-29T03:00:00+00:00)."),
]


def _run(ctx: typer.Context, interval_end: str) -> Run:
    from lakehouse.retraining.steps import Run, parse_interval_end

    return Run.open(settings_of(ctx), parse_interval_end(interval_end))


def _show(step: str, value: dict) -> None:
    console.print(f"{step}: {json.dumps(value, default=str)}", markup=False, highlight=False, soft_wrap=True)


@retrain_app.command("pin")
def retrain_pin(ctx: typer.Context, interval_end: IntervalEnd) -> None:
    """Pin the tables' Delta versions and the training window (once per run; a re-run keeps them).

    Example: fraudlake retrain pin --interval-end 2026-11-29T03:00:00+00:00
    """
    from lakehouse.retraining.steps import pin

    run = _run(ctx, interval_end)
    _show("pin", pin(spark_session(ctx, "fraudlake-retrain-pin"), settings_of(ctx), run))


@retrain_app.command("train")
def retrain_train(ctx: typer.Context, interval_end: IntervalEnd) -> None:
    """Train a challenger on the pinned data after the gates passed; registered, not promoted. A
    re-run reuses the challenger this run registered."""
    from lakehouse.retraining.steps import train_challenger

    run = _run(ctx, interval_end)
    session = partial(spark_session, ctx, "fraudlake-retrain-train")  # started only if it trains
    _show("challenger", train_challenger(session, settings_of(ctx), run))


@retrain_app.command("evaluate")
def retrain_evaluate(ctx: typer.Context, interval_end: IntervalEnd) -> None:
    """Score challenger and champion on the same validation window; decide (changes nothing)."""
    from lakehouse.retraining.steps import evaluate

    run = _run(ctx, interval_end)
    _show("evaluation", evaluate(spark_session(ctx, "fraudlake-retrain-evaluate"), settings_of(ctx), run))


@retrain_app.command("promote")
def retrain_promote(ctx: typer.Context, interval_end: IntervalEnd) -> None:
    """Promote the challenger if the evaluation says so and the champion has not changed since
    (with training.shadow_days: through a shadow period on the live stream)."""
    from lakehouse.retraining.steps import promote

    run = _run(ctx, interval_end)
    session = partial(spark_session, ctx, "fraudlake-retrain-promote")  # started only to judge a shadow
    _show("promotion", promote(settings_of(ctx), run, session))


@retrain_app.command("await-scorer")
def retrain_await_scorer(
    ctx: typer.Context,
    interval_end: IntervalEnd,
    timeout: Annotated[
        float | None, typer.Option(help="Seconds (default: orchestration.scorer_reload_timeout_s).")
    ] = None,
) -> None:
    """After a promotion, wait until a running scorer scores with the new champion (hot reload).
    No scorer running: nothing to wait for (the next start loads the champion)."""
    from lakehouse.retraining.steps import await_scorer

    run = _run(ctx, interval_end)
    spark = spark_session(ctx, "fraudlake-retrain-await-scorer")
    _show("scorer", await_scorer(spark, settings_of(ctx), run, timeout_s=timeout))


@retrain_app.command("record")
def retrain_record(ctx: typer.Context, interval_end: IntervalEnd) -> None:
    """Record the run's outcome in gold.retraining_runs, whatever happened. Exits 1 when the run
    did not complete (a gate failed or a step did not run), so the DAG run shows it failed."""
    from lakehouse.retraining.steps import record

    run = _run(ctx, interval_end)
    row = record(spark_session(ctx, "fraudlake-retrain-record"), settings_of(ctx), run)
    _show("outcome", {k: v for k, v in row.items() if k != "state"})
    for line in row["failed_expectations"]:
        console.print(f"  failed: {line}", markup=False, highlight=False, soft_wrap=True)
    if row["status"] not in ("promoted", "kept_champion", "shadowing"):
        console.print(
            f"run {run.key} did not complete: {row['status']} at {row['stopped_at']}", markup=False, highlight=False
        )
        raise typer.Exit(1)


@retrain_app.command("show")
def retrain_show(ctx: typer.Context, interval_end: IntervalEnd) -> None:
    """Print a run's state (JSON)."""
    run = _run(ctx, interval_end)
    console.print_json(json.dumps(run.state, default=str))


@app.command(
    "airflow",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def airflow_command(ctx: typer.Context) -> None:
    """Airflow on this machine with Fraudlake's DAGs: `airflow standalone` (scheduler, UI on
    orchestration.airflow_port, SQLite metadata in orchestration.airflow_home) when given no
    arguments; otherwise the airflow command line with the same set-up. Tasks need the catalog
    (and, for stream status, the broker) up: `make airflow` starts them.

    Examples: fraudlake airflow;  fraudlake airflow dags test fraud_model_retraining 2026-11-29
    """
    from lakehouse.errors import PlatformError
    from lakehouse.platform.airflow import airflow_environ

    settings = settings_of(ctx)
    env = {**os.environ, **airflow_environ(settings)}
    airflow = str(Path(sys.executable).with_name("airflow"))
    migrate = subprocess.run([airflow, "db", "migrate"], env=env, capture_output=True, text=True)  # idempotent, seconds
    if migrate.returncode != 0:
        output = (migrate.stderr or migrate.stdout).strip()[-500:]
        raise PlatformError(f"airflow db migrate failed in {settings.airflow_home}: {output}")
    command = [airflow, *(ctx.args or ["standalone"])]
    if not ctx.args:
        console.print(
            f"Airflow UI: http://localhost:{settings.orchestration.airflow_port} (user admin; password in "
            f"{settings.airflow_home / 'simple_auth_manager_passwords.json.generated'}); Ctrl-C stops it",
            markup=False,
            highlight=False,
        )
    os.execvpe(command[0], command, env)
