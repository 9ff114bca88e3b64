"""isolated(): the settings of a test's or benchmark's own world, without Spark: schemas renamed,
topics only when asked, the registry in its folder, sections updated at any depth, bad arguments
refused by name, and the settings passed in left as they were."""

from __future__ import annotations

from pathlib import Path

import pytest

from lakehouse.platform.isolation import drop_schemas, isolated
from lakehouse.settings import Settings, load_settings


@pytest.fixture(scope="module")
def base() -> Settings:
    return load_settings("test", environ={})


def test_isolation_schemas_get_the_prefix_layer_and_suffix(base: Settings) -> None:
    own = isolated(base, suffix="abc123", schema_prefix="bench_")
    assert own.lakehouse.schemas.model_dump() == {
        "bronze": "bench_bronze_abc123",
        "silver": "bench_silver_abc123",
        "gold": "bench_gold_abc123",
    }
    assert own.lakehouse.watermark_delay_minutes == base.lakehouse.watermark_delay_minutes


def test_isolation_two_worlds_never_share_schemas(base: Settings) -> None:
    first, second = isolated(base), isolated(base)
    assert set(first.lakehouse.schemas.model_dump().values()).isdisjoint(second.lakehouse.schemas.model_dump().values())


def test_isolation_topics_are_renamed_only_when_asked(base: Settings) -> None:
    assert isolated(base, suffix="x1").kafka.topics == base.kafka.topics
    own = isolated(base, suffix="x1", topics=True)
    assert [t.name for t in own.kafka.topics.all()] == [f"{t.name}_x1" for t in base.kafka.topics.all()]
    assert [t.partitions for t in own.kafka.topics.all()] == [t.partitions for t in base.kafka.topics.all()]


def test_isolation_topics_without_own_schemas(base: Settings) -> None:
    own = isolated(base, suffix="x1", schemas=False, topics=True)
    assert own.lakehouse.schemas == base.lakehouse.schemas
    assert own.kafka.topics.transactions.name == f"{base.kafka.topics.transactions.name}_x1"


def test_isolation_registry_lives_in_its_folder(base: Settings, tmp_path: Path) -> None:
    own = isolated(base, registry_dir=tmp_path)
    assert own.registry.tracking_uri == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert own.registry.artifact_location == (tmp_path / "artifacts").as_uri()
    assert own.registry.model_name == base.registry.model_name
    assert isolated(base).registry == base.registry


def test_isolation_checkpoints_and_data_dir(base: Settings, tmp_path: Path) -> None:
    own = isolated(base, checkpoint_dir=tmp_path / "checkpoints", data_dir=tmp_path / "data")
    assert own.checkpoint_dir == str(tmp_path / "checkpoints")
    assert own.paths.data_dir == tmp_path / "data"


def test_isolation_section_updates_merge_at_any_depth(base: Settings) -> None:
    own = isolated(
        base, simulator={"users": 300, "bad_records": {"late_by_hours": 3}}, training={"gbt": {"max_iter": 2}}
    )
    assert own.simulator.users == 300 and own.simulator.days == base.simulator.days
    assert own.simulator.bad_records.late_by_hours == 3
    assert own.simulator.bad_records.model_dump(exclude={"late_by_hours"}) == base.simulator.bad_records.model_dump(
        exclude={"late_by_hours"}
    )
    assert own.training.gbt.max_iter == 2 and own.training.gbt.max_depth == base.training.gbt.max_depth
    # a plain mapping field is replaced, not merged
    assert isolated(base, streaming={"queries": {}}).streaming.queries == {}


def test_isolation_leaves_the_settings_passed_in_as_they_were(base: Settings, tmp_path: Path) -> None:
    before = base.model_dump()
    isolated(
        base,
        topics=True,
        registry_dir=tmp_path,
        checkpoint_dir=tmp_path,
        data_dir=tmp_path,
        simulator={"users": 1},
        training={"gbt": {"max_iter": 1}},
    )
    assert base.model_dump() == before


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"simulator": {"no_such_setting": 1}}, "SimulatorSettings has no setting 'no_such_setting'"),
        ({"no_such_section": {}}, "Settings has no setting 'no_such_section'"),
        ({"suffix": "Bad-Suffix"}, "suffix 'Bad-Suffix'"),
    ],
)
def test_isolation_refuses_unknown_settings_and_bad_suffixes(base: Settings, changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        isolated(base, **changes)


class RecordingSpark:
    def __init__(self) -> None:
        self.statements: list[str] = []

    def sql(self, statement: str) -> None:
        self.statements.append(statement)


def test_isolation_drop_schemas_drops_the_world_and_refuses_the_shared_layers(base: Settings) -> None:
    spark = RecordingSpark()
    drop_schemas(spark, isolated(base, suffix="s1"))
    assert spark.statements == [f"DROP SCHEMA IF EXISTS {layer}_s1 CASCADE" for layer in ("bronze", "silver", "gold")]
    shared = isolated(base, schemas=False, lakehouse={"schemas": {"bronze": "bronze"}})
    with pytest.raises(ValueError, match="shared schema"):
        drop_schemas(RecordingSpark(), shared)
