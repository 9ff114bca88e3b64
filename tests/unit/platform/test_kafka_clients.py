"""Kafka client options derived from settings (no broker needed)."""

from __future__ import annotations

import logging
import socket

import pytest
from kafka.errors import KafkaConnectionError

from lakehouse.errors import BrokerUnavailableError
from lakehouse.platform.entrypoint import SecretsFilter
from lakehouse.platform.kafka.clients import broker_errors, client_config, refusal, spark_options, speaks_tls
from lakehouse.platform.kafka.senders import confluent_config
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


def test_the_secure_profile_trusts_the_local_brokers_ca_on_every_client(tmp_path) -> None:
    """TLS trust settings reach kafka-python, librdkafka and Spark from one setting, and the secured
    local profile fills it with the CA that `fraudlake kafka up` makes."""
    settings = load_settings(
        "secure", environ={**SASL_ENV, "KAFKA_BOOTSTRAP_SERVERS": "", "FRAUDLAKE_PATHS__DATA_DIR": str(tmp_path)}
    )
    ca = tmp_path / "kafka" / "tls" / "ca.pem"
    assert settings.kafka.ssl_cafile == ca
    assert client_config(settings.kafka)["ssl_cafile"] == str(ca)
    assert confluent_config(settings.kafka, settings.producer)["ssl.ca.location"] == str(ca)
    options = spark_options(settings.kafka)
    assert (options["kafka.ssl.truststore.type"], options["kafka.ssl.truststore.location"]) == ("PEM", str(ca))


def test_a_refusal_is_told_by_what_kafka_python_saw() -> None:
    kafka = load_settings("cluster", environ=SASL_ENV).kafka
    tls = ["Connection failed: KafkaConnectionError: Handshake failed: [SSL: CERTIFICATE_VERIFY_FAILED] bad"]
    sasl = ["<KafkaConnection node_id=bootstrap-0 broker_version=(4, 1) (disconnected)>: Connection lost"]
    plain = ["<KafkaTCPTransport>: Abort (InvalidReceiveError: Invalid frame length: 352518912)"]
    assert "TLS handshake" in str(refusal(kafka, tls))
    assert "refused the SCRAM-SHA-512 credentials" in str(refusal(kafka, sasl))
    plaintext = kafka.model_copy(update={"security_protocol": "PLAINTEXT", "sasl_mechanism": None})
    assert "expects TLS or authentication" in str(refusal(plaintext, plain))
    assert refusal(kafka, []) is None
    # A broker frozen by SIGSTOP accepts the TCP connection and never answers: unreachable, not refusing.
    frozen = ["<KafkaConnection node_id=bootstrap-0 broker_version=unknown (disconnected)>: socket disconnected"]
    assert refusal(plaintext, frozen) is None


def test_a_listener_that_never_answers_does_not_count_as_speaking_tls() -> None:
    # The secured broker's TLS listener is the positive case (tests/integration/platform/test_secure_broker.py).
    with socket.create_server(("127.0.0.1", 0)) as silent:
        assert not speaks_tls("127.0.0.1", silent.getsockname()[1], timeout_s=0.3)


def test_secrets_given_in_the_environment_never_reach_a_log_line() -> None:
    secret = 'pa"ss\\wörd'
    record = logging.LogRecord("kafka.net", logging.DEBUG, __file__, 1, "sasl: %s %s", ("user", secret), None)
    SecretsFilter({"FRAUDLAKE_KAFKA__SASL_PASSWORD": secret}).filter(record)
    assert secret not in record.getMessage() and "*****" in record.getMessage()


def test_a_node_that_refuses_the_connection_is_unreachable_not_a_crash() -> None:
    """A starting cluster's metadata names nodes that are not listening yet: kafka-python then
    raises a connection error after bootstrap, which a start-up wait must see as 'not yet' (a
    clean-clone CI run failed the cluster's set-up on it), and a command as a plain message."""
    kafka = load_settings("local", environ={"FRAUDLAKE_KAFKA__BROKER__PORT": "29092"}).kafka
    with (
        pytest.raises(BrokerUnavailableError, match=r"not reachable at 127\.0\.0\.1:29092.*ECONNREFUSED"),
        broker_errors(kafka),
    ):
        raise KafkaConnectionError("111 ECONNREFUSED")


def test_an_acked_send_that_no_broker_acknowledges_says_so_plainly_in_time() -> None:
    """The decision service's producer: a record nobody acknowledges (nothing listens at the broker's
    address) is a BrokerUnavailableError once the wait is over, not a hang or a client's own error."""
    from lakehouse.platform.kafka.acked import AckedProducer
    from tests.helpers import free_port

    settings = load_settings("local", environ={"FRAUDLAKE_KAFKA__BROKER__PORT": str(free_port())})
    producer = AckedProducer(settings.kafka, settings.producer)
    try:
        future = producer.send("transaction_stream", b"{}", b"user-1", partition=0, timestamp_ms=1)
        with pytest.raises(BrokerUnavailableError, match=r"did not acknowledge a record within 0\.5 s"):
            producer.offsets([future], timeout_s=0.5)
    finally:
        producer.close(timeout_s=0.1)
