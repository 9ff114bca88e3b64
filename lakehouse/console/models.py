"""The models page's source: the registry's versions, the champion and the champions before it,
and the two admin actions, promote (the version must load and score first, as with
``fraudlake model promote``) and rollback. The running scorer follows the champion by itself."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lakehouse.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from lakehouse.ml.registry import ModelVersionInfo


class RegistryModels:
    def __init__(self, settings: Settings, spark: SparkSession) -> None:
        self.settings = settings
        self.spark = spark

    def versions(self) -> list[ModelVersionInfo]:
        from lakehouse.ml import registry

        return registry.versions(self.settings)

    def history(self) -> list[dict]:
        from lakehouse.ml import registry

        return registry.champion_history(self.settings)

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
