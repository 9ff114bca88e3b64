"""Benchmarks (application layer): commands that measure a path against the engine's own floor in one run
and write their figures to ``docs/benchmarks/`` through one report writer (:mod:`.report`)."""
