"""The scorer's one stateful step: every per-event piece of work, in the task that owns the
transaction's Kafka partition.

:class:`ScoringProcessor` extends the online history operator
(:class:`lakehouse.features.online.UserHistoryProcessor`: lateness, duplicates, the user's history
in the state store) with the rest of :mod:`lakehouse.scoring.kernel`: table features from the
dimension snapshot, the compiled champion, the alert decision and its reasons. It emits ready
Kafka records (``topic``, ``key``, ``value``): one on the scored-rows topic per scored
transaction and one on ``fraud_alerts`` per alert, so the query's only output step is one Kafka
append. The model and snapshot come from the serving folder (:mod:`lakehouse.scoring.serving`).

With ``emit="features"`` it emits the feature rows and scores instead (every state row with its
status), for ``fraudlake features check``: the check runs the scorer's own code.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

import numpy as np

from lakehouse.contract.features import feature_table_columns, feature_table_types
from lakehouse.features.dimensions import table_features
from lakehouse.features.online import ACCEPTED, UserHistoryProcessor
from lakehouse.platform import faults
from lakehouse.scoring import serving
from lakehouse.scoring.kernel import kafka_records, score_state_rows

if TYPE_CHECKING:
    import pandas as pd

RECORDS_DDL = "topic STRING, key STRING, value STRING"
#: Not a Kafka topic: one record per task and micro-batch with where its time went (JSON of
#: :data:`STEP_NAMES` in seconds, ``rows`` and ``alerts``). The query's output step sums them and
#: drops them before the Kafka append.
METRICS_TOPIC = "__fraudlake_step_metrics__"
STEP_NAMES = ("state", "features", "model", "reasons", "records")
#: The steps where ``FRAUDLAKE_FAULT`` can kill the scorer (see :mod:`lakehouse.platform.faults`),
#: in the order a batch reaches them: the ``score`` query's three, then the landing query's merge
#: (its batch starts once the score batch has committed).
AFTER_STATE, AFTER_ALERTS, AFTER_TABLE, BEFORE_COMMIT = "after_state", "after_alerts", "after_table", "before_commit"
FAULT_STEPS = (AFTER_STATE, AFTER_ALERTS, BEFORE_COMMIT, AFTER_TABLE)


def features_ddl() -> str:
    types = feature_table_types()
    columns = [f"{c} {types[c]}" for c in feature_table_columns()]
    return ", ".join([*columns, "score DOUBLE", "model_version INT", "status STRING"])


class ScoringProcessor(UserHistoryProcessor):
    def __init__(
        self,
        *,
        serving_dir: str,
        feedback_delay_days: int,
        scored_topic: str,
        alerts_topic: str,
        emit: str = "records",
        **history,
    ) -> None:
        super().__init__(**history)
        self.serving_dir = serving_dir
        self.feedback_delay_days = feedback_delay_days
        self.scored_topic = scored_topic
        self.alerts_topic = alerts_topic
        self.emit = emit

    def handleInputRows(self, key, rows: Iterator[pd.DataFrame], timerValues) -> Iterator[pd.DataFrame]:
        import pandas as pd

        began = time.perf_counter()
        state = self.advance_rows(rows)
        if state is None:
            return
        timings = {"state": time.perf_counter() - began}
        faults.reached(AFTER_STATE)
        model, snapshot = serving.current(self.serving_dir, model_required=self.emit != "features")
        accepted = state[state["status"].to_numpy() == ACCEPTED].reset_index(drop=True)
        if model is None:  # the feature check before any champion: features only
            features = table_features(accepted, snapshot, feedback_delay_days=self.feedback_delay_days)
            yield self._feature_rows(state, features, np.full(len(features), np.nan), None)
            return
        features, score, scored = score_state_rows(
            accepted,
            snapshot,
            model,
            feedback_delay_days=self.feedback_delay_days,
            scored_at_us=time.time_ns() // 1000,
            timings=timings,
        )
        if self.emit == "features":
            yield self._feature_rows(state, features, score, model.version)
            return
        written = time.perf_counter()
        topics, keys, values = kafka_records(scored, self.scored_topic, self.alerts_topic)
        timings["records"] = time.perf_counter() - written
        figures = {name: timings.get(name, 0.0) for name in STEP_NAMES}
        figures |= {"rows": len(scored), "alerts": len(topics) - len(scored)}
        topics.append(METRICS_TOPIC)
        keys.append(None)
        values.append(json.dumps(figures))
        yield pd.DataFrame({"topic": topics, "key": keys, "value": values})

    @staticmethod
    def _feature_rows(
        state: pd.DataFrame, features: pd.DataFrame, score: np.ndarray, version: int | None
    ) -> pd.DataFrame:
        import pandas as pd

        out = features.assign(
            score=pd.array(score, dtype="Float64"), model_version=pd.array([version] * len(features), dtype="Int32")
        )
        out["status"] = ACCEPTED
        others = state[state["status"].to_numpy() != ACCEPTED]
        if len(others):
            rest = pd.DataFrame({c: others[c].to_numpy() for c in ("transaction_id", "user_id", "status")})
            out = pd.concat([out, rest], ignore_index=True)
        columns = [c.strip().split(" ")[0] for c in features_ddl().split(",")]
        return out.reindex(columns=columns)
