"""Alerts stage: the downstream consumer of ``fraud_alerts``.

* :mod:`lakehouse.alerts.tail`: the consumer loop (poll, handle, commit); re-exports the names below.
* :mod:`lakehouse.alerts.parsing`: a record's value → the alert, or what is wrong with it (pure).
* :mod:`lakehouse.alerts.dedup`: repeated alert ids, in memory and in a state file.
* :mod:`lakehouse.alerts.outputs`: JSON lines, file and terminal-table outputs.
* :mod:`lakehouse.alerts.webhook`: the webhook output.
* :mod:`lakehouse.alerts.errors`: the stage's errors (pure).

The alert record itself is part of the contract (:mod:`lakehouse.contract.alerts`)."""
