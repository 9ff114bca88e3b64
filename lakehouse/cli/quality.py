"""Data quality: ``fraudlake validate`` (the Great Expectations suites on the lakehouse tables, and
the gates of a retraining run)."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import typer

from lakehouse.cli.common import console, settings_of, spark_session

app = typer.Typer()


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
            help="Gate of a retraining run: its time is the as-of time, "
            "training_set checks its pin, results go to its state."
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
    from lakehouse.retraining.gates import validate_run_gates
    from lakehouse.retraining.steps import Run, parse_interval_end

    settings = settings_of(ctx)
    names = suite_names(settings) if suites == ["all"] else suites
    loaded = [load_suite(settings, name) for name in names]  # unknown names fail before Spark starts
    if as_of_version is not None and len({s.table for s in loaded}) > 1:
        raise QualityError(
            "--as-of-version is a version of one table: name suites of a single table (e.g. silver_transactions)"
        )
    run = Run.open(settings, parse_interval_end(interval_end)) if interval_end else None
    reference = None if run or not as_of else parse_interval_end(as_of)
    training = (
        TrainingWindow(date.fromisoformat(date_from), date.fromisoformat(date_to)) if date_from and date_to else None
    )
    if (date_from is None) != (date_to is None):
        raise QualityError("--from and --to go together")
    spark = spark_session(ctx, "fraudlake-validate")
    if run:
        results = validate_run_gates(spark, settings, run, loaded, as_of_version=as_of_version, training=training)
    else:
        results = validate(spark, settings, loaded, as_of=reference, as_of_version=as_of_version, training=training)
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
