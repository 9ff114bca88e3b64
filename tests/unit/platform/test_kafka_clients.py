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


def test_spark_sasl_options_survive_kafkas_own_jaas_parser_with_quotes_backslashes_and_non_ascii(spark) -> None:
    """Defect: a password with a backslash worked for the Python clients and failed on Spark's path
    (Kafka's JAAS parser reads a backslash as an escape). Parsed here by Kafka's own JaasConfig."""
    password = 'p"a\\ss\\\\wörd\\"'
    kafka = load_settings("cluster", environ={**SASL_ENV, "FRAUDLAKE_KAFKA__SASL_PASSWORD": password}).kafka

    jaas = spark_options(kafka)["kafka.sasl.jaas.config"]

    parsed = spark._jvm.org.apache.kafka.common.security.JaasConfig("KafkaClient", jaas)
    options = parsed.getAppConfigurationEntry("KafkaClient")[0].getOptions()
    assert (options.get("username"), options.get("password")) == ("fraud-svc", password)
