"""Fraud alerts from the scorer: ``fraudlake alerts tail`` (to the terminal, a file or a webhook)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from lakehouse.cli.common import console, settings_of
from lakehouse.errors import ConfigError

app = typer.Typer()
alerts_app = typer.Typer(
    help="Fraud alerts from the scorer: tail them to the terminal, a file or a webhook.", no_args_is_help=True
)
app.add_typer(alerts_app, name="alerts")

#: Why a tail stopped (TailReport.stopped_by), as told to the person.
STOP_REASONS = {
    "max_alerts": "--max reached",
    "idle": "idle timeout",
    "stop": "stop requested",
    "interrupted": "Ctrl-C",
}


@alerts_app.command("tail")
def alerts_tail(
    ctx: typer.Context,
    group: Annotated[
        str, typer.Option(help="Consumer group: its committed offsets are where the next tail of the group resumes.")
    ] = "fraudlake-alerts-tail",
    from_beginning: Annotated[
        bool,
        typer.Option(
            "--from-beginning", help="Re-read every alert the topic holds (the group's offsets are moved back)."
        ),
    ] = False,
    output_format: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="table (live view) or json (one alert per line on stdout). Default: table on a terminal, else json.",
        ),
    ] = None,
    output_file: Annotated[
        Path | None, typer.Option("--output-file", help="Also append each alert to this file (JSON lines).")
    ] = None,
    webhook: Annotated[
        str | None,
        typer.Option(
            envvar="FRAUDLAKE_ALERTS_WEBHOOK",
            show_envvar=True,
            help="Also POST each alert as JSON to this URL. "
            "Give a URL holding a token through the variable, not the shell history.",
        ),
    ] = None,
    retries: Annotated[
        int, typer.Option(min=1, help="Webhook attempts per alert (the first included) before the tail stops.")
    ] = 5,
    max_alerts: Annotated[
        int | None, typer.Option("--max", min=1, help="Stop after this many new (deduplicated) alerts.")
    ] = None,
    idle_timeout: Annotated[
        float | None, typer.Option("--idle-timeout", min=0.1, help="Stop after this many seconds without a new record.")
    ] = None,
    state_file: Annotated[
        Path | None,
        typer.Option(
            "--state-file", help="Remember delivered alert ids in this file, to drop duplicates across restarts too."
        ),
    ] = None,
    out_of_range: Annotated[
        str,
        typer.Option(
            "--out-of-range",
            help="When the group's offset points at alerts the topic no longer holds (retention, a recreated "
            "topic, expired group offsets): earliest (read on from the earliest retained alert, report the gap) "
            "or fail (stop, commit nothing).",
        ),
    ] = "earliest",
    dead_letter: Annotated[
        Path | None,
        typer.Option(
            "--dead-letter",
            help="Where alerts that an output refuses for good (a webhook's 4xx) are set aside, with the reason, "
            "so that one alert cannot stop the group. Default: <data_dir>/alerts/dead_letters.jsonl.",
        ),
    ] = None,
) -> None:
    """Follow the fraud alerts topic: drop duplicate alerts (same alert_id), show or deliver each new
    one, and commit the group's offsets only once every output took the alerts, so a restart
    redelivers instead of losing. Runs until Ctrl-C, --max or --idle-timeout.

    Example: fraudlake alerts tail --format json --from-beginning --idle-timeout 5 | jq .score
    """
    import logging
    import signal
    import threading

    from rich.console import Console

    from lakehouse.alerts.tail import (
        FAULT_STEPS,
        OUT_OF_RANGE_POLICIES,
        Deduplicator,
        FileOutput,
        JsonLinesOutput,
        TableOutput,
        WebhookOutput,
        close_outputs,
        tail,
    )
    from lakehouse.platform import faults

    settings = settings_of(ctx)
    faults.arm(FAULT_STEPS)
    output_format = output_format or ("table" if sys.stdout.isatty() else "json")
    if output_format not in ("table", "json"):
        raise ConfigError(f"--format {output_format!r}: use table or json")
    if out_of_range not in OUT_OF_RANGE_POLICIES:
        raise ConfigError(f"--out-of-range {out_of_range!r}: use {' or '.join(OUT_OF_RANGE_POLICIES)}")
    # In json mode stdout carries alerts only; everything said to the person goes to stderr.
    info = console if output_format == "table" else Console(stderr=True, soft_wrap=True)
    dedup = Deduplicator.load(state_file) if state_file else Deduplicator()
    webhook_output = WebhookOutput(webhook, retries=retries) if webhook else None
    dead_letter_file = FileOutput(dead_letter or settings.paths.data_dir / "alerts" / "dead_letters.jsonl")
    outputs: list = []
    stop = threading.Event()
    try:
        if output_file:
            outputs.append(FileOutput(output_file))
        if webhook_output:
            outputs.append(webhook_output)
        topic = settings.kafka.topics.alerts.name
        where = ", ".join(
            [*([str(output_file)] if output_file else []), *([webhook_output.display_url] if webhook_output else [])]
        )
        info.print(
            f"tailing {topic} at {settings.kafka.bootstrap} as group {group}"
            f"{' from the beginning' if from_beginning else ''}{f', delivering to {where}' if where else ''}"
            f"{f', {len(dedup):,} known alert ids from {state_file}' if state_file else ''}",
            highlight=False,
        )
        # After the status line: the live table then stays the last thing on screen.
        outputs.insert(
            0,
            TableOutput(console, title=f"fraud alerts · {topic}")
            if output_format == "table"
            else JsonLinesOutput(sys.stdout),
        )
        previous_sigterm = signal.signal(signal.SIGTERM, lambda *_: stop.set())  # a service stop: commit, then exit
        # The live table replaced sys.stderr with a proxy that prints above it: log there too, or a
        # warning written behind its back scrambles the table.
        handlers = [h for h in logging.getLogger().handlers if type(h) is logging.StreamHandler]
        log_streams = [(h, old) for h in handlers if (old := h.setStream(sys.stderr)) is not None]
        try:
            report = tail(
                settings,
                group_id=group,
                from_beginning=from_beginning,
                outputs=outputs,
                max_alerts=max_alerts,
                idle_timeout_s=idle_timeout,
                dedup=dedup,
                stop=stop,
                out_of_range=out_of_range,
                dead_letter=dead_letter_file,
            )
        finally:
            signal.signal(signal.SIGTERM, previous_sigterm)
            for handler, stream in log_streams:
                handler.setStream(stream)
    finally:
        close_outputs([*outputs, dead_letter_file])
    committed = ", ".join(f"{p}:{o}" for p, o in sorted(report.committed.items())) or "nothing new"
    info.print(
        f"{report.handled:,} new alerts, {report.duplicates:,} duplicates dropped, "
        f"{report.malformed:,} malformed skipped ({report.received:,} records); committed {committed}; "
        f"stopped: {STOP_REASONS.get(report.stopped_by, report.stopped_by)}",
        highlight=False,
    )
    if report.dead_lettered:
        info.print(
            f"  [yellow]warning[/yellow]: {report.dead_lettered:,} alerts refused for good, set aside in "
            f"{dead_letter_file.path}",
            highlight=False,
        )
    for reset in report.offset_resets:
        info.print(
            f"  [yellow]warning[/yellow]: {reset.describe()}; read on from offset {reset.earliest}",
            highlight=False,
        )
    for partition, offset, problem in report.malformed_records[:5]:
        info.print(f"  malformed at partition {partition} offset {offset}: {problem}", highlight=False, markup=False)
