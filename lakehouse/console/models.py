"""The models page's source: the registry's versions, the champion and the champions before it,
each version's live precision on matured labels and its training report, and the two admin
actions, promote (the version must load and score first, as with ``fraudlake model promote``) and
rollback. The running scorer follows the champion by itself."""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lakehouse.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from lakehouse.ml.registry import ModelVersionInfo

#: Live precision reads the scored table and silver: computed at most this often.
LIVE_SECONDS = 60.0


class RegistryModels:
    def __init__(self, settings: Settings, spark: SparkSession) -> None:
        self.settings = settings
        self.spark = spark
        self.reports = settings.console_dir / "reports"  # a version's report never changes: fetched once
        self._live: tuple[float, dict[str, Any]] | None = None
        self._lock = threading.Lock()

    def versions(self) -> list[ModelVersionInfo]:
        from lakehouse.ml import registry

        return registry.versions(self.settings)

    def history(self) -> list[dict]:
        from lakehouse.ml import registry

        return registry.champion_history(self.settings)

    def live(self) -> dict[str, Any]:
        """``by_version`` (version → LiveMetrics) and ``matured_before``, at most LIVE_SECONDS old."""
        from lakehouse.ml.live import live_metrics

        with self._lock:
            if self._live is None or time.monotonic() - self._live[0] > LIVE_SECONDS:
                metrics, matured = live_metrics(self.spark, self.settings)
                by_version = {m.model_version: m for m in metrics}
                self._live = (time.monotonic(), {"by_version": by_version, "matured_before": matured})
            return self._live[1]

    def report(self, version: int) -> Path | None:
        """The folder of the version's training report (``index.html`` and the plots), or None."""
        from lakehouse.ml import registry
        from lakehouse.ml.report import fetch_report

        folder = self.reports / str(version)
        if (folder / "index.html").is_file():
            return folder
        with self._lock:  # one download at a time, into a scratch folder, then moved into place whole
            if (folder / "index.html").is_file():
                return folder
            try:
                info = registry.version_info(self.settings, version)
            except registry.RegistryError:
                return None
            scratch = self.reports / f".{version}-{uuid.uuid4().hex[:8]}"
            fetched = fetch_report(self.settings, info, scratch)
            if fetched is None or not (fetched / "index.html").is_file():
                shutil.rmtree(scratch, ignore_errors=True)
                return None
            fetched.rename(folder)
            shutil.rmtree(scratch, ignore_errors=True)
            return folder

    def promote(self, version: int, actor: str) -> None:
        from lakehouse.ml import registry

        registry.promote(
            self.settings,
            version,
            validate=lambda model: registry.check_scores(self.spark, self.settings, model, version=version),
            reason=f"promoted by {actor} in the console",
        )

    def rollback(self) -> int:
        from lakehouse.ml import registry

        return registry.rollback(self.settings)
