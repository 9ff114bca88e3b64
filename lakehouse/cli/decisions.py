"""The decision service: ``fraudlake serve`` (approve / review / decline over HTTP, before the money moves)."""

from __future__ import annotations

from typing import Annotated

import typer

from lakehouse.cli.common import console as terminal
from lakehouse.cli.common import settings_of, spark_session

app = typer.Typer()


@app.command("serve")
def serve(
    ctx: typer.Context,
    warm: Annotated[
        bool,
        typer.Option(
            help="First rebuild the online store from silver and the topic (after a loss of Redis, or a new world)."
        ),
    ] = False,
    port: Annotated[int | None, typer.Option(help="The HTTP port (default: decisions.port).")] = None,
) -> None:
    """Serve POST /v1/decisions on decisions.host:decisions.port (loopback by default) until Ctrl-C or SIGTERM.

    Decides with the stream scorer's published champion and features; needs the broker, Redis
    (`fraudlake redis up`) and a scorer that has started once (it publishes the model).
    Example: fraudlake serve --warm
    """
    import signal
    import threading

    from lakehouse.decisions.serve import DecisionServer
    from lakehouse.decisions.service import AFTER_SEND
    from lakehouse.platform import faults
    from lakehouse.platform.entrypoint import freeze_heap

    settings = settings_of(ctx)
    faults.arm((AFTER_SEND,))
    stop = threading.Event()

    def on_signal(_signum, _frame) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server = DecisionServer(settings, port=port)
    server.start()
    try:
        if warm:
            from lakehouse.decisions.warm import warm_store

            warmed = warm_store(spark_session(ctx, "fraudlake-serve-warm"), settings, server.service)
            terminal.print(
                f"online store warmed: {warmed.users} users (silver version {warmed.silver_version}, "
                f"{warmed.from_topic} records from the topic)"
            )
        freeze_heap()
        terminal.print(f"decisions at [bold]{server.url}/v1/decisions[/] (Ctrl-C stops)")
        stop.wait()
    finally:
        server.stop()
