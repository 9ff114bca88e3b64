"""Scoring stage: the real-time scorer (:mod:`.scorer`): online features → the champion →
``fraud_alerts`` and ``gold.scored_transactions``."""
