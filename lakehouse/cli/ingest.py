"""Loading and checking the lake's input: ``fraudlake import`` (your own files into bronze and
silver) and ``fraudlake reconcile`` (bronze = silver + quarantine). The streaming ingest job is
``fraudlake stream ingest`` (:mod:`lakehouse.cli.stream`)."""

from __future__ import annotations

from typing import Annotated

import typer

from lakehouse.cli.common import console, settings_of, spark_session

app = typer.Typer()


@app.command("import")
def import_command(
    ctx: typer.Context,
    transactions: Annotated[str | None, typer.Option(help="Transactions file (CSV with a header, or Parquet).")] = None,
    users: Annotated[str | None, typer.Option(help="Users file (optional).")] = None,
    merchants: Annotated[str | None, typer.Option(help="Merchants file (optional).")] = None,
    labels: Annotated[
        str | None,
        typer.Option(help="Label events (a chargeback file: transaction_id, user_id, label, source, reported_at)."),
    ] = None,
    file_format: Annotated[
        str | None, typer.Option("--format", help="csv or parquet (default: from the file suffix).")
    ] = None,
    mapping: Annotated[
        list[str] | None,
        typer.Option("--map", help="contract_field=source_column, repeatable (e.g. --map timestamp=tx_time)."),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Name of this import (pseudo-topic import:<name>); default: the file name.")
    ] = None,
    currency: Annotated[str | None, typer.Option(help="Currency of every row when the file has none.")] = None,
) -> None:
    """Load your own transactions (and users, merchants, label events) into bronze and silver, validated like
    the streams (bad rows to quarantine with a reason). Running it again with the same file and name
    does nothing (and says so); an import that stopped half-way is finished by running it again.

    Example: fraudlake import --transactions tx.csv --map timestamp=tx_time --map amount=amt --currency EUR
    """
    from lakehouse.ingest.files import FAULT_STEPS, import_files, parse_mapping
    from lakehouse.platform import faults

    parsed = parse_mapping(mapping or [])
    faults.arm(FAULT_STEPS)  # before Spark starts: its JVM inherits the job's process group
    reports = import_files(
        spark_session(ctx, "fraudlake-import"),
        settings_of(ctx),
        transactions=transactions,
        users=users,
        merchants=merchants,
        labels=labels,
        fmt=file_format,
        mapping=parsed,
        name=name,
        currency=currency,
    )
    for r in reports:
        already = "  (imported before under this name: nothing done)" if r.already else ""
        console.print(
            f"{r.stream:<13} {r.rows:>10,} rows  {r.accepted or 0:>10,} accepted  {r.quarantined or 0:>8,} quarantined"
            f"{already}"
        )


@app.command("reconcile")
def reconcile_command(ctx: typer.Context) -> None:
    """Check per stream that bronze = silver + quarantine, record by record, and that no user's
    transactions arrived on two partitions (the scorer's state needs producers keyed by user_id), and
    that no partition's clock runs in the future. Exits 1 when not.

    Safe beside a running ingest: what silver's query has not read yet (its checkpoint says how far
    it has) is counted as in flight, not as lost.
    """
    from rich.table import Table

    from lakehouse.ingest.reconcile import clocks_ahead, reconcile, split_users

    spark, settings = spark_session(ctx, "fraudlake-reconcile"), settings_of(ctx)
    results = reconcile(spark, settings)
    split = split_users(spark, settings)
    ahead = clocks_ahead(spark, settings)
    table = Table(title="bronze = silver + quarantine + in flight")
    columns = [
        "stream",
        "bronze",
        "silver",
        "quarantine",
        "in_flight",
        "unaccounted",
        "double_counted",
        "orphans",
        "bronze_duplicates",
        "ok",
    ]
    for column in columns:
        table.add_column(column, justify="left" if column == "stream" else "right")
    for r in results:
        table.add_row(*(f"{getattr(r, c):,}" if c not in ("stream", "ok") else str(getattr(r, c)) for c in columns))
    console.print(table)
    if not split.ok:
        console.print(
            f"{split.users:,} users have transactions on more than one partition of "
            f"{settings.kafka.topics.transactions.name} (e.g. {', '.join(split.examples)}): the scorer sees only "
            "part of their history. Key transactions by user_id, and never add partitions to a live topic "
            "(README: Scale-out)."
        )
    if not ahead.ok:
        console.print(
            f"partition clocks in the future ({'; '.join(ahead.partitions)}): every later record of these "
            "partitions is marked late_event. Recovery: docs/operations.md, 'A partition clock in the future'."
        )
    if not all(r.ok for r in results) or not split.ok or not ahead.ok:
        raise typer.Exit(1)
