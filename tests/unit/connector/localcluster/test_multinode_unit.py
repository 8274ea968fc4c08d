"""Pure parts of multi-node local clusters: each node's config, the index template, the state file, ports."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from connector.errors import LocalClusterError
from connector.localcluster.config import multi_node_template, render_cluster_node_config, render_yaml
from connector.localcluster.multinode import node_ports
from connector.localcluster.state import LocalCluster, LocalNode
from tests.unit._golden import GoldenFiles

golden = GoldenFiles(prefix="localcluster_")


@pytest.mark.parametrize("flavor", ["elasticsearch", "opensearch"])
def test_cluster_node_config(flavor: str) -> None:
    config = render_cluster_node_config(
        flavor,  # type: ignore[arg-type]
        cluster_name="mn",
        node_names=["mn-0", "mn-1", "mn-2"],
        index=1,
        ports=[9300, 9301, 9302],
        transport_ports=[40000, 40001, 40002],
        data_dir=Path("/x/node-1/data"),
        logs_dir=Path("/x/node-1/logs"),
    )
    golden.check(f"node_config_{flavor}", config)
    assert "discovery.type" not in config
    yaml = render_yaml(config)
    assert 'discovery.seed_hosts: ["127.0.0.1:40000", "127.0.0.1:40001", "127.0.0.1:40002"]' in yaml


def test_cluster_node_config_needs_two_nodes_with_ports() -> None:
    with pytest.raises(ValueError, match=">= 2 nodes"):
        render_cluster_node_config(
            "elasticsearch", cluster_name="mn", node_names=["mn-0"], index=0, ports=[1], transport_ports=[2],
            data_dir=Path("/d"), logs_dir=Path("/l"),
        )  # fmt: skip


def test_multi_node_template() -> None:
    golden.check("multi_node_template", multi_node_template(3))


def test_state_round_trips_nodes() -> None:
    nodes = tuple(
        LocalNode(name=f"mn-{i}", port=9300 + i, transport_port=40000 + i, pid=100 + i, node_dir=f"/n{i}", heap_mb=384)
        for i in range(3)
    )
    cluster = LocalCluster(
        name="mn", flavor="elasticsearch", version="9.5.4", url=nodes[0].url, port=9300, pid=100, plugins=(),
        java_home="/j", java_major=25, cluster_dir="/c", started_at=1.0, nodes=nodes,
    )  # fmt: skip
    back = LocalCluster.from_json(cluster.to_json())
    assert back == cluster
    assert back.pids == (100, 101, 102) and back.urls[2] == "http://127.0.0.1:9302"
    old = json.loads(cluster.to_json())
    del old["nodes"]
    single = LocalCluster.from_json(json.dumps(old))
    assert single.pids == (100,)  # an old state file (no nodes) reads as one node


def test_node_ports_refuses_a_busy_range() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        busy = sock.getsockname()[1]
        with pytest.raises(LocalClusterError, match="in use"):
            node_ports(busy - 1, 3)
    http, transport = node_ports(0, 3)
    assert len(set(http + transport)) == 6
