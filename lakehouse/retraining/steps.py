"""The steps of a retraining run, one data interval each: what the ``fraud_model_retraining`` DAG
calls (``fraudlake retrain <step> --interval-end T``), each step a command that can be re-run.

A run is keyed by the end of its data interval. Its state is a JSON file
(``<data_dir>/retraining/<key>.json``) that each step reads and extends:

1. gates: ``fraudlake validate ... --interval-end T`` records each suite's result here;
2. ``pin``: the Delta versions of the tables and the training window (the
   ``orchestration.training_window_days`` whole days before the interval's end); pinned once, so a
   re-run trains and evaluates on exactly the same data;
3. ``train``: a challenger trained on the pin, registered (never promoted here) and tagged with the
   run key, so a re-run finds it instead of training a second one;
4. ``evaluate``: challenger and champion scored on the same validation window (from the registry);
5. ``promote``: carries out the evaluation's decision, only if the champion is still the one it
   was compared with; a repeat is a no-op;
6. ``await-scorer``: a scorer that is running (it scored transactions recently) must use the new
   champion within ``orchestration.scorer_reload_timeout_s`` (it hot-reloads; nothing is
   restarted);
7. ``record``: the outcome as one row of ``gold.retraining_runs`` (MERGE by run key), whatever
   happened; it exits non-zero when the run did not complete (a gate failed, a step failed).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakehouse.contract.tables import table_names
from lakehouse.errors import FraudlakeError
from lakehouse.platform.waits import wait_until
from lakehouse.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from lakehouse.quality.suites import SuiteResult, TrainingWindow

log = logging.getLogger(__name__)
RUN_TAG = "retraining_run"
#: The gates of a run, in order: silver and gold before anything changes, the training set after the pin.
DATA_GATES = ("silver_transactions", "silver_users", "silver_merchants", "gold_transaction_features")
TRAINING_GATE = "training_set"


class RetrainingError(FraudlakeError):
    """A step that cannot run now: an earlier step has not run, or its result forbids this one."""


def parse_interval_end(text: str) -> datetime:
    """An Airflow ``data_interval_end`` (ISO 8601; no zone = UTC) as an aware UTC datetime."""
    try:
        value = datetime.fromisoformat(text.strip().replace(" ", "T"))
    except ValueError:
        raise RetrainingError(
            f"--interval-end {text!r}: not an ISO 8601 time (e.g. 2026-11-29T03:00:00+00:00)"
        ) from None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)


@dataclass
class Run:
    """The state of one retraining run (one data interval), persisted after every step."""

    key: str
    interval_end: datetime
    path: Path
    state: dict[str, Any]

    @classmethod
    def open(cls, settings: Settings, interval_end: datetime) -> Run:
        key = interval_end.strftime("%Y%m%dT%H%M%SZ")
        path = settings.paths.data_dir / "retraining" / f"{key}.json"
        state = (
            json.loads(path.read_text())
            if path.is_file()
            else {"run": key, "interval_end": interval_end.isoformat(), "gates": {}}
        )
        return cls(key, interval_end, path, state)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=2, default=str) + "\n")
        os.replace(tmp, self.path)  # a crash mid-write never leaves half a state

    def require(self, step: str, needed_by: str) -> dict[str, Any]:
        if not self.state.get(step):
            raise RetrainingError(f"run {self.key}: `{needed_by}` needs `{step}` to have run first (state {self.path})")
        return self.state[step]

    def record_gates(self, results: list[SuiteResult]) -> None:
        for r in results:
            self.state["gates"][r.suite] = r.as_dict()
        self.save()

    @property
    def failed_gates(self) -> list[str]:
        return [name for name, gate in self.state["gates"].items() if not gate["success"]]

    def training_window(self) -> TrainingWindow:
        from lakehouse.quality.suites import TrainingWindow

        pin = self.require("pin", "validate training_set")
        return TrainingWindow(date.fromisoformat(pin["date_from"]), date.fromisoformat(pin["date_to"]))


# --------------------------------------------------------------------------- steps


def pin(spark: SparkSession, settings: Settings, run: Run) -> dict[str, Any]:
    """Pin the tables' Delta versions and the training window, once per run."""
    from lakehouse.ml.training import pin_versions

    if run.state.get("pin"):
        log.info("run %s: already pinned %s", run.key, run.state["pin"])
        return run.state["pin"]
    last_day = run.interval_end.date() - timedelta(days=1)  # the last whole day before the interval's end
    first_day = last_day - timedelta(days=settings.orchestration.training_window_days - 1)
    names = table_names(settings)
    versions = pin_versions(spark, settings)
    run.state["pin"] = {
        "table_versions": versions,
        "features_version": versions[names.features],
        "date_from": first_day.isoformat(),
        "date_to": last_day.isoformat(),
        "pinned_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    run.save()
    return run.state["pin"]


def train_challenger(session: Callable[[], SparkSession], settings: Settings, run: Run) -> dict[str, Any]:
    """Train a challenger on the pin (registered, not promoted); a re-run finds the one it made.
    ``session`` gives the SparkSession, asked for only when there is something to train (a retried
    task that finds its challenger starts no driver)."""
    from lakehouse.ml import registry
    from lakehouse.ml.training import train

    pinned = run.require("pin", "retrain train")
    if run.failed_gates:
        raise RetrainingError(f"run {run.key}: gates failed ({', '.join(run.failed_gates)}); no training")
    if TRAINING_GATE not in run.state["gates"]:
        raise RetrainingError(
            f"run {run.key}: the {TRAINING_GATE} gate has not run "
            f"(fraudlake validate {TRAINING_GATE} --interval-end ...)"
        )
    existing = [v for v in registry.versions(settings) if v.tags.get(RUN_TAG) == run.key]
    if existing:
        version = max(v.version for v in existing)
        log.info("run %s: challenger version %s exists already (trained by an earlier attempt)", run.key, version)
        run.state["challenger"] = {"version": version, "reused": True}
    else:
        result = train(
            session(),
            settings,
            date_from=date.fromisoformat(pinned["date_from"]),
            date_to=date.fromisoformat(pinned["date_to"]),
            promote=False,
            table_versions=pinned["table_versions"],
            as_of=run.interval_end,
        )
        registry.tag(settings, result.version, RUN_TAG, run.key)
        run.state["challenger"] = {
            "version": result.version,
            "split": result.split.describe(),
            "rows_train": result.rows_train,
            "average_precision": result.evaluation.average_precision,
            "report": str(result.report_path),
            "reused": False,
        }
    run.save()
    return run.state["challenger"]


def evaluate(spark: SparkSession, settings: Settings, run: Run) -> dict[str, Any]:
    """Challenger against the champion on the pin's validation window; decides, changes nothing."""
    from lakehouse.ml.pipeline import with_label
    from lakehouse.ml.training import compare, pinned_split

    pinned = run.require("pin", "retrain evaluate")
    challenger = run.require("challenger", "retrain evaluate")
    if run.state.get("promotion", {}).get("promoted"):
        return run.state["evaluation"]  # promoted already: re-evaluating against itself would say "keep"
    split, _, validation = pinned_split(
        spark,
        settings,
        pinned["table_versions"],
        date_from=date.fromisoformat(pinned["date_from"]),
        date_to=date.fromisoformat(pinned["date_to"]),
        as_of=run.interval_end,
    )
    c = compare(settings, challenger["version"], with_label(validation))
    run.state["evaluation"] = {
        "validation": f"{split.validation_from}..{split.validation_to}",
        "challenger": c.challenger,
        "champion": c.champion,
        "challenger_ap": c.challenger_ap,
        "champion_ap": c.champion_ap,
        "promote": c.promote,
        "reason": c.reason,
    }
    run.save()
    return run.state["evaluation"]


def promote(settings: Settings, run: Run, session: Callable[[], SparkSession] | None = None) -> dict[str, Any]:
    """Act on the evaluation: promote the challenger if it won (and the champion has not changed
    since); with ``training.shadow_days``, through a shadow period instead
    (:mod:`lakehouse.retraining.shadowing`; ``session`` gives Spark to judge a shadow's scores)."""
    from lakehouse.ml.training import Comparison, apply

    e = run.require("evaluation", "retrain promote")
    previous = run.state.get("promotion") or {}
    if previous.get("promoted") or previous.get("shadow"):
        return previous  # done before: a repeat changes nothing
    if settings.training.shadow_days:
        from lakehouse.ml.shadow import compare_shadow
        from lakehouse.retraining.shadowing import run_shadow_step

        if session is None:
            raise RetrainingError("a shadow period needs Spark to compare the shadow's scores")
        before = e["champion"]
        decision = run_shadow_step(
            settings, e["challenger"], e["promote"], lambda version: compare_shadow(session(), settings, version)
        )
        after = decision.promote if decision.promote is not None else before
        return _record_promotion(
            run, decision.promote is not None, before, after, decision.reason, shadow=decision.shadow
        )
    comparison = Comparison(
        e["challenger"], e["champion"], e["challenger_ap"], e["champion_ap"], e["promote"], e["reason"]
    )
    p = apply(settings, comparison)
    return _record_promotion(run, p.promoted, p.champion_before, p.champion_after, p.reason)


def _record_promotion(
    run: Run, promoted: bool, before: int | None, after: int | None, reason: str, **extra: Any
) -> dict[str, Any]:
    """The run's promotion record (what ``await_scorer`` and ``record`` read), saved."""
    run.state["promotion"] = {
        "promoted": promoted,
        "champion_before": before,
        "champion_after": after,
        **extra,
        "reason": reason,
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    run.save()
    return run.state["promotion"]


def await_scorer(
    spark: SparkSession, settings: Settings, run: Run, *, timeout_s: float | None = None, poll_s: float = 2.0
) -> dict[str, Any]:
    """After a promotion: a running scorer must score with the new champion before the deadline.

    "Running" = it scored a transaction in the ``timeout_s`` before the promotion. No running
    scorer is not an error: the next one to start loads the champion."""
    p = run.require("promotion", "retrain await-scorer")
    timeout_s = settings.orchestration.scorer_reload_timeout_s if timeout_s is None else timeout_s
    if not p["promoted"]:
        outcome = {"status": "nothing to reload", "detail": "the champion did not change"}
    else:
        outcome = _watch_scorer(
            spark, settings, p["champion_after"], datetime.fromisoformat(p["at"]), timeout_s, poll_s
        )
    run.state["scorer"] = outcome
    run.save()
    if outcome["status"] == "still on the old model":
        raise RetrainingError(f"run {run.key}: {outcome['detail']}")
    return outcome


def _watch_scorer(
    spark: SparkSession, settings: Settings, version: int, promoted_at: datetime, timeout_s: float, poll_s: float
) -> dict[str, Any]:
    from pyspark.sql import functions as F

    scored = table_names(settings).scored
    if not spark.catalog.tableExists(scored):
        return {
            "status": "no scorer",
            "detail": f"{scored} does not exist: no scorer has run; the first one loads champion {version}",
        }
    since = promoted_at.astimezone(UTC).replace(tzinfo=None)
    last = spark.table(scored).agg(F.max("scored_at")).first()[0]
    if last is None or last < since - timedelta(seconds=timeout_s):
        return {
            "status": "no scorer",
            "detail": f"nothing scored since {last or 'ever'}: no scorer is running; "
            f"the next one loads champion {version}",
        }
    seen = [0]

    def reloaded() -> dict[str, str] | None:
        row = (
            spark.table(scored)
            .where(F.col("scored_at") >= F.lit(since))
            .agg(
                F.max(F.when(F.col("model_version") == version, F.col("scored_at"))).alias("new"),
                F.count("*").alias("rows"),
            )
            .first()
        )
        seen[0] = row.rows
        if row.new is None:
            return None
        return {"status": "reloaded", "detail": f"the scorer scores with version {version} since {row.new} UTC"}

    # Polling the table with a deadline: the scorer reloads before its next batch.
    try:
        return wait_until(reloaded, timeout_s=timeout_s, what=f"version {version} in {scored}", poll_s=poll_s)
    except TimeoutError:
        return {
            "status": "still on the old model",
            "detail": f"the scorer scored {seen[0]:,} transactions since the promotion "
            f"but none with version {version} within {timeout_s:g} s",
        }


def outcome(run: Run) -> dict[str, Any]:
    """The run's result in one row: status, where it stopped, versions and scores."""
    s = run.state
    failed = run.failed_gates
    evaluation, promotion = s.get("evaluation") or {}, s.get("promotion") or {}
    if failed:
        status, stopped_at = "gate_failed", ", ".join(failed)
    elif promotion:
        status = "promoted" if promotion["promoted"] else "shadowing" if promotion.get("shadow") else "kept_champion"
        stopped_at = None
    else:
        status = "incomplete"
        stopped_at = next(step for step in ("gates", "pin", "challenger", "evaluation", "promotion") if not s.get(step))
    failures = [
        f"{suite}: {f['expectation']} ({f['column']}) observed {f['observed']}"
        for suite in failed
        for f in s["gates"][suite]["failures"]
    ]
    pinned = s.get("pin") or {}
    return {
        "run_key": run.key,
        "interval_end": run.interval_end.replace(tzinfo=None),
        "status": status,
        "stopped_at": stopped_at,
        "features_version": pinned.get("features_version"),
        "window_from": date.fromisoformat(pinned["date_from"]) if pinned else None,
        "window_to": date.fromisoformat(pinned["date_to"]) if pinned else None,
        "challenger_version": (s.get("challenger") or {}).get("version"),
        "champion_before": promotion.get("champion_before", evaluation.get("champion")),
        "champion_after": promotion.get("champion_after", evaluation.get("champion")),
        "challenger_ap": evaluation.get("challenger_ap"),
        "champion_ap": evaluation.get("champion_ap"),
        "reason": promotion.get("reason") or evaluation.get("reason"),
        "scorer": (s.get("scorer") or {}).get("status"),
        "failed_expectations": failures,
        "recorded_at": datetime.now(UTC).replace(tzinfo=None),
        "state": json.dumps(s, default=str),
    }


def record(spark: SparkSession, settings: Settings, run: Run) -> dict[str, Any]:
    """Write the outcome to gold.retraining_runs (one row per run key, replaced on a re-run)."""
    from delta.tables import DeltaTable

    from lakehouse.contract.tables import RETRAINING_COLUMNS, create_tables

    row = outcome(run)
    names = create_tables(spark, settings)
    frame = spark.createDataFrame(
        [tuple(row[c] for c, _ in RETRAINING_COLUMNS)], ", ".join(f"`{c}` {t}" for c, t in RETRAINING_COLUMNS)
    )
    (
        DeltaTable.forName(spark, names.retraining_runs)
        .alias("t")
        .merge(frame.alias("s"), "t.run_key = s.run_key")
        .whenMatchedUpdateAll()
        .whenNotMatchedInsertAll()
        .execute()
    )
    run.state["recorded"] = row["status"]
    run.save()
    return row
