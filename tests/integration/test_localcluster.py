"""Real local clusters: the four servers, the CLI's up/status/down, and its errors."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from connector.localcluster import DEFAULT_VERSIONS, LocalClusterSettings, server_version

REPO = Path(__file__).resolve().parents[2]


def _cli(*args: str, timeout_s: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "connector.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def _get(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=30) as resp:
        body = json.loads(resp.read())
    assert isinstance(body, dict)
    return body


def _processes_using(path: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline", "status"]):
        try:
            if proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            if any(path in part for part in proc.info["cmdline"] or ()):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


@pytest.mark.integration
def test_each_server_reports_its_version(cluster_url: str, cluster_key: str) -> None:
    flavor, version = DEFAULT_VERSIONS[cluster_key]
    assert server_version(cluster_url) == version
    health = _get(f"{cluster_url}/_cluster/health")
    assert health["status"] in ("yellow", "green")
    if flavor == "opensearch":
        root_version = _get(f"{cluster_url}/")["version"]
        assert isinstance(root_version, dict)
        assert (root_version["distribution"], root_version["number"]) == ("opensearch", version)


@pytest.mark.integration
@pytest.mark.parametrize(
    "key", [pytest.param("os3", marks=pytest.mark.os3), pytest.param("os2", marks=pytest.mark.os2)]
)
def test_opensearch_servers_run_knn_and_neural_search(
    request: pytest.FixtureRequest, key: str, index_name: str
) -> None:
    """The server-side hybrid query (neural-search) and the lucene kNN engine work."""
    url = str(request.getfixturevalue(f"{key}_url"))
    plugins = {row["component"] for row in json.loads(urllib.request.urlopen(f"{url}/_cat/plugins?format=json").read())}
    assert {"opensearch-knn", "opensearch-neural-search"} <= plugins

    def call(method: str, path: str, body: object) -> dict[str, object]:
        req = urllib.request.Request(
            f"{url}{path}", data=json.dumps(body).encode(), method=method,
            headers={"content-type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(req, timeout=60) as resp:
            answer = json.loads(resp.read())
        assert isinstance(answer, dict)
        return answer

    pipeline = f"{index_name}-pipeline"
    call("PUT", f"/_search/pipeline/{pipeline}", {
        "phase_results_processors": [{"normalization-processor": {
            "normalization": {"technique": "min_max"},
            "combination": {"technique": "arithmetic_mean", "parameters": {"weights": [0.3, 0.7]}},
        }}],
    })  # fmt: skip
    try:
        call("PUT", f"/{index_name}", {
            "settings": {"index.knn": True, "number_of_replicas": 0},
            "mappings": {"properties": {
                "title": {"type": "text"},
                "vec": {"type": "knn_vector", "dimension": 2,
                        "method": {"name": "hnsw", "engine": "lucene", "space_type": "l2"}},
            }},
        })  # fmt: skip
        call("PUT", f"/{index_name}/_doc/1", {"title": "red apple", "vec": [1.0, 2.0]})
        call("PUT", f"/{index_name}/_doc/2?refresh=true", {"title": "green pear", "vec": [5.0, 1.0]})
        hits = call("POST", f"/{index_name}/_search?search_pipeline={pipeline}", {
            "query": {"hybrid": {"queries": [
                {"match": {"title": "apple"}},
                {"knn": {"vec": {"vector": [5.0, 1.1], "k": 2}}},
            ]}},
        })["hits"]  # fmt: skip
        assert isinstance(hits, dict)
        assert [h["_id"] for h in hits["hits"]] == ["2", "1"]  # 0.7 (vector) beats 0.3 (text)
    finally:
        urllib.request.urlopen(urllib.request.Request(f"{url}/_search/pipeline/{pipeline}", method="DELETE")).close()


@pytest.mark.integration
@pytest.mark.parametrize(
    "key", [pytest.param("os3", marks=pytest.mark.os3), pytest.param("os2", marks=pytest.mark.os2)]
)
def test_faiss_field_fails_its_shard_not_the_node(request: pytest.FixtureRequest, key: str, index_name: str) -> None:
    """No native k-NN libraries in the Maven zip: the stand-ins turn the node-killing
    UnsatisfiedLinkError into an error of that one index."""
    url = str(request.getfixturevalue(f"{key}_url"))

    def send(method: str, path: str, body: object) -> tuple[int, str]:
        req = urllib.request.Request(
            f"{url}{path}", data=json.dumps(body).encode(), method=method,
            headers={"content-type": "application/json"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    status, _ = send("PUT", f"/{index_name}", {
        "settings": {"index.knn": True, "number_of_replicas": 0},
        "mappings": {"properties": {"vec": {"type": "knn_vector", "dimension": 2,
                                            "method": {"name": "hnsw", "engine": "faiss", "space_type": "l2"}}}},
    })  # fmt: skip
    assert status == 200
    status, body = send("PUT", f"/{index_name}/_doc/1?refresh=true", {"vec": [1.0, 2.0]})
    assert status >= 400 and "lucene" in body
    assert _get(f"{url}/_cluster/health")["number_of_nodes"] == 1  # the node is still there


@pytest.fixture
def cli_cluster_name() -> Iterator[str]:
    name = f"test-cli-{uuid.uuid4().hex[:8]}"
    yield name
    _cli("cluster", "down", "--name", name, "--purge")


@pytest.mark.integration
@pytest.mark.slow
def test_cli_up_status_down_leaves_no_process(cli_cluster_name: str) -> None:
    name = cli_cluster_name
    up = _cli(
        "cluster", "up", "--flavor", "opensearch", "--version", "2.19.1", "--port", "0", "--name", name, "--no-neural"
    )
    assert up.returncode == 0, up.stderr
    url = up.stdout.strip().splitlines()[-1]
    assert url.startswith("http://127.0.0.1:")
    assert server_version(url) == "2.19.1"

    cluster_dir = str(LocalClusterSettings().home / "clusters" / name)
    procs = _processes_using(cluster_dir)
    assert procs, "the server should run with its config under the cluster folder"
    if os.geteuid() == 0:
        assert any(p.username() == "eshybrid" for p in procs), "servers must not run as root"

    status = _cli("cluster", "status")
    assert status.returncode == 0
    line = next(row for row in status.stdout.splitlines() if row.startswith(name + "\t"))
    assert "\tup\t" in line and url in line

    down = _cli("cluster", "down", "--name", name, "--purge")
    assert down.returncode == 0, down.stderr
    assert f"{name}: stopped" in down.stdout
    assert _processes_using(cluster_dir) == []
    assert not Path(cluster_dir).exists()
    with pytest.raises(OSError):
        urllib.request.urlopen(url, timeout=5)
    assert name not in _cli("cluster", "status").stdout


@pytest.mark.integration
def test_cli_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        result = _cli("cluster", "up", "--flavor", "elasticsearch", "--port", str(port), "--name", f"test-busy-{port}")
    assert result.returncode == 2
    assert result.stderr.startswith("error: port ")
    assert "in use" in result.stderr and "Traceback" not in result.stderr
    assert result.stdout == ""
