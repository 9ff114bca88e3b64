"""Model training, evaluation, registry and scoring."""
