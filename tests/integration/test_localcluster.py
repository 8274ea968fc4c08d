"""Real local clusters: the four servers, the CLI's up/status/down, and its errors."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from connector.localcluster import LocalCluster, LocalClusterSettings, server_version
from connector.localcluster.state import write_state
from tests.fixtures.clusters import DEFAULT_VERSIONS

REPO = Path(__file__).resolve().parents[2]


def _cli(*args: str, timeout_s: float = 600, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``eshybrid ARGS``; with ``home``, under that ``ESHYBRID_HOME`` (its own clusters only)."""
    env = {**os.environ, "ESHYBRID_HOME": str(home)} if home is not None else None
    return subprocess.run(
        [sys.executable, "-m", "connector.cli", *args],
        cwd=REPO,
        env=env,
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


# -- `cluster down` without --name, and the URL `cluster up` prints ------------------------------------------


@pytest.fixture
def own_home() -> Iterator[Path]:
    """An ``ESHYBRID_HOME`` of the test's own that shares the downloaded distributions.

    ``cluster down`` without ``--name`` looks at every cluster of its home: in this one it sees
    the test's clusters only, never the dev clusters other work runs against.
    """
    shared = LocalClusterSettings().home
    # Not under pytest's tmp_path (mode 0700 parents): the unprivileged server user must traverse it.
    home = Path(tempfile.mkdtemp(prefix="eshybrid-test-home-", dir="/var/tmp"))
    for sub in ("dist", "downloads"):
        (shared / sub).mkdir(parents=True, exist_ok=True)
        (home / sub).symlink_to(shared / sub)
    yield home
    _cli("cluster", "down", "--all", "--purge", home=home)
    for sub in ("dist", "downloads"):
        (home / sub).unlink()
    shutil.rmtree(home, ignore_errors=True)


def _fake_server(home: Path, name: str) -> subprocess.Popen[bytes]:
    """A process recorded as cluster ``name`` (its own process group, as a real server has)."""
    proc = subprocess.Popen(["sleep", "600"], start_new_session=True)
    threading.Thread(target=proc.wait, daemon=True).start()  # reaped as soon as it dies: no zombie to wait for
    cluster_dir = home / "clusters" / name
    cluster_dir.mkdir(parents=True)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing answers there
    write_state(LocalCluster(
        name=name, flavor="opensearch", version="3.6.0", url=f"http://127.0.0.1:{port}", port=port, pid=proc.pid,
        plugins=("knn",), java_home="/nonexistent", java_major=21, cluster_dir=str(cluster_dir),
        started_at=time.time(),
    ))  # fmt: skip
    return proc


@pytest.mark.integration
@pytest.mark.slow
def test_cli_down_without_name_stops_the_one_cluster_and_up_prints_a_url_that_answers(own_home: Path) -> None:
    name = f"test-one-{uuid.uuid4().hex[:8]}"
    up = _cli("cluster", "up", "--flavor", "elasticsearch", "--port", "0", "--name", name, home=own_home)
    assert up.returncode == 0, up.stderr
    lines = up.stdout.strip().splitlines()
    url = lines[-1]
    assert url.startswith("http://127.0.0.1:")
    hint = next(line for line in lines if line.startswith("check it: curl "))
    check_url = hint.split()[3]
    assert check_url == f"{url}/_cluster/health"
    with urllib.request.urlopen(check_url, timeout=30) as resp:  # what `curl <printed URL>` gets
        assert resp.status == 200
        assert json.loads(resp.read())["status"] in ("yellow", "green")
    if "rest-root" in hint:  # the hint says why the bare URL is not the one to curl
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{url}/", timeout=30)
        assert refused.value.code == 405

    cluster_dir = str(own_home / "clusters" / name)
    down = _cli("cluster", "down", home=own_home)
    assert down.returncode == 0, down.stderr
    assert down.stdout == f"{name}: stopped\n"
    assert _processes_using(cluster_dir) == []
    again = _cli("cluster", "down", home=own_home)
    assert (again.returncode, again.stdout) == (0, "no local cluster is running\n")


@pytest.mark.integration
def test_cli_down_without_name_lists_several_and_all_stops_them(own_home: Path) -> None:
    procs = {name: _fake_server(own_home, name) for name in ("fake-b", "fake-a")}
    refused = _cli("cluster", "down", home=own_home)
    assert refused.returncode == 2
    assert "2 local clusters are running (fake-a, fake-b)" in refused.stderr
    assert "--name" in refused.stderr and "--all" in refused.stderr
    assert refused.stdout == ""
    assert all(proc.poll() is None for proc in procs.values()), "nothing may be stopped when the choice is unclear"

    down = _cli("cluster", "down", "--all", home=own_home)
    assert down.returncode == 0, down.stderr
    assert down.stdout == "fake-a: stopped\nfake-b: stopped\n"
    for proc in procs.values():
        assert proc.wait(timeout=30) is not None
    assert "fake-" not in _cli("cluster", "status", home=own_home).stdout
