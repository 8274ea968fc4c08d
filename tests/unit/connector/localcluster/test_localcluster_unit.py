"""Pure parts of connector.localcluster: JDK choice, config rendering, plugin order, errors."""

from __future__ import annotations

import argparse
import pickle
import socket
from pathlib import Path

import pytest

from connector.cli.cluster import register
from connector.errors import LocalClusterError
from connector.localcluster import distribution as dist
from connector.localcluster import knnstub
from connector.localcluster.config import (
    DEFAULT_FLAVOR_VERSIONS,
    LocalClusterSettings,
    render_jvm_options,
    render_node_config,
    render_yaml,
    server_env,
)
from connector.localcluster.process import _red_settled, start_cluster
from connector.localcluster.state import LocalCluster, clusters_to_stop
from tests.fixtures.clusters import DEFAULT_VERSIONS


def _fake_jdk(root: Path, name: str, version: str) -> Path:
    home = root / name
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "java").write_text("#!/bin/sh\n")
    (home / "release").write_text(f'IMPLEMENTOR="test"\nJAVA_VERSION="{version}"\n')
    return home


@pytest.fixture
def jvm_dir(tmp_path: Path) -> Path:
    root = tmp_path / "jvm"
    _fake_jdk(root, "java-17-openjdk-amd64", "17.0.13")
    (root / "java-1.17.0-openjdk-amd64").symlink_to(root / "java-17-openjdk-amd64")
    _fake_jdk(root, "temurin-25-jdk-amd64", "25.0.1")
    (root / "not-a-jdk").mkdir()
    return root


def test_default_versions() -> None:
    assert DEFAULT_VERSIONS == {
        "es9": ("elasticsearch", "9.5.4"),
        "es8": ("elasticsearch", "8.19.9"),
        "os3": ("opensearch", "3.6.0"),
        "os2": ("opensearch", "2.19.1"),
    }
    assert DEFAULT_FLAVOR_VERSIONS == {"elasticsearch": "9.5.4", "opensearch": "3.6.0"}


def test_find_java_homes_dedupes_symlinks_and_skips_non_jdks(jvm_dir: Path) -> None:
    homes = dist.find_java_homes([jvm_dir])
    assert sorted(h.major for h in homes) == [17, 25]


def test_java_8_style_version_is_read(tmp_path: Path) -> None:
    _fake_jdk(tmp_path, "jdk8", "1.8.0_402")
    assert [h.major for h in dist.find_java_homes([tmp_path])] == [8]


@pytest.mark.parametrize(
    ("key", "major"),
    [("es9", 25), ("es8", 17), ("os3", 25), ("os2", 17)],
)
def test_choose_java_per_server(jvm_dir: Path, key: str, major: int) -> None:
    flavor, version = DEFAULT_VERSIONS[key]
    chosen = dist.choose_java(flavor, version, homes=dist.find_java_homes([jvm_dir]))
    assert chosen.major == major


def test_choose_java_without_a_fitting_jdk_says_what_to_do(tmp_path: Path) -> None:
    _fake_jdk(tmp_path, "java-17", "17.0.1")
    with pytest.raises(LocalClusterError) as err:
        dist.choose_java("elasticsearch", "9.5.4", homes=dist.find_java_homes([tmp_path]))
    assert err.value.details["java_range"] == (21, 25)
    assert "ESHYBRID_JAVA_HOME" in str(err.value)
    assert "17" in str(err.value)


def test_choose_java_override_wins(jvm_dir: Path) -> None:
    chosen = dist.choose_java("elasticsearch", "9.5.4", homes=[], override=jvm_dir / "java-17-openjdk-amd64")
    assert chosen.major == 17


def test_choose_java_override_must_be_a_jdk(tmp_path: Path) -> None:
    with pytest.raises(LocalClusterError, match="not a JDK"):
        dist.choose_java("opensearch", "3.6.0", homes=[], override=tmp_path)


def test_supported_majors() -> None:
    assert dist.supported_java_majors("elasticsearch", "9.5.4") == (21, 25)
    assert dist.supported_java_majors("elasticsearch", "8.19.9") == (17, 24)
    assert dist.supported_java_majors("opensearch", "3.6.0") == (21, 25)
    assert dist.supported_java_majors("opensearch", "2.19.1") == (11, 21)


def test_plugins_are_completed_and_ordered() -> None:
    assert dist.ordered_plugins(["neural"]) == ("knn", "neural")
    assert dist.ordered_plugins(["neural", "ml"]) == ("knn", "job-scheduler", "ml", "neural")
    assert dist.ordered_plugins([]) == ()
    with pytest.raises(LocalClusterError, match="unknown plugin"):
        dist.ordered_plugins(["security"])


def test_dist_dir_name_has_no_plus() -> None:
    # opensearch-plugin URL-decodes its paths: "+" would become a space.
    assert dist.dist_dir_name("opensearch", "3.6.0", ("knn", "neural")) == "opensearch-3.6.0_knn_neural"
    assert dist.dist_dir_name("elasticsearch", "9.5.4", ()) == "elasticsearch-9.5.4"


def test_maven_coordinates() -> None:
    assert (
        dist.maven_coordinates("elasticsearch", "9.5.4")
        == "org.elasticsearch.distribution.integ-test-zip:elasticsearch:9.5.4:zip"
    )
    assert dist.plugin_coordinates("neural", "2.19.1") == "org.opensearch.plugin:neural-search:2.19.1.0:zip"


def test_jar_base() -> None:
    assert dist._jar_base("httpcore5-5.4.jar") == "httpcore5"
    assert dist._jar_base("netty-codec-4.1.118.Final.jar") == "netty-codec"
    assert dist._jar_base("opensearch-rest-client-2.19.1.jar") == "opensearch-rest-client"


def test_node_config_elasticsearch(tmp_path: Path) -> None:
    config = render_node_config(
        "elasticsearch", name="dev", port=9201, data_dir=tmp_path / "d", logs_dir=tmp_path / "l"
    )
    assert config["network.host"] == "127.0.0.1"
    assert config["discovery.type"] == "single-node"
    assert config["http.port"] == 9201
    assert config["xpack.security.enabled"] is False
    assert config["cluster.routing.allocation.disk.threshold_enabled"] is False


def test_node_config_opensearch_has_no_xpack_or_security_keys(tmp_path: Path) -> None:
    config = render_node_config("opensearch", name="dev", port=0, data_dir=tmp_path, logs_dir=tmp_path)
    assert not any(k.startswith(("xpack.", "plugins.security")) for k in config)


def test_render_yaml() -> None:
    text = render_yaml({"a.b": True, "port": 9200, "path": "/x y"})
    assert "a.b: true\n" in text
    assert "port: 9200\n" in text
    assert 'path: "/x y"\n' in text


def test_render_jvm_options_makes_paths_absolute(tmp_path: Path) -> None:
    stock = (
        "-XX:HeapDumpPath=data\n"
        "-XX:ErrorFile=logs/hs_err_pid%p.log\n"
        "-Xlog:gc*,gc+age=trace,safepoint:file=logs/gc.log:utctime,level,pid,tags:filecount=32,filesize=64m\n"
    )
    out = render_jvm_options(stock, logs_dir=tmp_path / "logs", data_dir=tmp_path / "data")
    assert f"-XX:HeapDumpPath={tmp_path / 'data'}" in out
    assert f"-XX:ErrorFile={tmp_path / 'logs'}/hs_err_pid%p.log" in out
    assert f"file={tmp_path / 'logs'}/gc.log" in out


def test_server_env(tmp_path: Path) -> None:
    java = dist.JavaHome(path=tmp_path / "jdk", major=25)
    env = server_env(
        "opensearch",
        java=java,
        config_dir=tmp_path / "config",
        tmp_dir=tmp_path / "tmp",
        heap_mb=512,
        base={"PATH": "/usr/bin", "OPENSEARCH_JAVA_OPTS": "-Xmx8g", "JAVA_TOOL_OPTIONS": "-Dx"},
    )
    assert env["OPENSEARCH_JAVA_OPTS"] == "-Xms512m -Xmx512m"
    assert env["OPENSEARCH_JAVA_HOME"] == str(java.path)
    assert env["OPENSEARCH_PATH_CONF"] == str(tmp_path / "config")
    assert "JAVA_TOOL_OPTIONS" not in env
    es_env = server_env("elasticsearch", java=java, config_dir=tmp_path, tmp_dir=tmp_path, heap_mb=256, base={})
    assert es_env["ES_JAVA_OPTS"] == "-Xms256m -Xmx256m"
    assert es_env["ES_PATH_CONF"] == str(tmp_path)


def test_state_round_trip(tmp_path: Path) -> None:
    cluster = LocalCluster(
        name="x", flavor="opensearch", version="3.6.0", url="http://127.0.0.1:1", port=1, pid=2,
        plugins=("knn",), java_home="/j", java_major=25, cluster_dir=str(tmp_path), started_at=1.0,
    )  # fmt: skip
    assert LocalCluster.from_json(cluster.to_json()) == cluster


def test_error_pickles_with_attributes() -> None:
    err = LocalClusterError("port 1 in use", port=1, name="x")
    again = pickle.loads(pickle.dumps(err))
    assert (again.details, str(again)) == ({"port": 1, "name": "x"}, "port 1 in use")


def test_settings_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ESHYBRID_HOME", str(tmp_path))
    monkeypatch.setenv("ESHYBRID_CLUSTER_HEAP_MB", "256")
    s = LocalClusterSettings()
    assert s.home == tmp_path
    assert s.cluster_heap_mb == 256
    with pytest.raises(ValueError):
        LocalClusterSettings(cluster_heap_mb=1)


def test_missing_mvn_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(LocalClusterError, match="Maven") as err:
        dist.fetch_artifact("g:a:1:zip", tmp_path, mvn="definitely-not-mvn")
    assert err.value.details["mvn"] == "definitely-not-mvn"


def test_port_in_use_is_refused_before_any_download(tmp_path: Path, jvm_dir: Path) -> None:
    settings = LocalClusterSettings(home=tmp_path / "home", jvm_dir=jvm_dir, mvn="definitely-not-mvn")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        with pytest.raises(LocalClusterError, match="in use") as err:
            start_cluster(flavor="opensearch", port=port, name="busy", settings=settings)
    assert err.value.details["port"] == port


def test_unknown_flavor(tmp_path: Path) -> None:
    with pytest.raises(LocalClusterError, match="unknown flavor"):
        start_cluster(flavor="solr", port=0, settings=LocalClusterSettings(home=tmp_path))  # type: ignore[arg-type]


def test_cli_parses_cluster_commands() -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    up = parser.parse_args(["cluster", "up", "--flavor", "opensearch", "--port", "0", "--no-neural"])
    assert (up.flavor, up.port, up.neural, up.version) == ("opensearch", 0, False, None)
    assert parser.parse_args(["cluster", "up", "--flavor", "elasticsearch"]).neural is True
    down = parser.parse_args(["cluster", "down", "--all"])
    assert down.all and down.name is None
    bare = parser.parse_args(["cluster", "down"])  # the one that runs
    assert (bare.all, bare.name) == (False, None)
    with pytest.raises(SystemExit):
        parser.parse_args(["cluster", "down", "--name", "x", "--all"])


def test_down_without_a_name_stops_the_one_that_runs() -> None:
    assert clusters_to_stop({"a": False, "b": True}) == ["b"]
    assert clusters_to_stop({"a": False}) == []
    assert clusters_to_stop({}) == []


def test_down_without_a_name_refuses_to_guess_among_several() -> None:
    with pytest.raises(LocalClusterError) as err:
        clusters_to_stop({"b": True, "a": True, "c": False})
    message = str(err.value)
    assert "2 local clusters are running (a, b)" in message
    assert "--name" in message and "--all" in message
    assert err.value.details["running"] == ["a", "b"]


def test_down_by_name_or_all() -> None:
    running = {"b": True, "a": True, "stale": False}
    assert clusters_to_stop(running, name="a") == ["a"]
    assert clusters_to_stop(running, name="unknown") == ["unknown"]  # stopping it is a no-op
    assert clusters_to_stop(running, all_clusters=True) == ["a", "b", "stale"]
    with pytest.raises(LocalClusterError, match="not both"):
        clusters_to_stop(running, name="a", all_clusters=True)


@pytest.mark.parametrize(("flavor", "root"), [("elasticsearch", False), ("opensearch", True)])
def test_health_url_answers_where_get_root_may_not(flavor: str, root: bool) -> None:
    cluster = LocalCluster(
        name="x", flavor=flavor, version="1.0.0", url="http://127.0.0.1:9", port=9, pid=2,  # type: ignore[arg-type]
        plugins=(), java_home="/j", java_major=25, cluster_dir="/c", started_at=1.0,
    )  # fmt: skip
    assert cluster.health_url == "http://127.0.0.1:9/_cluster/health"
    assert cluster.has_root_endpoint is root


_JAVAP = """Compiled from "FaissService.java"
class org.opensearch.knn.jni.FaissService {
  public static native long initIndex(long, int, java.util.Map<java.lang.String, java.lang.Object>);
    descriptor: (JILjava/util/Map;)J
  public static native void initLibrary();
    descriptor: ()V
  public static native void free(long, boolean);
    descriptor: (JZ)V
  public static native float[] q(long, byte[], int);
    descriptor: (J[BI)[F
  public static native float[] q(long, byte[], int, long[]);
    descriptor: (J[BI[J)[F
  static void notNative();
    descriptor: ()V
}
"""


def test_knn_stub_parses_native_methods_only() -> None:
    methods = knnstub.parse_javap_natives("org/opensearch/knn/jni/FaissService", _JAVAP)
    assert [m.name for m in methods] == ["initIndex", "initLibrary", "free", "q", "q"]
    assert methods[0].descriptor == "(JILjava/util/Map;)J"


def test_knn_stub_source_throws_except_for_init_and_free() -> None:
    source = knnstub.render_stub_source(knnstub.parse_javap_natives("org/opensearch/knn/jni/FaissService", _JAVAP))
    lines = {line.split("(")[0].split()[-1]: line for line in source.splitlines() if "JNICALL" in line}
    assert "fail(env); return 0;" in lines["Java_org_opensearch_knn_jni_FaissService_initIndex"]
    assert "fail(env)" not in lines["Java_org_opensearch_knn_jni_FaissService_initLibrary"]
    assert "fail(env)" not in lines["Java_org_opensearch_knn_jni_FaissService_free"]
    # Overloads get the long JNI names (argument descriptors mangled).
    assert "Java_org_opensearch_knn_jni_FaissService_q__J_3BI" in lines
    assert "Java_org_opensearch_knn_jni_FaissService_q__J_3BI_3J" in lines
    assert "lucene" in source


def test_red_settles_only_when_recovery_is_over() -> None:
    settled = {"status": "red", "initializing_shards": 0, "delayed_unassigned_shards": 0, "number_of_pending_tasks": 0}
    assert _red_settled(settled)
    assert not _red_settled({**settled, "initializing_shards": 1})
    assert not _red_settled({**settled, "status": "yellow"})
