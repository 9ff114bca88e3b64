"""Transaction features: ``fraudlake features build`` (the offline table, as a job) and
``features check`` (the offline table against the online path)."""

from __future__ import annotations

from typing import Annotated

import typer

from lakehouse.cli.common import console, run_job, settings_of, spark_session

app = typer.Typer()
features_app = typer.Typer(
    help="Transaction features: build the offline table, check it against the online path.", no_args_is_help=True
)
app.add_typer(features_app, name="features")


@features_app.command("build")
def features_build(
    ctx: typer.Context,
    since: Annotated[
        str | None, typer.Option(help="Recompute event days from this date (YYYY-MM-DD) on; default: all.")
    ] = None,
) -> None:
    """Compute gold.transaction_features (and gold.merchant_daily) from silver, point in time.

    Example: fraudlake features build --since 2026-11-01
    """
    raise typer.Exit(run_job(ctx, "build_features", *(["--since", since] if since else [])))


@features_app.command("check")
def features_check(
    ctx: typer.Context,
    rebuild: Annotated[
        bool, typer.Option(help="Rebuild the offline table first (--no-rebuild: compare the table as it is).")
    ] = True,
) -> None:
    """Run the topic's transactions through the scorer's own step and compare every feature with
    the offline table, and every score with MLlib's on it (when there is a champion). Exits 1 when
    any differs beyond features.tolerance, an alert decision differs, or a transaction is missing.

    Example: fraudlake stream ingest --once && fraudlake features check
    """
    from rich.table import Table

    from lakehouse.scoring.check import check_scoring

    settings = settings_of(ctx)
    report = check_scoring(spark_session(ctx, "fraudlake-features-check"), settings, rebuild=rebuild)
    table = Table(title=f"offline vs online features (relative tolerance {report.tolerance:g})")
    for column in ("feature", "max abs diff", "max rel diff", "null mismatches", "ok"):
        table.add_column(column, justify="left" if column == "feature" else "right")
    for d in [*report.diffs, *([report.score] if report.score else [])]:
        table.add_row(
            d.feature,
            f"{d.max_abs:.3g}",
            f"{d.max_rel:.3g}",
            f"{d.null_mismatches:,}",
            "yes" if d.ok(report.tolerance) else "NO",
        )
    console.print(table)
    console.print(
        f"compared {report.compared:,} transactions: offline {report.offline_rows:,}, online {report.online_rows:,}; "
        f"missing online {report.missing_online:,}, missing offline {report.missing_offline:,}, "
        f"not yet ingested {report.not_yet_ingested:,}; "
        f"online marked late {report.late_online:,}, duplicate {report.duplicates_online:,}"
    )
    if report.model_version is None:
        console.print("no champion yet: scores not compared")
    else:
        console.print(
            f"scores of model version {report.model_version}: the scorer's against MLlib's on the offline features; "
            f"{report.decisions_differ:,} alert decisions differ"
        )
    if not report.ok:
        console.print("[red]features or scores differ between the offline and the online path[/red]")
        raise typer.Exit(1)
    console.print("[green]offline and online features agree[/green]")
