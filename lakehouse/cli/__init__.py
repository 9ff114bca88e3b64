"""The ``fraudlake`` command line: one Typer app (:mod:`lakehouse.cli.root`) assembled from a
sub-app per command group (the other modules of this package)."""

from lakehouse.cli.root import app, main

__all__ = ["app", "main"]
