"""The dev stack's Apache Kafka: the fetch's errors, cluster ids and node configuration (no JVM started here;
every integration test starts real brokers through the same code)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from streamrec.devstack import kafka_dist
from streamrec.devstack.kraft import new_cluster_id, node_properties, plan_nodes, stored_cluster_id
from streamrec.errors import StackError


def test_cluster_ids_are_16_bytes_and_never_read_as_an_option() -> None:
    for _ in range(2000):  # about 1 in 64 random ids starts with "-"
        cluster_id = new_cluster_id()
        assert not cluster_id.startswith("-")
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


def test_one_node_replicates_nothing_and_three_nodes_keep_two_in_sync(tmp_path: Path) -> None:
    single = plan_nodes(tmp_path, 1, [9092, 9093])
    props = node_properties(single[0], single)
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:9093"
    assert props["offsets.topic.replication.factor"] == "1" and props["min.insync.replicas"] == "1"
    cluster = plan_nodes(tmp_path, 3, list(range(10_000, 10_006)))
    props = node_properties(cluster[1], cluster)
    assert props["node.id"] == "2" and props["listeners"].startswith("PLAINTEXT://127.0.0.1:10002,")
    assert props["controller.quorum.voters"] == "1@127.0.0.1:10001,2@127.0.0.1:10003,3@127.0.0.1:10005"
    assert props["default.replication.factor"] == "3" and props["min.insync.replicas"] == "2"
    assert props["transaction.state.log.min.isr"] == "2"
    with pytest.raises(StackError, match="6 ports"):
        plan_nodes(tmp_path, 3, [1, 2])


def test_a_missing_java_or_maven_is_an_error_that_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # nothing fetched yet
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(StackError, match=r"needs `java`.*apt-get install openjdk-17-jre-headless maven"):
        kafka_dist.ensure_kafka()
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "java").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "java").chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.raises(StackError, match="needs `mvn`"):
        kafka_dist.ensure_kafka()


def test_the_version_is_read_from_kafka_env() -> None:
    version = kafka_dist.kafka_version()
    assert version.split(".")[0] == "4"
    assert kafka_dist.broker_label() == f"apache-kafka {version}"


def test_stored_cluster_id_resumes_one_cluster_and_refuses_a_mixture(tmp_path: Path) -> None:
    nodes = plan_nodes(tmp_path, 3, list(range(10_000, 10_006)))
    assert stored_cluster_id(nodes) is None  # nothing formatted: format afresh
    for node, cluster in zip(nodes, ["abc", "abc", "abc"], strict=True):
        node.data_dir.mkdir(parents=True)
        (node.data_dir / "meta.properties").write_text(f"#\nnode.id={node.node_id}\ncluster.id={cluster}\n")
    assert stored_cluster_id(nodes) == "abc"
    (nodes[2].data_dir / "meta.properties").write_text("cluster.id=other\n")
    with pytest.raises(StackError, match=r"not one cluster's.*streamrec up --fresh"):
        stored_cluster_id(nodes)
    (nodes[2].data_dir / "meta.properties").unlink()  # one node never formatted
    with pytest.raises(StackError, match="not one cluster's"):
        stored_cluster_id(nodes)


@pytest.mark.integration
def test_a_second_stack_in_the_same_state_dir_resumes_its_broker_and_fresh_empties_it(tmp_path: Path) -> None:
    """`streamrec up` again after `down`: the first run's Kafka storage (its cluster id, its topics) is resumed on
    the new run's ports; `fresh` starts with none of it."""
    from confluent_kafka.admin import AdminClient

    from streamrec.devstack.localstack import LocalStack
    from streamrec.devstack.stack import create_topics

    for run, fresh in enumerate((False, False, True)):
        with LocalStack(state_dir=tmp_path) as stack:
            bootstrap = stack.start_broker(fresh=fresh)
            topics = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10).topics
            if run == 0:
                assert "streamrec.events" not in topics
                create_topics(bootstrap, partitions=2)
            elif not fresh:
                assert len(topics["streamrec.events"].partitions) == 2  # kept from the first run
            else:
                assert "streamrec.events" not in topics
