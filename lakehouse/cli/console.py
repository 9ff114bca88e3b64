"""The analyst console: ``fraudlake console`` (serve it), ``console account add`` (an account)."""

from __future__ import annotations

from typing import Annotated

import typer

from lakehouse.cli.common import console as terminal
from lakehouse.cli.common import settings_of, spark_session

app = typer.Typer()
console_app = typer.Typer(
    help="The analysts' web console: the alert queue, cases and their decisions (label events). "
    "Without a sub-command: serve it until Ctrl-C.",
    invoke_without_command=True,
)
account_app = typer.Typer(help="Console accounts (name, role, scrypt password hash).", no_args_is_help=True)
app.add_typer(console_app, name="console")
console_app.add_typer(account_app, name="account")


@console_app.callback()
def serve(ctx: typer.Context) -> None:
    """Serve the console on console.host:console.port (loopback by default) until Ctrl-C or SIGTERM.

    Needs the broker, an account (`fraudlake console account add`) and the catalog. Example: fraudlake console
    """
    if ctx.invoked_subcommand is not None:
        return
    import signal

    from lakehouse.console.serve import Console

    settings = settings_of(ctx)

    def on_sigterm(_signum, _frame) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_sigterm)
    running = Console(settings, spark_session(ctx, "fraudlake-console"))
    running.start()
    terminal.print(f"console at [bold]{running.url}[/] (Ctrl-C stops); log in with an account of `console account add`")
    try:
        running.wait()
    except KeyboardInterrupt:
        pass
    finally:
        running.stop()


@account_app.command("add")
def account_add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The login name.")],
    role: Annotated[str, typer.Option(help="analyst or admin.")] = "analyst",
    password_stdin: Annotated[
        bool, typer.Option(help="Read the password from the first line of stdin (for scripts), instead of asking.")
    ] = False,
) -> None:
    """Add an account (or give an existing one a new role and password) in console.accounts_file.

    Example: fraudlake console account add ana --role analyst (asks for the password)
    """
    import sys

    from lakehouse.console.accounts import add_account

    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:  # never an option: a password on the command line stays in the shell's history
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    path = add_account(settings_of(ctx), name, role, password)
    terminal.print(f"account {name} ({role}) written to {path}")
