"""``python -m lakehouse ...`` = the ``fraudlake`` command (for schedulers that run an interpreter)."""

from lakehouse.cli import main

main()
