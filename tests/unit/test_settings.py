"""Settings: layering, environment overrides, one-line errors naming the key, secrets."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from lakehouse.errors import ConfigError
from lakehouse.settings import load_settings

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"
SEED_TOPICS = {"transaction_stream", "user_info_stream", "merchant_info_stream", "fraud_alerts"}
#: Fraudlake's own topic: the scorer's scored rows on their way to gold.scored_transactions.
INTERNAL_TOPICS = {"scored_transactions"}
LABEL_TOPICS = {"fraud_labels"}  # DESIGN.md: late labels


@pytest.fixture
def conf_dir(tmp_path: Path) -> Path:
    """A private copy of conf/ that a test may break."""
    target = tmp_path / "conf"
    shutil.copytree(CONF_DIR, target)
    return target


@pytest.mark.parametrize("env", ["local", "test", "cluster"])
def test_settings_every_overlay_loads_with_seed_topic_names(env: str) -> None:
    settings = load_settings(env, environ={})
    assert settings.env == env
    assert {t.name for t in settings.kafka.topics.all()} == SEED_TOPICS | INTERNAL_TOPICS | LABEL_TOPICS


def test_settings_relative_paths_resolve_against_project_dir() -> None:
    settings = load_settings("local", environ={})
    assert settings.paths.data_dir == CONF_DIR.parent / ".fraudlake"
    assert settings.broker_data_dir == settings.paths.data_dir / "kafka"
    assert settings.warehouse_dir == str(settings.paths.data_dir / "warehouse")
    assert settings.kafka.broker.jars_dir == CONF_DIR.parent / ".jars" / "kafka"


def test_settings_data_dir_override_moves_every_derived_folder(tmp_path: Path) -> None:
    settings = load_settings("local", environ={"FRAUDLAKE_PATHS__DATA_DIR": str(tmp_path)})
    assert settings.broker_data_dir == tmp_path / "kafka"
    assert settings.metastore_dir == tmp_path / "metastore"
    assert settings.checkpoint_dir == str(tmp_path / "checkpoints")


def test_settings_environment_overrides_overlay_with_typed_values() -> None:
    settings = load_settings(
        "test",
        environ={"FRAUDLAKE_KAFKA__BROKER__PORT": "19092", "FRAUDLAKE_SPARK__UI_ENABLED": "true"},
    )
    assert settings.kafka.broker.port == 19092
    assert settings.spark.ui_enabled is True
    assert settings.kafka.bootstrap == "127.0.0.1:19092"


def test_settings_cluster_overlay_uses_external_brokers_and_master() -> None:
    settings = load_settings("cluster", environ={"KAFKA_BOOTSTRAP_SERVERS": "b1:9092,b2:9092"})
    assert settings.kafka.broker.enabled is False
    assert settings.kafka.bootstrap == "b1:9092,b2:9092"
    assert settings.spark.master.startswith("spark://")
    assert settings.spark.local_ip is None


def test_settings_bad_env_value_names_variable_and_key() -> None:
    with pytest.raises(ConfigError) as error:
        load_settings("local", environ={"FRAUDLAKE_KAFKA__BROKER__PORT": "not-a-port"})
    message = str(error.value)
    assert "FRAUDLAKE_KAFKA__BROKER__PORT" in message
    assert "kafka.broker.port" in message
    assert "\n" not in message


def test_settings_unknown_key_in_overlay_names_file_and_key(conf_dir: Path) -> None:
    (conf_dir / "test.yaml").write_text("spark:\n  shufle_partitions: 3\n")
    with pytest.raises(ConfigError) as error:
        load_settings("test", conf_dir=conf_dir, environ={})
    assert str(error.value) == "config conf/test.yaml: unknown key spark.shufle_partitions"


def test_settings_wrong_type_in_file_names_file_and_key(conf_dir: Path) -> None:
    (conf_dir / "local.yaml").write_text("kafka:\n  topics:\n    alerts: {partitions: many}\n")
    with pytest.raises(ConfigError, match=r"^config conf/local.yaml: kafka.topics.alerts.partitions = 'many'"):
        load_settings("local", conf_dir=conf_dir, environ={})


def test_settings_unknown_environment_lists_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown environment 'prod'.*cluster, cluster-local, local, secure, test"):
        load_settings("prod", environ={})


def test_settings_invalid_yaml_names_file_and_line(conf_dir: Path) -> None:
    (conf_dir / "local.yaml").write_text("spark:\n  master: [unclosed\n")
    with pytest.raises(ConfigError, match=r"local.yaml line \d+: not valid YAML"):
        load_settings("local", conf_dir=conf_dir, environ={})


def test_settings_variable_expansion_with_default_and_missing(conf_dir: Path) -> None:
    (conf_dir / "local.yaml").write_text("spark:\n  app_name: ${APP:-fallback}\n  master: ${MASTER_URL}\n")
    with pytest.raises(ConfigError, match=r"spark.master: environment variable MASTER_URL is not set"):
        load_settings("local", conf_dir=conf_dir, environ={})
    settings = load_settings("local", conf_dir=conf_dir, environ={"MASTER_URL": "local[1]"})
    assert (settings.spark.app_name, settings.spark.master) == ("fallback", "local[1]")


def test_settings_secret_in_file_is_refused(conf_dir: Path) -> None:
    (conf_dir / "cluster.yaml").write_text("kafka:\n  sasl_password: hunter2\n")
    with pytest.raises(ConfigError) as error:
        load_settings("cluster", conf_dir=conf_dir, environ={})
    assert "FRAUDLAKE_KAFKA__SASL_PASSWORD" in str(error.value)
    assert "hunter2" not in str(error.value)


def test_settings_secrets_from_env_are_masked_when_printed() -> None:
    environ = {
        "FRAUDLAKE_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
        "FRAUDLAKE_KAFKA__SASL_MECHANISM": "SCRAM-SHA-512",
        "FRAUDLAKE_KAFKA__SASL_USERNAME": "fraud-svc",
        "FRAUDLAKE_KAFKA__SASL_PASSWORD": "0123",  # stays a string, not the number 123
    }
    settings = load_settings("cluster", environ=environ)
    assert settings.kafka.sasl_password.get_secret_value() == "0123"
    shown = repr(settings) + str(settings.redacted())
    assert "0123" not in shown and "fraud-svc" not in shown


def test_settings_incomplete_sasl_names_what_is_missing_without_values() -> None:
    environ = {"FRAUDLAKE_KAFKA__SECURITY_PROTOCOL": "SASL_SSL", "FRAUDLAKE_KAFKA__SASL_PASSWORD": "s3cret-value"}
    with pytest.raises(ConfigError) as error:
        load_settings("cluster", environ=environ)
    assert "sasl_mechanism, sasl_username" in str(error.value)
    assert "s3cret-value" not in str(error.value)
