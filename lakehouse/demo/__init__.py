"""The whole pipeline run as a user runs it: ``fraudlake demo`` (:mod:`.live`: a first model if
there is none, both streaming jobs, live traffic with alerts, a summary) and ``fraudlake soak``
(:mod:`.soak`: the same pipeline for a long time at a set rate, measured)."""
