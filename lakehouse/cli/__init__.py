"""The ``fraudlake`` command line: one Typer app with a sub-app per command group."""

from lakehouse.cli.app import app, main

__all__ = ["app", "main"]
