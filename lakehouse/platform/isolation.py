"""An isolated copy of the settings, for a test or a benchmark: its own catalog schemas, and on
request its own topics, model registry, checkpoints and data folder, so that it never reads or
changes the user's tables, streams or champion (nor another test's).

    world = isolated(settings, schema_prefix="bench_", topics=True, registry_dir=folder,
                     simulator={"users": 300, "days": 24}, training={"gbt": {"max_iter": 20}})
    ...
    drop_schemas(spark, world)

The settings passed in are never changed (they are frozen; a changed copy is returned). A process
started with :func:`environ_of`'s variables (the CLI, a job) loads the same world.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from lakehouse.settings import SchemasSettings, Settings, TopicsSettings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

LAYERS = tuple(SchemasSettings.model_fields)  # bronze, silver, gold
STREAM_TOPICS = tuple(TopicsSettings.model_fields)  # transactions, users, merchants, alerts
SUFFIX = re.compile(r"[a-z0-9_]+")  # a schema name is [a-z_][a-z0-9_]*


def isolated(
    settings: Settings,
    *,
    suffix: str | None = None,
    schemas: bool = True,
    schema_prefix: str = "",
    topics: bool = False,
    registry_dir: Path | None = None,
    checkpoint_dir: Path | None = None,
    data_dir: Path | None = None,
    **section_updates: Any,
) -> Settings:
    """A copy of ``settings`` that owns what it writes.

    - ``schemas``: the catalog schemas become ``<schema_prefix><layer>_<suffix>`` (bronze, silver, gold);
    - ``topics``: every stream topic becomes ``<name>_<suffix>``;
    - ``registry_dir``: the MLflow registry lives in that folder (SQLite tracking URI, artifacts beside it);
    - ``checkpoint_dir`` / ``data_dir``: the streaming checkpoints / all runtime state go there;
    - ``section_updates``: changes to settings sections, applied last, e.g.
      ``simulator={"users": 300}`` or ``training={"gbt": {"max_iter": 20}}`` (a mapping updates a
      section field by field, at any depth; anything else replaces the value).

    ``suffix`` defaults to 8 random hex digits.
    """
    suffix = uuid.uuid4().hex[:8] if suffix is None else suffix
    if not SUFFIX.fullmatch(suffix):
        raise ValueError(f"suffix {suffix!r}: use lower-case letters, digits and '_' (it ends catalog schema names)")
    updates: list[Mapping[str, Any]] = []
    if schemas:
        names = {layer: f"{schema_prefix}{layer}_{suffix}" for layer in LAYERS}
        updates.append({"lakehouse": {"schemas": names}})
    if topics:
        renamed = {name: {"name": f"{getattr(settings.kafka.topics, name).name}_{suffix}"} for name in STREAM_TOPICS}
        updates.append({"kafka": {"topics": renamed}})
    if registry_dir is not None:
        registry = {
            "tracking_uri": f"sqlite:///{registry_dir / 'mlflow.db'}",
            "artifact_location": (registry_dir / "artifacts").as_uri(),
        }
        updates.append({"registry": registry})
    if checkpoint_dir is not None:
        updates.append({"spark": {"checkpoint_dir": str(checkpoint_dir)}})
    if data_dir is not None:
        updates.append({"paths": {"data_dir": data_dir}})
    updates.append(section_updates)
    for update in updates:
        settings = updated(settings, update)
    return settings


def updated(model: BaseModel, changes: Mapping[str, Any]) -> Any:
    """``model`` with ``changes``; a mapping given for a nested section updates that section."""
    values = {}
    for name, value in changes.items():
        if name not in type(model).model_fields:
            raise ValueError(f"{type(model).__name__} has no setting {name!r}")
        current = getattr(model, name)
        values[name] = (
            updated(current, value) if isinstance(current, BaseModel) and isinstance(value, Mapping) else value
        )
    return model.model_copy(update=values)


def environ_of(settings: Settings) -> dict[str, str]:
    """FRAUDLAKE_* variables that make the CLI (and the jobs it starts) load these isolated settings:
    topics, catalog schemas, checkpoints and the model registry."""
    topics, registry = settings.kafka.topics, settings.registry
    return {
        **{f"FRAUDLAKE_KAFKA__TOPICS__{name.upper()}__NAME": getattr(topics, name).name for name in STREAM_TOPICS},
        **{
            f"FRAUDLAKE_LAKEHOUSE__SCHEMAS__{layer.upper()}": schema
            for layer, schema in settings.lakehouse.schemas.model_dump().items()
        },
        "FRAUDLAKE_SPARK__CHECKPOINT_DIR": str(settings.spark.checkpoint_dir),
        **{
            f"FRAUDLAKE_REGISTRY__{key.upper()}": value
            for key, value in (
                ("tracking_uri", registry.tracking_uri),
                ("artifact_location", registry.artifact_location),
            )
            if value is not None
        },
    }


def drop_schemas(spark: SparkSession, settings: Settings) -> None:
    """Drop the catalog schemas ``settings`` name, with all their tables: the clean-up of an
    :func:`isolated` world. Refuses schemas named like the layers themselves (the user's)."""
    names = settings.lakehouse.schemas.model_dump()
    shared = sorted(layer for layer, schema in names.items() if schema == layer)
    if shared:
        raise ValueError(f"refusing to drop the shared schema(s) {', '.join(shared)}: not an isolated world")
    for schema in names.values():
        spark.sql(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
