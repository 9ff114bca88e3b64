"""ML stage: the training pipeline (:mod:`.pipeline`, pure), fraud metrics (:mod:`.metrics`), alert
reasons (:mod:`.explain`), the training run (:mod:`.training`) and its report (:mod:`.report`), the
MLflow registry (:mod:`.registry`) and backtests (:mod:`.backtest`)."""
