"""The scorer's driver side: which model serves, and publishing it with the dimension snapshot.

- :func:`load_scoring_model`: a registry version made ready to serve (its compiled form, checked
  against MLlib's scores at registration or now; threshold and reason profile known);
- :class:`Champion`: the registry's champion, reloaded when it changes; one that cannot serve is
  refused and the current one keeps serving;
- :class:`Shadow`: the registry's shadow version, scored beside the champion without alerts;
- :class:`Publisher`: puts the champion, the shadow version and the dimension tables (at their current Delta
  versions) in the serving folder (:mod:`lakehouse.scoring.serving`) whenever either changes.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lakehouse.contract.tables import table_names
from lakehouse.ml import registry
from lakehouse.ml.explain import PROFILE_TAG, Profile, learn_profile
from lakehouse.platform.delta import table_location
from lakehouse.scoring import serving
from lakehouse.scoring.kernel import ServingModel
from lakehouse.settings import Settings

if TYPE_CHECKING:
    from pyspark.ml import PipelineModel
    from pyspark.sql import SparkSession
    from pyspark.sql.streaming import StreamingQuery

    from lakehouse.ml.compiled import CompiledModel

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ScoringModel:
    version: int
    threshold: float
    profile: Profile
    compiled: CompiledModel
    #: MLlib's form, when it was loaded to check the version (see :func:`load_scoring_model`).
    loaded: PipelineModel | None = None

    def serving(self, top_reasons: int) -> ServingModel:
        return ServingModel(self.version, self.threshold, self.compiled, self.profile, top_reasons)

    def mllib(self, settings: Settings) -> PipelineModel:
        """MLlib's form of the version (loaded now if serving did not need it)."""
        return self.loaded if self.loaded is not None else registry.load(settings, self.version)


def load_scoring_model(spark: SparkSession, settings: Settings, version: int) -> ScoringModel:
    """A version made ready to serve: its threshold, its compiled form and its reason profile
    (learnt and kept as a tag the first time). A version whose stored compiled form passed its
    parity check at registration, with its files unchanged since (:func:`registry.served_form`),
    serves that form once its columns are found in the feature table; any other version is loaded
    with MLlib and must score the feature table, its compiled form giving the same scores.
    RegistryError when it cannot serve."""
    from lakehouse.ml.compiled import NotCompilable

    info = registry.version_info(settings, version)
    tags = info.tags
    try:
        threshold = float(tags["threshold"])
    except (KeyError, ValueError):
        raise registry.RegistryError(f"model version {version} has no usable threshold tag") from None
    features = spark.table(table_names(settings).features)
    compiled, model = registry.served_form(settings, info), None
    if compiled is not None:
        missing = sorted(set(compiled.columns) - set(features.columns))
        if missing:
            raise registry.RegistryError(f"model version {version} needs columns the feature table lacks: {missing}")
    else:
        model = registry.load(settings, version)
        registry.check_scores(spark, settings, model, version=version)
        try:
            compiled = registry.compiled_model(info, model)
        except NotCompilable as exc:
            raise registry.RegistryError(f"model version {version} cannot be served: {exc}") from None
    if PROFILE_TAG in tags:
        profile = Profile.from_json(tags[PROFILE_TAG])
    else:
        model = model if model is not None else registry.load(settings, version)
        profile = learn_profile(model, features, rows=settings.scoring.profile_rows)
        registry.tag(settings, version, PROFILE_TAG, profile.to_json())
    return ScoringModel(version, threshold, profile, compiled, model)


class Champion:
    """The model the scorer uses: the registry's champion, reloaded when it changes."""

    def __init__(self, spark: SparkSession, settings: Settings, *, clock=time.monotonic) -> None:
        self.spark = spark
        self.settings = settings
        self.clock = clock
        self.current: ScoringModel | None = None
        self.refused: dict[int, str] = {}
        self._checked_at: float | None = None

    def get(self) -> ScoringModel:
        """The model for the next micro-batch (see the module doc: hot reload)."""
        now = self.clock()
        due = self._checked_at is None or now - self._checked_at >= self.settings.scoring.reload_check_s
        if self.current is not None and not due:
            return self.current
        self._checked_at = now
        try:
            version = registry.champion_version(self.settings, required=self.current is None)
        except Exception as exc:  # the registry is briefly unreachable: keep scoring with what we have
            if self.current is None or isinstance(exc, registry.RegistryError):
                raise
            log.warning(
                "cannot ask the registry for the champion (%s); still scoring with version %s",
                exc,
                self.current.version,
            )
            return self.current
        if self.current is not None and (version == self.current.version or version in self.refused):
            return self.current
        try:
            candidate = load_scoring_model(self.spark, self.settings, version)
        except registry.RegistryError as error:
            if self.current is None:
                raise registry.RegistryError(
                    f"{error}. Roll back with `fraudlake model rollback` or promote a working version."
                ) from None
            self.refused[version] = str(error)
            log.error(
                "champion version %s refused, still scoring with version %s: %s", version, self.current.version, error
            )
            return self.current
        previous = self.current.version if self.current else None
        self.current = candidate
        log.info(
            "scoring with model version %s (threshold %.4f)%s",
            version,
            candidate.threshold,
            f", was {previous}" if previous else "",
        )
        return candidate


class Shadow:
    """The version scored in the champion's shadow (the registry's ``shadow`` alias), loaded as
    the champion is. Shadow scores must never cost an alert: a version that cannot serve is
    logged and left out (no shadow scores), and a registry that cannot answer keeps the current
    one."""

    def __init__(self, spark: SparkSession, settings: Settings) -> None:
        self.spark = spark
        self.settings = settings
        self.current: ScoringModel | None = None
        self.refused: dict[int, str] = {}

    def get(self) -> ScoringModel | None:
        try:
            version = registry.shadow_version(self.settings)
        except Exception as exc:
            log.warning("cannot ask the registry for the shadow version (%s); keeping the current one", exc)
            return self.current
        if version is None or version in self.refused:
            self.current = None
        elif self.current is None or self.current.version != version:
            try:
                self.current = load_scoring_model(self.spark, self.settings, version)
                log.info("shadow scoring with model version %s (no alerts)", version)
            except registry.RegistryError as error:
                self.refused[version] = str(error)
                self.current = None
                log.error("shadow version %s refused, no shadow scores: %s", version, error)
        return self.current


DIMENSIONS = ("users", "merchants", "daily")


class Publisher:
    """The driver's side of the serving folder: the champion and the dimension snapshot,
    published when they change (see the module doc). Without a ``champion`` (the feature check
    before any model), the snapshot only."""

    def __init__(
        self,
        spark: SparkSession,
        settings: Settings,
        folder: Path,
        champion: Champion | None,
        shadow: Shadow | None = None,
    ) -> None:
        names = table_names(settings)
        self.spark = spark
        self.settings = settings
        self.folder = folder
        self.champion = champion
        self.shadow = shadow
        self.shadow_version: int | None = -1  # -1: nothing published yet
        tables = {
            "users": names.versions("users"),
            "merchants": names.versions("merchants"),
            "daily": names.merchant_daily,
        }
        self.locations = {key: table_location(spark, name) for key, name in tables.items()}
        self.model_version: int | None = None
        self.versions: dict[str, int] | None = None
        self.lock = threading.Lock()

    def refresh(self) -> None:
        with self.lock:
            model = self.champion.get() if self.champion is not None else None  # None: features only
            if model is not None and model.version != self.model_version:
                serving.publish_model(self.folder, model.serving(self.settings.scoring.top_reasons))
                self.model_version = model.version
            if self.shadow is not None:
                self._publish_shadow(self.shadow.get())
            versions = {key: self._version(key) for key in DIMENSIONS}
            if versions != self.versions:
                self._publish_snapshot(versions)

    def _publish_shadow(self, model: ScoringModel | None) -> None:
        version = model.version if model is not None else None
        if version != self.shadow_version:
            serving_model = model.serving(self.settings.scoring.top_reasons) if model is not None else None
            serving.publish_model(self.folder, serving_model, serving.SHADOW)
            self.shadow_version = version

    def _version(self, key: str) -> int:
        from delta.tables import DeltaTable

        return int(DeltaTable.forPath(self.spark, self.locations[key]).history(1).first().version)

    def _publish_snapshot(self, versions: dict[str, int]) -> None:
        from lakehouse.features.dimensions import snapshot_from_frames

        frames = [
            self.spark.read.format("delta").option("versionAsOf", versions[key]).load(self.locations[key])
            for key in DIMENSIONS
        ]
        serving.publish_snapshot(self.folder, snapshot_from_frames(*frames, versions))
        log.info("dimension snapshot published: %s", ", ".join(f"{k} v{v}" for k, v in versions.items()))
        self.versions = versions

    def keep_fresh(self, query: StreamingQuery) -> threading.Thread:
        """Refresh every ``scoring.reload_check_s`` while ``query`` runs (a daemon thread)."""

        def loop() -> None:
            while query.isActive:
                time.sleep(self.settings.scoring.reload_check_s)
                try:
                    self.refresh()
                except Exception as exc:  # the registry or a table is briefly unreadable: try again next time
                    log.warning("could not refresh the scorer's champion or dimensions: %s", exc)

        thread = threading.Thread(target=loop, name="scorer-refresh", daemon=True)
        thread.start()
        return thread
