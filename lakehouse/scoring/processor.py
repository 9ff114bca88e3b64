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
import logging
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import numpy as np

from lakehouse.contract.features import feature_table_columns, feature_table_types
from lakehouse.features.columns import Columns, frame, size
from lakehouse.features.dimensions import table_features
from lakehouse.features.online import ACCEPTED, UserHistoryProcessor, batch_frame
from lakehouse.ingest.poison import error_reason, records_to_blame
from lakehouse.platform import faults
from lakehouse.scoring import serving
from lakehouse.scoring.kernel import kafka_records, poison_value, score_state_rows

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

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
        poison_marker: str | None = None,
        **history,
    ) -> None:
        super().__init__(**history)
        self.poison_marker = poison_marker
        self.serving_dir = serving_dir
        self.feedback_delay_days = feedback_delay_days
        self.scored_topic = scored_topic
        self.alerts_topic = alerts_topic
        self.emit = emit

    def handleInputRows(self, key, rows: Iterator[pd.DataFrame], timerValues) -> Iterator[pd.DataFrame]:
        import pandas as pd

        batch = batch_frame(rows)
        if batch.empty:
            return
        timings: dict[str, float] = {}
        try:
            out, commit = self._process(batch, timings)
            poison: list[tuple[int, str]] = []
        except Exception as exc:
            if self.emit != "records":
                raise
            poison = self._poison(batch, exc)
            kept = batch.drop(index=[i for i, _ in poison]).reset_index(drop=True)
            timings = {}
            out, commit = self._process(kept, timings) if len(kept) else (None, lambda: None)
        commit()
        faults.reached(AFTER_STATE)
        if self.emit == "features":
            yield out
            return
        topics, keys, values = ([], [], []) if out is None else (list(c) for c in (out.topic, out.key, out.value))
        rows_scored = len(topics) - sum(t == self.alerts_topic for t in topics)
        for index, reason in poison:
            topics.append(self.scored_topic)
            keys.append(str(batch.at[index, "user_id"]))
            values.append(poison_value(batch.loc[index], reason))
        figures = {name: timings.get(name, 0.0) for name in STEP_NAMES}
        figures |= {"rows": rows_scored, "alerts": len(topics) - rows_scored - len(poison), "poison": len(poison)}
        topics.append(METRICS_TOPIC)
        keys.append(None)
        values.append(json.dumps(figures))
        yield pd.DataFrame({"topic": topics, "key": keys, "value": values})

    def _process(self, batch: pd.DataFrame, timings: dict[str, float]) -> tuple[pd.DataFrame, Callable[[], None]]:
        """``batch`` → (its output rows, the state writes), writing nothing: features and scores
        (``emit="features"``) or the Kafka records (``topic``, ``key``, ``value``)."""
        import pandas as pd

        began = time.perf_counter()
        state, commit = self.advance(batch)
        timings["state"] = time.perf_counter() - began
        model, snapshot = serving.current(self.serving_dir, model_required=self.emit != "features")
        accepted = state[state["status"].to_numpy() == ACCEPTED].reset_index(drop=True)
        faults.refuse_poison(accepted["transaction_id"], self.poison_marker)
        if model is None:  # the feature check before any champion: features only
            features = table_features(accepted, snapshot, feedback_delay_days=self.feedback_delay_days)
            return self._feature_rows(state, features, np.full(size(features), np.nan), None), commit
        features, score, scored = score_state_rows(
            accepted,
            snapshot,
            model,
            feedback_delay_days=self.feedback_delay_days,
            scored_at_us=time.time_ns() // 1000,
            timings=timings,
            shadow=serving.shadow(self.serving_dir) if self.emit == "records" else None,
        )
        if self.emit == "features":
            return self._feature_rows(state, features, score, model.version), commit
        written = time.perf_counter()
        topics, keys, values = kafka_records(scored, self.scored_topic, self.alerts_topic)
        timings["records"] = time.perf_counter() - written
        return pd.DataFrame({"topic": topics, "key": keys, "value": values}), commit

    def _poison(self, batch: pd.DataFrame, exc: Exception) -> list[tuple[int, str]]:
        """The rows of a batch that failed with ``exc`` that are to blame
        (:func:`lakehouse.ingest.poison.records_to_blame`), with ``poison_record:<error>``;
        re-raises ``exc`` when no record is."""

        def error(lo: int, hi: int) -> str | None:
            try:
                self._process(batch.iloc[lo:hi].reset_index(drop=True), {})
            except Exception as failed:
                return error_reason(failed)
            return None

        found = records_to_blame(len(batch), error)
        if not found:
            raise exc
        for index, reason in found:
            row = batch.loc[index]
            log.error(
                "poison record %s/%s quarantined by the scorer: %s", row.kafka_partition, row.kafka_offset, reason
            )
        return found

    @staticmethod
    def _feature_rows(state: pd.DataFrame, features: Columns, score: np.ndarray, version: int | None) -> pd.DataFrame:
        import pandas as pd

        out = frame(features).assign(
            score=pd.array(score, dtype="Float64"), model_version=pd.array([version] * len(score), dtype="Int32")
        )
        out["status"] = ACCEPTED
        others = state[state["status"].to_numpy() != ACCEPTED]
        if len(others):
            rest = pd.DataFrame({c: others[c].to_numpy() for c in ("transaction_id", "user_id", "status")})
            out = pd.concat([out, rest], ignore_index=True)
        columns = [c.strip().split(" ")[0] for c in features_ddl().split(",")]
        return out.reindex(columns=columns)
