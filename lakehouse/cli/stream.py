"""The streaming jobs: ``fraudlake stream ingest`` (Kafka → bronze → silver), ``stream score``
(→ scores and alerts), each run as its own process, and ``stream status`` (their health, read from
their checkpoints and the broker)."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from lakehouse.cli.common import console, run_job, settings_of
from lakehouse.errors import ConfigError

app = typer.Typer()
stream_app = typer.Typer(
    help="Long-running streaming jobs: ingest (Kafka → bronze → silver), score (→ scores and alerts).",
    no_args_is_help=True,
)
app.add_typer(stream_app, name="stream")


@stream_app.command("ingest")
def stream_ingest(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="Drain what the topics hold now, then exit (backfill).")] = False,
) -> None:
    """Kafka → bronze → silver Delta tables, with quarantine, until Ctrl-C (or once with --once).

    Example: fraudlake stream ingest --once && fraudlake reconcile
    """
    raise typer.Exit(run_job(ctx, "stream_ingest", *(["--once"] if once else []), wait_through_ctrl_c=True))


@stream_app.command("score")
def stream_score(
    ctx: typer.Context,
    once: Annotated[bool, typer.Option("--once", help="Score what the topic holds now, then exit.")] = False,
    starting_offsets: Annotated[
        str,
        typer.Option(
            help="Where a new scorer (no checkpoint yet) starts: silver (warm start: user history from silver, "
            "scoring from where silver ends), earliest (the whole topic; history from it alone) or latest."
        ),
    ] = "silver",
) -> None:
    """Score every transaction with the champion model: gold.scored_transactions, and alerts on
    fraud_alerts for scores at or over the model's threshold. Follows the champion without a
    restart (fraudlake model promote). Runs until Ctrl-C.

    Example: fraudlake stream score & fraudlake alerts tail
    """
    from lakehouse.features.warm import STARTS

    if starting_offsets not in STARTS:
        raise ConfigError(f"--starting-offsets must be one of {', '.join(STARTS)}")
    args = [*(["--once"] if once else []), "--starting-offsets", starting_offsets]
    raise typer.Exit(run_job(ctx, "stream_score", *args, wait_through_ctrl_c=True))


@stream_app.command("status")
def stream_status_command(
    ctx: typer.Context,
    max_idle_s: Annotated[
        float | None,
        typer.Option(
            "--max-idle-s",
            min=0,
            help="A query with records waiting and no commit for this long is stale (default: streaming.max_idle_s).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON instead of a table.")] = False,
) -> None:
    """Health of every streaming query (ingest and score), read from their checkpoints and the
    broker: last committed batch, when it ran, and the records waiting for it (lag). Exits 0 when
    all are healthy, 1 when any is stale (records waiting, no recent commit), broken (a damaged
    checkpoint, offsets the topic cannot serve) or never started, 3 when the broker is down.
    Works whether the jobs run or not; Airflow runs it too.

    Example: fraudlake stream status --max-idle-s 600
    """
    from rich.table import Table

    from lakehouse.operations.stream_status import HEALTHY, NOT_STARTED, stream_status

    report = stream_status(settings_of(ctx), max_idle_s=max_idle_s)
    if as_json:
        print(json.dumps(report.as_json(), indent=2))
        if not report.healthy:
            print(report.summary(), file=sys.stderr)
    else:
        table = Table(title=f"streaming queries (max idle {report.max_idle_s:g} s)")
        for column in ("job", "query", "source", "batch", "last batch (UTC)", "lag", "state", "detail"):
            table.add_column(column, justify="right" if column in ("batch", "lag") else "left")
        colours = {HEALTHY: "green", NOT_STARTED: "yellow"}
        for q in report.queries:
            table.add_row(
                q.job,
                q.query,
                q.source,
                "" if q.batch_id is None else str(q.batch_id),
                q.last_batch_at.strftime("%Y-%m-%d %H:%M:%S") if q.last_batch_at else "",
                "" if q.lag is None else f"{q.lag:,}",
                f"[{colours.get(q.state, 'red')}]{q.state}[/]",
                q.detail,
            )
        console.print(table)
        console.print(report.summary(), style="green" if report.healthy else "red", highlight=False, markup=False)
    raise typer.Exit(0 if report.healthy else 1)
