"""Kafka client options derived from settings (no broker needed)."""

from __future__ import annotations

from lakehouse.platform.kafka.clients import client_config, spark_options
from lakehouse.settings import load_settings

SASL_ENV = {
    "KAFKA_BOOTSTRAP_SERVERS": "b1:9093,b2:9093",
    "FRAUDLAKE_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
    "FRAUDLAKE_KAFKA__SASL_MECHANISM": "SCRAM-SHA-512",
    "FRAUDLAKE_KAFKA__SASL_USERNAME": "fraud-svc",
    "FRAUDLAKE_KAFKA__SASL_PASSWORD": 'pa"ss',
}


def test_client_config_embedded_broker_address_by_default() -> None:
    settings = load_settings("local", environ={"FRAUDLAKE_KAFKA__BROKER__PORT": "29092"})
    config = client_config(settings.kafka)
    assert config["bootstrap_servers"] == ["127.0.0.1:29092"]
    assert config["security_protocol"] == "PLAINTEXT"
    assert "sasl_plain_password" not in config


def test_client_config_and_spark_options_carry_sasl_from_environment() -> None:
    kafka = load_settings("cluster", environ=SASL_ENV).kafka
    config = client_config(kafka)
    assert config["bootstrap_servers"] == ["b1:9093", "b2:9093"]
    assert (config["sasl_mechanism"], config["sasl_plain_username"], config["sasl_plain_password"]) == (
        "SCRAM-SHA-512",
        "fraud-svc",
        'pa"ss',
    )
    options = spark_options(kafka)
    assert options["kafka.bootstrap.servers"] == "b1:9093,b2:9093"
    assert options["kafka.sasl.mechanism"] == "SCRAM-SHA-512"
    assert options["kafka.sasl.jaas.config"] == (
        'org.apache.kafka.common.security.scram.ScramLoginModule required username="fraud-svc" password="pa\\"ss";'
    )
