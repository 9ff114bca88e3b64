"""Models: ``fraudlake train`` and ``fraudlake first-model`` (as jobs), ``fraudlake backtest``
(re-score history with any model) and the registry, ``fraudlake model list|show|promote|rollback|shadow|compare``."""

from __future__ import annotations

import json
from datetime import date
from typing import Annotated

import typer

from lakehouse.cli.common import console, run_job, settings_of, spark_session

app = typer.Typer()
model_app = typer.Typer(
    help="The model registry (MLflow): list, show, promote, rollback, shadow scoring and its comparison.",
    no_args_is_help=True,
)
app.add_typer(model_app, name="model")


@app.command("train")
def train_command(
    ctx: typer.Context,
    date_from: Annotated[str | None, typer.Option("--from", help="First event day (YYYY-MM-DD); default: all.")] = None,
    date_to: Annotated[str | None, typer.Option("--to", help="Last event day; default: all.")] = None,
    algorithm: Annotated[
        str | None,
        typer.Option(
            help="gbt, random_forest or logistic_regression, trained as configured (default: chosen by"
            " training.selection, or training.algorithm when it is off)."
        ),
    ] = None,
    promote: Annotated[
        bool, typer.Option(help="Promote when it beats the champion (--no-promote: register only).")
    ] = True,
) -> None:
    """Train a model on gold.transaction_features (time split), evaluate it against baselines,
    register it, and promote it when it beats the champion on the same window.

    Example: fraudlake train --algorithm gbt
    """
    args = [*(["--from", date_from] if date_from else []), *(["--to", date_to] if date_to else [])]
    args += [*(["--algorithm", algorithm] if algorithm else []), *([] if promote else ["--no-promote"])]
    raise typer.Exit(run_job(ctx, "train_model", *args))


@app.command("first-model")
def first_model_command(ctx: typer.Context) -> None:
    """From the history in the topics to the first model, in one Spark session: ingest what the
    topics hold (as stream ingest --once), build the features, then train, register and promote
    (as train). Each finished step prints its seconds; running it again resumes.

    Example: fraudlake produce --count 100000 && fraudlake first-model
    """
    raise typer.Exit(run_job(ctx, "first_model"))


@app.command("backtest")
def backtest_command(
    ctx: typer.Context,
    date_from: Annotated[str, typer.Option("--from", help="First event day (YYYY-MM-DD).")],
    date_to: Annotated[str, typer.Option("--to", help="Last event day (YYYY-MM-DD).")],
    model: Annotated[str, typer.Option(help='A registry version number, or "champion".')] = "champion",
    as_of_version: Annotated[
        int | None, typer.Option(help="Read gold.transaction_features as of this Delta version.")
    ] = None,
    as_of_timestamp: Annotated[
        str | None, typer.Option(help="... or as of this timestamp (e.g. '2026-11-29 08:00:00').")
    ] = None,
) -> None:
    """Re-score history with any model on the feature table as it was (time travel); scores go to
    gold.backtest_scores, metrics are printed.

    Example: fraudlake backtest --model 2 --from 2026-11-01 --to 2026-11-14 --as-of-version 5
    """
    from rich.table import Table

    from lakehouse.ml.backtest import backtest

    result = backtest(
        spark_session(ctx, "fraudlake-backtest"),
        settings_of(ctx),
        model=model,
        date_from=date.fromisoformat(date_from),
        date_to=date.fromisoformat(date_to),
        as_of_version=as_of_version,
        as_of_timestamp=as_of_timestamp,
    )
    e = result.evaluation
    table = Table(
        title=f"backtest {result.backtest_id}: model {result.model_version} "
        f"on features version {result.features_version}"
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in e.as_dict().items():
        if not isinstance(value, dict):
            table.add_row(name, f"{value:.4f}" if isinstance(value, float) else f"{value:,}")
    for name, value in e.recall_by_scenario.items():
        table.add_row(f"recall: {name}", f"{value:.4f}")
    console.print(table)
    console.print(f"{result.rows:,} scores in {result.table} (backtest_id = '{result.backtest_id}')")


@model_app.command("list")
def model_list(ctx: typer.Context) -> None:
    """Every registered version with its metrics; the champion marked.

    Example: fraudlake model list
    """
    from rich.table import Table

    from lakehouse.ml.registry import versions

    table = Table(title=f"model {settings_of(ctx).registry.model_name}")
    for column in ("version", "champion", "algorithm", "average precision", "threshold", "created", "promotion"):
        table.add_column(column)
    for v in versions(settings_of(ctx)):
        ap = "" if v.average_precision is None else f"{v.average_precision:.4f}"
        table.add_row(
            str(v.version),
            "*" if v.champion else "",
            v.algorithm,
            ap,
            f"{v.threshold:.4f}",
            v.created_at,
            v.tags.get("promotion", v.tags.get("promoted", "")),
        )
    console.print(table)


@model_app.command("show")
def model_show(ctx: typer.Context, version: Annotated[int, typer.Argument(help="Version number.")]) -> None:
    """One version's tags (threshold, features, table versions, code version) as JSON.

    Example: fraudlake model show 3
    """
    from lakehouse.ml.registry import version_info

    info = version_info(settings_of(ctx), version)
    console.print_json(json.dumps({**info.__dict__, "tags": info.tags}, default=str))


@model_app.command("promote")
def model_promote(
    ctx: typer.Context, version: Annotated[int, typer.Argument(help="Version to make champion.")]
) -> None:
    """Make a version champion by hand (it must load and score first); the scorer follows.

    Example: fraudlake model promote 3
    """
    from lakehouse.ml import registry

    settings = settings_of(ctx)
    spark = spark_session(ctx, "fraudlake-model")
    registry.promote(
        settings, version, validate=lambda model: registry.check_scores(spark, settings, model, version=version)
    )
    console.print(f"champion: version {version}")


@model_app.command("rollback")
def model_rollback(ctx: typer.Context) -> None:
    """Restore the previous champion.

    Example: fraudlake model rollback
    """
    from lakehouse.ml import registry

    console.print(f"champion: version {registry.rollback(settings_of(ctx))} (rolled back)")


@model_app.command("shadow")
def model_shadow(
    ctx: typer.Context,
    version: Annotated[int | None, typer.Argument(help="Version to score beside the champion.")] = None,
    stop: Annotated[bool, typer.Option("--stop", help="Stop shadow scoring.")] = False,
) -> None:
    """Score a version beside the champion on the live stream, with no alerts, into
    gold.shadow_scores (the running scorer picks it up within scoring.reload_check_s).

    Example: fraudlake model shadow 4
    """
    from lakehouse.errors import ConfigError
    from lakehouse.ml import registry

    if (version is None) == (not stop):
        raise ConfigError("give a VERSION to shadow, or --stop")
    registry.set_shadow(settings_of(ctx), None if stop else version, reason="set by hand")
    console.print("shadow scoring stopped" if stop else f"shadow: version {version} (no alerts)")


@model_app.command("compare")
def model_compare(
    ctx: typer.Context,
    version: Annotated[int | None, typer.Argument(help="Shadow version to compare (default: the current one).")] = None,
) -> None:
    """The shadow version against the champion on the same live transactions, judged on the labels
    matured since (labels.maturity_days): average precision and daily card precision at the alert
    budget.

    Example: fraudlake model compare
    """
    from lakehouse.ml.shadow import compare_shadow

    c = compare_shadow(spark_session(ctx, "fraudlake-model"), settings_of(ctx), version)

    def figure(value: float | None) -> str:
        return "n/a" if value is None else f"{value:.4f}"

    champions = ", ".join(str(v) for v in c.champion_versions) or "none"
    console.print(
        f"shadow version {c.shadow_version} beside champion {champions}: {c.rows:,} transactions over {c.days} days "
        f"before {c.matured_before:%Y-%m-%d %H:%M} UTC (labels matured), {c.frauds:,} known frauds"
    )
    console.print(f"average precision    champion {figure(c.champion_ap)}  shadow {figure(c.shadow_ap)}")
    console.print(
        f"precision at budget  champion {figure(c.champion_precision_at_budget)}  "
        f"shadow {figure(c.shadow_precision_at_budget)}"
    )
