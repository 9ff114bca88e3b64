"""Data-quality gates: the Great Expectations (GX Core 1.x) suites of ``expectations/`` run on Spark.

A suite is a versioned JSON file in ``quality.suites_dir``, in GX's own suite format, plus a
``meta.fraudlake`` block that says what it checks:

- ``table``: the lakehouse table (``silver.transactions``; the layer follows ``lakehouse.contract.schemas``);
- ``window``: ``recent`` (the last ``quality.window_days`` event days up to the as-of time),
  ``training`` (a training window given by the caller) or absent (the whole table);
- ``columns``: derived columns added before validation, as Spark SQL expressions (``fraud_flag``
  = the label as a number, so that GX's column mean *is* the fraud rate); ``{as_of}`` is replaced by
  the as-of time.

Values that live in the settings (currencies, fraud-rate bounds, freshness ...) are GX suite
parameters (``{"$PARAMETER": "fraud_rate_max"}``), filled by :func:`suite_parameters`. Every run
appends its results to a file store and rebuilds the Data Docs site in ``settings.data_docs_dir``
(open its ``index.html``), so the docs keep the history of every gate.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakehouse.contract.schemas import LATEST_BY
from lakehouse.contract.tables import latest_sql, table_names
from lakehouse.errors import FraudlakeError
from lakehouse.features.labels import known_labels
from lakehouse.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)
WINDOWS = ("recent", "training")
#: How a table key of a suite maps to the catalog (the layers' databases are configurable).
TABLES = {
    "silver.transactions": lambda n: n.silver("transactions"),
    "silver.users": lambda n: n.silver("users"),
    "silver.merchants": lambda n: n.silver("merchants"),
    "gold.transaction_features": lambda n: n.features,
}


class QualityError(FraudlakeError):
    """A suite that cannot run: unknown name, unreadable file, missing table or window."""


@dataclass(frozen=True)
class Suite:
    name: str
    path: Path
    table: str  # the key in TABLES
    window: str | None
    columns: dict[str, str]
    document: dict[str, Any]  # the file as GX reads it

    @property
    def expectation_count(self) -> int:
        return len(self.document["expectations"])


@dataclass(frozen=True)
class Failure:
    expectation: str
    column: str | None
    observed: str
    notes: str | None = None

    def describe(self) -> str:
        where = f"({self.column}) " if self.column else ""
        return f"{self.expectation} {where}observed {self.observed}"


@dataclass(frozen=True)
class SuiteResult:
    suite: str
    table: str
    table_version: int
    window: str  # human-readable description of what was checked
    rows: int
    evaluated: int
    failures: list[Failure] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return not self.failures

    def as_dict(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "table": self.table,
            "table_version": self.table_version,
            "window": self.window,
            "rows": self.rows,
            "evaluated": self.evaluated,
            "success": self.success,
            "failures": [f.__dict__ for f in self.failures],
        }


@dataclass(frozen=True)
class TrainingWindow:
    date_from: date
    date_to: date  # inclusive


# --------------------------------------------------------------------------- suites


def suite_names(settings: Settings) -> list[str]:
    return sorted(p.stem for p in settings.quality.suites_dir.glob("*.json"))


def load_suite(settings: Settings, name: str) -> Suite:
    path = settings.quality.suites_dir / f"{name}.json"
    if not path.is_file():
        known = ", ".join(suite_names(settings)) or "none"
        raise QualityError(f"unknown suite {name!r} (known: {known}; folder {settings.quality.suites_dir})")
    try:
        document = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise QualityError(f"suite {path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None
    spec = document.get("meta", {}).get("fraudlake", {})
    table, window = spec.get("table"), spec.get("window")
    if table not in TABLES:
        raise QualityError(f"suite {path}: meta.fraudlake.table must be one of {', '.join(TABLES)}, got {table!r}")
    if window is not None and window not in WINDOWS:
        raise QualityError(
            f"suite {path}: meta.fraudlake.window must be one of {', '.join(WINDOWS)} or absent, got {window!r}"
        )
    if document.get("name") != name:
        raise QualityError(f"suite {path}: its name is {document.get('name')!r}, expected {name!r} (the file name)")
    return Suite(name, path, table, window, dict(spec.get("columns", {})), document)


def suite_parameters(settings: Settings) -> dict[str, Any]:
    """The values suites refer to as ``{"$PARAMETER": name}``: all from the settings."""
    q, t = settings.quality, settings.training
    return {
        "currencies": list(settings.data.currencies),
        "max_amount": settings.data.max_amount,
        "fraud_rate_min": q.fraud_rate[0],
        "fraud_rate_max": q.fraud_rate[1],
        "freshness_hours": q.freshness_hours,
        "non_null_share_min": 1.0 - q.max_null_share,
        "training_min_rows": q.training_min_rows,
        "training_min_frauds": q.training_min_frauds,
        "training_min_days": t.gap_days + t.validation_days + 1,
    }


# --------------------------------------------------------------------------- data


def suite_frame(
    spark: SparkSession,
    settings: Settings,
    suite: Suite,
    *,
    as_of: datetime,
    as_of_version: int | None = None,
    training: TrainingWindow | None = None,
) -> tuple[DataFrame, str, int, str]:
    """The DataFrame a suite validates: (frame, table name, Delta version read, window described)."""
    from pyspark.sql import functions as F

    from lakehouse.platform.delta import latest_version, read_version

    names = table_names(settings)
    name = TABLES[suite.table](names)
    if not spark.catalog.tableExists(name):
        raise QualityError(
            f"suite {suite.name}: table {name} does not exist yet (run the pipeline that creates it first)"
        )
    # The latest-version views (silver.users, ...) are read through their versions table's Delta
    # version: the version a gate reports and pins is that table's.
    stream = next((s for s in LATEST_BY if names.silver(s) == name), None)
    versioned = name if stream is None else names.versions(stream)
    version = latest_version(spark, versioned) if as_of_version is None else as_of_version
    try:
        if stream is None:
            frame = read_version(spark, name, version=version)
        else:
            frame = spark.sql(latest_sql(names, stream, version))
        frame.schema  # noqa: B018 - resolves the version now, for a clear error
    except Exception as exc:
        raise QualityError(
            f"suite {suite.name}: {name} has no version {version} ({str(exc).splitlines()[0]})"
        ) from None
    described = "whole table"
    if suite.window == "recent":
        first = as_of.date() - timedelta(days=settings.quality.window_days - 1)
        frame = frame.where(
            (F.col("event_date") >= F.lit(first))
            & (F.col("event_time") <= F.lit(as_of.astimezone(UTC).replace(tzinfo=None)))
        )
        described = f"events {first}..{as_of:%Y-%m-%d %H:%M:%S} UTC"
    elif suite.window == "training" and training is not None:
        frame = frame.where(F.col("event_date").between(F.lit(training.date_from), F.lit(training.date_to)))
        # What training will learn from: the labels known at the run's cut.
        frame = known_labels(spark, settings, frame, F.lit(as_of))
        described = f"training window {training.date_from}..{training.date_to}, labels known at {as_of:%Y-%m-%d %H:%M}"
    elif suite.window == "training":
        described = "whole table (what `fraudlake train` reads by default)"
    return with_derived_columns(frame, suite, as_of), name, version, described


def with_derived_columns(frame: DataFrame, suite: Suite, as_of: datetime) -> DataFrame:
    """The suite's ``meta.fraudlake.columns`` added to ``frame`` (``{as_of}`` = the as-of time, UTC)."""
    from pyspark.sql import functions as F

    stamp = as_of.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    for column, expression in suite.columns.items():
        frame = frame.withColumn(column, F.expr(expression.replace("{as_of}", stamp)))
    return frame


# --------------------------------------------------------------------------- GX


def _context(settings: Settings):
    """An ephemeral GX context whose validation results and Data Docs live on disk."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        analytics_enabled=False,
        progress_bars=ProgressBarsConfig(globally=False),
    )
    config.stores["validation_results_store"] = {
        "class_name": "ValidationResultsStore",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(results_dir(settings))},
    }
    config.data_docs_sites = {
        "fraudlake": {
            "class_name": "SiteBuilder",
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            "store_backend": {
                "class_name": "TupleFilesystemStoreBackend",
                "base_directory": str(settings.data_docs_dir),
            },
        }
    }
    return gx.get_context(project_config=config, mode="ephemeral")


def results_dir(settings: Settings) -> Path:
    return settings.paths.data_dir / "quality" / "results"


def observed(result: dict[str, Any]) -> str:
    """What GX saw, in a line: the aggregate observed value, or the unexpected share with examples."""
    if "observed_value" in result:
        value = result["observed_value"]
        if isinstance(value, float):
            return f"{value:.6g}"
        if isinstance(value, list) and result.get("details", {}).get("mismatched"):
            return f"{value} (mismatched: {result['details']['mismatched']})"
        return str(value)
    if "unexpected_count" in result:
        examples = result.get("partial_unexpected_list") or []
        shown = f", e.g. {examples[:5]}" if examples else ""
        share = result.get("unexpected_percent") or 0
        return f"{result['unexpected_count']:,} of {result.get('element_count', 0):,} unexpected ({share:.2f}%){shown}"
    return "no value (see Data Docs)"


class Validator:
    """One GX context for a command: runs suites on DataFrames, stores results, rebuilds Data Docs."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.context = _context(settings)
        self.source = self.context.data_sources.add_spark(
            name="fraudlake", persist=False
        )  # check() persists the frame itself
        self.parameters = suite_parameters(settings)
        self._checks = 0

    def check(
        self, suite: Suite, frame: DataFrame, *, table: str, version: int, window: str, run_name: str | None = None
    ) -> SuiteResult:
        import great_expectations as gx
        from great_expectations.core.run_identifier import RunIdentifier

        frame = frame.persist()
        try:
            rows = frame.count()
            self._checks += 1  # an asset per check: one context may check the same suite twice
            asset = self.source.add_dataframe_asset(name=f"{suite.name}:{table}@v{version}#{self._checks}")
            batch = asset.add_batch_definition_whole_dataframe(suite.name)
            gx_suite = self.context.suites.add_or_update(
                gx.ExpectationSuite(**{k: v for k, v in suite.document.items() if k != "id"})
            )
            definition = self.context.validation_definitions.add_or_update(
                gx.ValidationDefinition(name=suite.name, data=batch, suite=gx_suite)
            )
            checkpoint = self.context.checkpoints.add_or_update(
                gx.Checkpoint(
                    name=f"fraudlake-{suite.name}",
                    validation_definitions=[definition],
                    actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs", site_names=["fraudlake"])],
                    result_format={"result_format": "SUMMARY"},
                )
            )
            run = checkpoint.run(
                batch_parameters={"dataframe": frame},
                expectation_parameters=self.parameters,
                run_id=RunIdentifier(run_name=run_name or f"{suite.name}@v{version}"),
            )
        finally:
            frame.unpersist()
        failures: list[Failure] = []
        evaluated = 0
        for validation in run.run_results.values():
            for r in validation.results:
                evaluated += 1
                if r.success:
                    continue
                config = r.expectation_config
                info = r.exception_info or {}
                seen = (
                    f"an error: {info.get('exception_message')}"
                    if info.get("raised_exception")
                    else observed(r.result or {})
                )
                failures.append(
                    Failure(config.type, config.kwargs.get("column"), seen, (config.meta or {}).get("notes"))
                )
        result = SuiteResult(suite.name, table, version, window, rows, evaluated, failures)
        verdict = "passed" if result.success else f"{len(failures)} of {evaluated} expectations failed"
        log.info("suite %s on %s v%s (%s, %s rows): %s", suite.name, table, version, window, rows, verdict)
        for failure in failures:
            log.warning("suite %s failed: %s", suite.name, failure.describe())
        return result


def validate(
    spark: SparkSession,
    settings: Settings,
    suites: list[Suite],
    *,
    as_of: datetime | None = None,
    as_of_version: int | None = None,
    training: TrainingWindow | None = None,
    training_version: int | None = None,
    run_name: str | None = None,
) -> list[SuiteResult]:
    """Run the suites on their tables with one GX context; results to the file store, Data Docs
    rebuilt. ``training_version`` (a retraining run's pin) is the Delta version read by suites of
    the training window; ``as_of_version`` the one read by the others."""
    as_of = as_of or datetime.now(UTC)
    validator = Validator(settings)
    results = []
    for suite in suites:
        version = training_version if suite.window == "training" and training_version is not None else as_of_version
        frame, table, read, window = suite_frame(
            spark, settings, suite, as_of=as_of, as_of_version=version, training=training
        )
        results.append(validator.check(suite, frame, table=table, version=read, window=window, run_name=run_name))
    return results


def docs_index(settings: Settings) -> Path:
    return settings.data_docs_dir / "index.html"
