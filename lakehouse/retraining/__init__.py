"""Retraining stage: the steps of one retraining run (:mod:`.steps`) and its data-quality gates
(:mod:`.gates`), which the ``fraud_model_retraining`` DAG calls through the CLI."""
