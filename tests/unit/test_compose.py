"""docker-compose.yml cannot run here (no Docker engine), so keep it consistent with conf/ by
parsing it: the cluster overlay's defaults must name the services the file defines."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from lakehouse.settings import load_settings

PROJECT_DIR = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((PROJECT_DIR / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def cluster():
    return load_settings("cluster", environ={})


def kafka_services(compose: dict) -> dict[str, dict]:
    return {name: svc for name, svc in compose["services"].items() if svc.get("image", "").startswith("apache/kafka")}


def fraudlake_services(compose: dict) -> dict[str, dict]:
    return {name: svc for name, svc in compose["services"].items() if svc.get("image") == "fraudlake:latest"}


def test_compose_has_the_platform_services(compose: dict) -> None:
    services = set(compose["services"])
    assert {"spark-master", "spark-worker", "airflow", "topics-init"} <= services
    assert len(kafka_services(compose)) >= 3


def test_compose_brokers_are_what_the_cluster_overlay_bootstraps_from(compose: dict, cluster) -> None:
    advertised = {
        svc["environment"]["KAFKA_ADVERTISED_LISTENERS"].removeprefix("PLAINTEXT://")
        for svc in kafka_services(compose).values()
    }
    assert set(cluster.kafka.bootstrap.split(",")) == advertised
    voters = {svc["environment"]["KAFKA_CONTROLLER_QUORUM_VOTERS"] for svc in kafka_services(compose).values()}
    assert len(voters) == 1
    node_ids = sorted(int(svc["environment"]["KAFKA_NODE_ID"]) for svc in kafka_services(compose).values())
    assert voters.pop() == ",".join(f"{n}@kafka-{n}:9093" for n in node_ids)
    assert all(
        re.fullmatch(r"[A-Za-z0-9_-]{22}", svc["environment"]["CLUSTER_ID"]) for svc in kafka_services(compose).values()
    )


def test_compose_replication_fits_the_brokers_and_topics_come_from_conf(compose: dict, cluster) -> None:
    brokers = len(kafka_services(compose))
    assert all(t.replication_factor <= brokers for t in cluster.kafka.topics.all())
    assert compose["services"]["topics-init"]["command"] == ["fraudlake", "topics", "ensure"]
    for svc in kafka_services(compose).values():
        assert svc["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_compose_spark_master_is_the_cluster_overlay_master(compose: dict, cluster) -> None:
    command = compose["services"]["spark-master"]["command"]
    host, port = command[command.index("--host") + 1], command[command.index("--port") + 1]
    assert cluster.spark.master == f"spark://{host}:{port}"
    assert compose["services"]["spark-worker"]["command"][-1] == cluster.spark.master


def test_compose_fraudlake_services_use_cluster_env_and_share_the_data_dir(compose: dict, cluster) -> None:
    services = fraudlake_services(compose)
    assert {"spark-master", "spark-worker", "topics-init", "airflow"} <= set(services)
    for name, svc in services.items():
        assert svc["environment"]["FRAUDLAKE_ENV"] == "cluster", name
        mounts = {v.split(":", 1)[1] for v in svc["volumes"]}
        assert str(cluster.paths.data_dir) in mounts, name


def test_compose_publishes_ports_on_loopback_only_and_they_do_not_collide(compose: dict) -> None:
    """Defect: Kafka, the Spark master and Airflow were published on every host interface."""
    published = [p.split(":") for svc in compose["services"].values() for p in svc.get("ports", [])]
    assert published and all(len(p) == 3 and p[0] == "127.0.0.1" for p in published), published
    host_ports = [p[1] for p in published]
    assert len(host_ports) == len(set(host_ports))


def test_compose_catalog_server_is_what_the_cluster_overlay_connects_to(compose: dict, cluster) -> None:
    command = compose["services"]["catalog"]["command"]
    server = cluster.spark.catalog_server
    assert cluster.spark.catalog == "derby-server" and server.enabled is False
    assert server.host == "catalog" and command[command.index("-p") + 1] == str(server.port)
    assert f"-Dderby.system.home={cluster.paths.data_dir}/metastore" in command


#: Server settings that the compose brokers and the nodes of `fraudlake cluster up` must share.
SHARED_BROKER_SETTINGS = (
    "process.roles",
    "controller.listener.names",
    "inter.broker.listener.name",
    "listener.security.protocol.map",
    "auto.create.topics.enable",
    "offsets.topic.replication.factor",
    "transaction.state.log.replication.factor",
    "transaction.state.log.min.isr",
    "min.insync.replicas",
)


def test_compose_brokers_run_as_the_tested_local_cluster_nodes_do(compose: dict, tmp_path) -> None:
    """The multi-host shape cannot drift from what the tests run: each compose broker carries the
    server settings of the local cluster's nodes (written by the same code the cluster test runs),
    and as many of them; the Spark services start the same classes."""
    from lakehouse.platform.cluster import MASTER_CLASS, WORKER_CLASS, LocalCluster

    local = LocalCluster(load_settings("cluster-local", environ={"FRAUDLAKE_PATHS__DATA_DIR": str(tmp_path)}))
    node = local.brokers[0]._server_properties()
    brokers = kafka_services(compose)
    assert len(brokers) == len(local.brokers)
    for name, svc in brokers.items():
        for key in SHARED_BROKER_SETTINGS:
            variable = "KAFKA_" + key.upper().replace(".", "_")
            assert svc["environment"].get(variable) == node[key], (name, variable)
    assert compose["services"]["spark-master"]["command"][:2] == ["spark-class", MASTER_CLASS]
    assert compose["services"]["spark-worker"]["command"][:2] == ["spark-class", WORKER_CLASS]
