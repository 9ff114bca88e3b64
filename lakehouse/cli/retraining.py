"""``fraudlake validate`` (the GX data-quality gates) and ``fraudlake retrain <step>`` (the steps of
the ``fraud_model_retraining`` DAG, usable by hand too). Registered on the main app by
:mod:`lakehouse.cli.app`."""

from __future__ import annotations

import json
from datetime import date
from typing import Annotated

import typer

from lakehouse.cli.app import _settings, _spark, app, console

retrain_app = typer.Typer(
    help="The steps of a retraining run (what the fraud_model_retraining DAG calls), keyed by its data interval's end.",
    no_args_is_help=True,
)
app.add_typer(retrain_app, name="retrain")

IntervalEnd = Annotated[
    str,
    typer.Option("--interval-end", help="End of the run's data interval (ISO 8601, e.g. 2026-11-29T03:00:00+00:00)."),
]


@app.command("validate")
def validate_command(
    ctx: typer.Context,
    suites: Annotated[list[str], typer.Argument(help="Suite names (files in expectations/), or all.")],
    as_of_version: Annotated[
        int | None, typer.Option(help="Validate the table as of this Delta version (suites of one table only).")
    ] = None,
    as_of: Annotated[
        str | None, typer.Option(help="Reference time of windows and freshness (ISO 8601; default: now).")
    ] = None,
    date_from: Annotated[
        str | None, typer.Option("--from", help="training_set: first event day (default: the whole table).")
    ] = None,
    date_to: Annotated[str | None, typer.Option("--to", help="training_set: last event day.")] = None,
    interval_end: Annotated[
        str | None,
        typer.Option(
            help="Gate of a retraining run: its time is the as-of time, training_set checks its pin, results go to its state."
        ),
    ] = None,
) -> None:
    """Run Great Expectations suites on the lakehouse tables. Exits 0 only when every expectation
    passes; prints each failed one with the value observed; Data Docs (HTML) go to
    quality.docs_dir (default <data_dir>/data_docs/index.html).

    Examples: fraudlake validate all;  fraudlake validate silver_transactions --as-of-version 12;
    fraudlake validate training_set --from 2026-10-01 --to 2026-11-28
    """
    from rich.table import Table

    from lakehouse.quality.suites import QualityError, TrainingWindow, docs_index, load_suite, suite_names, validate
    from lakehouse.retraining.steps import Run, parse_interval_end

    settings = _settings(ctx)
    names = suite_names(settings) if suites == ["all"] else suites
    loaded = [load_suite(settings, name) for name in names]  # unknown names fail before Spark starts
    if as_of_version is not None and len({s.table for s in loaded}) > 1:
        raise QualityError(
            "--as-of-version is a version of one table: name suites of a single table (e.g. silver_transactions)"
        )
    run = Run.open(settings, parse_interval_end(interval_end)) if interval_end else None
    reference = run.interval_end if run else (parse_interval_end(as_of) if as_of else None)
    training = (
        TrainingWindow(date.fromisoformat(date_from), date.fromisoformat(date_to)) if date_from and date_to else None
    )
    if (date_from is None) != (date_to is None):
        raise QualityError("--from and --to go together")
    pinned = run and any(s.window == "training" for s in loaded)
    results = validate(
        _spark(ctx, "fraudlake-validate"),
        settings,
        loaded,
        as_of=reference,
        as_of_version=as_of_version,
        training=run.training_window() if pinned else training,
        training_version=run.state["pin"]["features_version"] if pinned else None,
        run_name=run and f"retraining-{run.key}",
    )
    if run:
        run.record_gates(results)
    table = Table(title="data-quality gates (Great Expectations)")
    for column in ("suite", "table", "what", "rows", "expectations", "failed", "result"):
        table.add_column(column, justify="right" if column in ("rows", "expectations", "failed") else "left")
    for r in results:
        verdict = "[green]passed[/green]" if r.success else "[red]FAILED[/red]"
        table.add_row(
            r.suite,
            f"{r.table} v{r.table_version}",
            r.window,
            f"{r.rows:,}",
            str(r.evaluated),
            str(len(r.failures)),
            verdict,
        )
    console.print(table)
    for r in results:
        for f in r.failures:
            console.print(f"  {r.suite}: {f.describe()}", markup=False, highlight=False, soft_wrap=True)
    console.print(f"Data Docs: {docs_index(settings)}", markup=False, highlight=False, soft_wrap=True)
    if not all(r.success for r in results):
        raise typer.Exit(1)


def _run(ctx: typer.Context, interval_end: str):
    from lakehouse.retraining.steps import Run, parse_interval_end

    return Run.open(_settings(ctx), parse_interval_end(interval_end))


def _show(step: str, value: dict) -> None:
    console.print(f"{step}: {json.dumps(value, default=str)}", markup=False, highlight=False, soft_wrap=True)


@retrain_app.command("pin")
def retrain_pin(ctx: typer.Context, interval_end: IntervalEnd) -> None:
    """Pin the tables' Delta versions and the training window (once per run; a re-run keeps them).

    Example: fraudlake retrain pin --interval-end 2026-11-29T03:00:00+00:00
    """
    from lakehouse.retraining.steps import pin

    run = _run(ctx, interval_end)
    _show("pin", pin(_spark(ctx, "fraudlake-retrain-pin"), _settings(ctx), run))


@retrain_app.command("train")
def retrain_train(ctx: typer.Context, interval_end: IntervalEnd) -> None:
    """Train a challenger on the pinned data after the gates passed; registered, not promoted. A
    re-run reuses the challenger this run registered."""
    from lakehouse.retraining.steps import train_challenger

    run = _run(ctx, interval_end)
    _show("challenger", train_challenger(_spark(ctx, "fraudlake-retrain-train"), _settings(ctx), run))


@retrain_app.command("evaluate")
def retrain_evaluate(ctx: typer.Context, interval_end: IntervalEnd) -> None:
    """Score challenger and champion on the same validation window; decide (changes nothing)."""
    from lakehouse.retraining.steps import evaluate

    run = _run(ctx, interval_end)
    _show("evaluation", evaluate(_spark(ctx, "fraudlake-retrain-evaluate"), _settings(ctx), run))


@retrain_app.command("promote")
def retrain_promote(ctx: typer.Context, interval_end: IntervalEnd) -> None:
    """Promote the challenger if the evaluation says so and the champion has not changed since."""
    from lakehouse.retraining.steps import promote

    run = _run(ctx, interval_end)
    _show("promotion", promote(_settings(ctx), run))


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
    _show("scorer", await_scorer(_spark(ctx, "fraudlake-retrain-await-scorer"), _settings(ctx), run, timeout_s=timeout))


@retrain_app.command("record")
def retrain_record(ctx: typer.Context, interval_end: IntervalEnd) -> None:
    """Record the run's outcome in gold.retraining_runs, whatever happened. Exits 1 when the run
    did not complete (a gate failed or a step did not run), so the DAG run shows it failed."""
    from lakehouse.retraining.steps import record

    run = _run(ctx, interval_end)
    row = record(_spark(ctx, "fraudlake-retrain-record"), _settings(ctx), run)
    _show("outcome", {k: v for k, v in row.items() if k != "state"})
    for line in row["failed_expectations"]:
        console.print(f"  failed: {line}", markup=False, highlight=False, soft_wrap=True)
    if row["status"] not in ("promoted", "kept_champion"):
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
    import os
    import subprocess
    import sys
    from pathlib import Path

    from lakehouse.errors import PlatformError
    from lakehouse.platform.airflow import airflow_environ

    settings = _settings(ctx)
    env = {**os.environ, **airflow_environ(settings)}
    airflow = str(Path(sys.executable).with_name("airflow"))
    migrate = subprocess.run([airflow, "db", "migrate"], env=env, capture_output=True, text=True)  # idempotent, seconds
    if migrate.returncode != 0:
        raise PlatformError(
            f"airflow db migrate failed in {settings.airflow_home}: {(migrate.stderr or migrate.stdout).strip()[-500:]}"
        )
    command = [airflow, *(ctx.args or ["standalone"])]
    if not ctx.args:
        console.print(
            f"Airflow UI: http://localhost:{settings.orchestration.airflow_port} (user admin; password in "
            f"{settings.airflow_home / 'simple_auth_manager_passwords.json.generated'}); Ctrl-C stops it",
            markup=False,
            highlight=False,
        )
    os.execvpe(command[0], command, env)
