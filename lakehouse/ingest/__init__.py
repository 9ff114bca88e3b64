"""Ingest stage: Kafka → bronze → silver (with quarantine), and files → bronze/silver.

Pure transforms in :mod:`.transforms`; the streaming queries in :mod:`.queries`; user files in
:mod:`.files`; the bronze = silver + quarantine check in :mod:`.reconcile`."""
