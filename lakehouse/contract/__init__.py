"""The contract layer: what every other layer agrees on, declared once. Stream schemas
(:mod:`.schemas`), table names and columns (:mod:`.tables`), feature declarations (:mod:`.features`),
the alert record (:mod:`.alerts`) and the streaming query names (:mod:`.queries`). Imports only
settings and errors."""
