"""Alerts stage: the downstream consumer of ``fraud_alerts`` (:mod:`lakehouse.alerts.tail`).

The alert record itself is part of the contract (:mod:`lakehouse.contract.alerts`)."""
