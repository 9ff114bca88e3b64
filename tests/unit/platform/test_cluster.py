"""The local cluster's description (``cluster:`` in base.yaml) and the ``cluster-local`` overlay
that points the jobs at it: pure, no process is started."""

from __future__ import annotations

import socket

import pytest

from lakehouse.errors import ConfigError, PlatformError
from lakehouse.platform.cluster import LocalCluster, kafka_bootstrap, master_url
from lakehouse.settings import load_settings


def test_the_cluster_local_overlay_points_the_jobs_at_the_cluster_that_cluster_up_starts() -> None:
    """Defect guarded: the overlay's addresses and the `cluster:` section are written in two files."""
    settings = load_settings("cluster-local", environ={})
    assert settings.spark.master == master_url(settings.cluster)
    assert settings.kafka.bootstrap == kafka_bootstrap(settings.cluster)
    assert not settings.kafka.broker.enabled
    for topic in settings.kafka.topics.all():
        assert topic.replication_factor == settings.cluster.kafka_brokers == 3
        assert topic.configs["min.insync.replicas"] == "2"
    cores = int(settings.spark.conf["spark.executor.cores"]) * settings.cluster.spark_workers
    assert int(settings.spark.conf["spark.cores.max"]) == cores  # an executor on every worker
    # Ingest and the scorer run at once: with fewer cores the second would wait for them forever.
    offered = settings.cluster.spark_workers * settings.cluster.spark_worker_cores
    assert 2 * int(settings.spark.conf["spark.cores.max"]) <= offered


def test_every_kafka_node_is_one_voter_of_one_quorum_with_replicated_internal_topics(tmp_path) -> None:
    settings = load_settings("cluster-local", environ={"FRAUDLAKE_PATHS__DATA_DIR": str(tmp_path)})
    cluster = LocalCluster(settings)
    properties = [broker._server_properties() for broker in cluster.brokers]
    voters = {p["controller.quorum.voters"] for p in properties}
    assert voters == {"1@127.0.0.1:19192,2@127.0.0.1:19193,3@127.0.0.1:19194"}
    assert [p["node.id"] for p in properties] == ["1", "2", "3"]
    assert [p["listeners"].split(",")[0] for p in properties] == [
        f"PLAINTEXT://127.0.0.1:{port}" for port in (19092, 19093, 19094)
    ]
    for p in properties:
        assert "controller.quorum.bootstrap.servers" not in p
        assert p["offsets.topic.replication.factor"] == p["transaction.state.log.replication.factor"] == "3"
        assert p["min.insync.replicas"] == p["transaction.state.log.min.isr"] == "2"
    assert len({broker.home for broker in cluster.brokers}) == 3
    assert cluster._quorum().cluster_id == cluster._quorum().cluster_id  # made once, kept


def test_ports_that_overlap_are_refused_naming_both_keys() -> None:
    environ = {"FRAUDLAKE_CLUSTER__SPARK_WORKER_PORT": "7076"}  # workers 7076 and 7077: the master's port
    with pytest.raises(ConfigError, match="spark_worker_port and spark_master_port both use port 7077"):
        load_settings("cluster-local", environ=environ)


def test_a_kafka_node_whose_port_is_taken_names_the_cluster_key_to_change(tmp_path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        environ = {"FRAUDLAKE_PATHS__DATA_DIR": str(tmp_path), "FRAUDLAKE_CLUSTER__KAFKA_PORT": str(port)}
        cluster = LocalCluster(load_settings("cluster-local", environ=environ))
        with pytest.raises(PlatformError, match=r"in use .*set cluster\.kafka_port"):
            cluster.brokers[0].launch()
