"""Operating the lakehouse: ``fraudlake sql`` (ad hoc Spark SQL), ``fraudlake sql-shell`` (pyspark's
spark-sql shell on the same catalog) and ``fraudlake maintain`` (OPTIMIZE and VACUUM)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from lakehouse.cli.common import console, settings_of, spark_session

app = typer.Typer()


@app.command("sql")
def sql_command(
    ctx: typer.Context,
    statement: Annotated[
        str, typer.Argument(help="One Spark SQL statement; tables by name, e.g. silver.transactions.")
    ],
    output_format: Annotated[
        str, typer.Option("--format", "-f", help="table (default), csv or json (JSON lines).")
    ] = "table",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write csv/json to this file instead of stdout.")
    ] = None,
    limit: Annotated[int, typer.Option(help="Rows to show in table format (csv/json: all rows unless set).")] = 50,
    write: Annotated[
        bool,
        typer.Option(
            "--write", help="Allow a statement that changes the lakehouse (DDL, DELETE, UPDATE, MERGE, INSERT, SET)."
        ),
    ] = False,
) -> None:
    """Run ad hoc Spark SQL over the catalog tables, time travel included. Read-only unless --write.

    Examples: fraudlake sql "SELECT reason, count(*) FROM silver.quarantine GROUP BY reason";
    fraudlake sql "SELECT count(*) FROM silver.transactions VERSION AS OF 3";
    fraudlake sql "SELECT * FROM silver.user_versions TIMESTAMP AS OF '2026-11-29 08:00'" -f csv -o users.csv;
    fraudlake sql --write "DROP TABLE scratch.probe"
    """
    from rich.table import Table

    from lakehouse.operations.sql import SqlError, run_sql, write_rows

    if output_format not in ("table", "csv", "json"):
        raise SqlError(f"--format {output_format!r}: use table, csv or json")
    df = run_sql(spark_session(ctx, "fraudlake-sql"), statement, write=write)
    if output_format == "table":
        rows = df.limit(limit + 1).collect()
        table = Table(show_lines=False)
        for column in df.columns:
            table.add_column(column)
        for row in rows[:limit]:
            table.add_row(*("" if v is None else str(v) for v in row))
        console.print(table)
        more = " (more not shown: --limit, or --format csv)" if len(rows) > limit else ""
        console.print(f"{min(len(rows), limit)} row(s){more}")
        return
    csv_limit = None if ctx.get_parameter_source("limit").name == "DEFAULT" else limit
    if output:
        with output.open("w", newline="") as handle:
            written = write_rows(df, output_format, handle, csv_limit)
        console.print(f"{written} row(s) written to {output}")
    else:
        write_rows(df, output_format, limit=csv_limit)


@app.command(
    "sql-shell",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def sql_shell(ctx: typer.Context) -> None:
    """Open pyspark's own spark-sql shell on the same catalog and warehouse; extra arguments pass through.

    Examples: fraudlake sql-shell;  fraudlake sql-shell -e "SHOW TABLES IN silver"
    """
    from lakehouse.platform.spark import spark_sql_shell_command

    settings = settings_of(ctx)
    settings.metastore_dir.mkdir(parents=True, exist_ok=True)
    command = spark_sql_shell_command(settings, *ctx.args)
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    if settings.spark.local_ip:
        env.setdefault("SPARK_LOCAL_IP", settings.spark.local_ip)
    os.execvpe(command[0], command, env)


@app.command("maintain")
def maintain_command(
    ctx: typer.Context,
    retain_hours: Annotated[
        float | None,
        typer.Option(help="VACUUM retention; never below lakehouse.history_retention_hours (the default)."),
    ] = None,
) -> None:
    """OPTIMIZE every bronze, silver and gold table, then VACUUM files older than the retention
    (longer on a bronze table whose silver stream lags: it keeps what the stream has not read)."""
    from lakehouse.operations.maintenance import maintain

    for result in maintain(spark_session(ctx, "fraudlake-maintain"), settings_of(ctx), retain_hours=retain_hours):
        console.print(
            f"{result.table:<40} files {result.files_before:>5} → {result.files_after:<5} "
            f"version {result.version_after}  kept {result.retained_hours:g} h"
        )
