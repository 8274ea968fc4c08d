"""ClusterSpec / ConnectionSettings: the one way every command and service reaches a cluster (no network)."""

from __future__ import annotations

import pickle
from typing import Any

import pytest
from pydantic import SecretStr

from connector.cluster import detect as _connect
from connector.cluster.capabilities import Capabilities
from connector.cluster.client import ApiResult, Cluster
from connector.cluster.detect import detect_capabilities
from connector.cluster.settings import ClusterSpec, ConnectionSettings
from connector.errors import ConfigError
from connector.search.settings import SearchServiceSettings
from connector.services.embedding import EmbeddingClient

_ENV = ("URL", "API_KEY", "USERNAME", "PASSWORD", "CA_CERTS", "VERIFY_CERTS", "EMBED_URL", "EMBED_API_KEY")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _ENV:
        monkeypatch.delenv(f"ESHYBRID_{name}", raising=False)


@pytest.fixture
def connect_calls(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Record what ``connector.connect`` is called with, instead of sending ``GET /``."""
    calls: list[dict[str, Any]] = []

    def fake_connect(url: str, **options: Any) -> Cluster:
        calls.append({"url": url, **options})
        return Cluster(url, **options)

    monkeypatch.setattr(_connect, "connect", fake_connect)
    return calls


def test_basic_auth_needs_a_username_and_defaults_the_password() -> None:
    assert ClusterSpec(url="http://h:9200").basic_auth is None
    assert ClusterSpec(url="http://h:9200", password=SecretStr("p")).basic_auth is None
    user, password = ClusterSpec(url="http://h:9200", username="u", password=SecretStr("p")).basic_auth or ("", None)
    assert (user, password.get_secret_value() if password else None) == ("u", "p")
    assert ClusterSpec(url="http://h:9200", username="u").basic_auth == ("u", SecretStr(""))


def test_spec_connect_without_detect_sends_nothing(connect_calls: list[dict[str, Any]]) -> None:
    spec = ClusterSpec(url="http://h:9201/", username="u", password=SecretStr("secret"), request_timeout_s=7.0)
    cluster = spec.connect()
    try:
        assert isinstance(cluster, Cluster) and connect_calls == []
        assert (cluster.url, cluster.request_timeout_s) == ("http://h:9201", 7.0)
        assert "secret" not in repr(cluster) and "auth=basic" in repr(cluster)
    finally:
        cluster.close()


def test_settings_connect_detects_with_the_env_credentials(
    monkeypatch: pytest.MonkeyPatch, connect_calls: list[dict[str, Any]]
) -> None:
    monkeypatch.setenv("ESHYBRID_URL", "http://env:9200")
    monkeypatch.setenv("ESHYBRID_USERNAME", "elastic")
    monkeypatch.setenv("ESHYBRID_PASSWORD", "pw")
    monkeypatch.setenv("ESHYBRID_VERIFY_CERTS", "false")
    settings = ConnectionSettings()
    settings.connect().close()
    settings.connect("http://flag:9200", request_timeout_s=5.0).close()
    first, second = connect_calls
    assert (first["url"], first["request_timeout_s"], first["verify_certs"]) == ("http://env:9200", 30.0, False)
    assert first["basic_auth"] == ("elastic", SecretStr("pw")) and first["api_key"] is None
    assert (second["url"], second["request_timeout_s"]) == ("http://flag:9200", 5.0)
    # the jobs' spec (it crosses to Ray tasks) keeps its own, longer timeout
    assert settings.cluster_spec().request_timeout_s == 60.0


def test_settings_without_a_url_say_what_to_do() -> None:
    with pytest.raises(ConfigError, match="pass --url or set ESHYBRID_URL"):
        ConnectionSettings().connect()


def test_search_service_reaches_its_cluster_the_same_way(connect_calls: list[dict[str, Any]]) -> None:
    settings = SearchServiceSettings(
        cluster_url="http://c:9200", index="products", api_key=SecretStr("k"), request_timeout_s=3.0, verify_certs=False
    )
    spec = settings.cluster_spec()
    assert (spec.url, spec.request_timeout_s, spec.verify_certs, spec.basic_auth) == ("http://c:9200", 3.0, False, None)
    spec.connect(detect=True).close()
    assert connect_calls[0]["api_key"] == SecretStr("k")


def _pool_size(cluster: Cluster) -> int:
    (node,) = cluster._transport.node_pool.all()
    return int(node.pool.pool.maxsize)  # urllib3's pool: a request past it waits for a connection


def test_the_search_service_holds_a_connection_for_each_request_it_may_send_at_once(
    connect_calls: list[dict[str, Any]],
) -> None:
    # Two per search in flight (suggestion + profile read together) and four for the background writers; the
    # transport's default of 10 made a replica of 16-32 searches queue for connections when the cluster slowed.
    settings = SearchServiceSettings(cluster_url="http://c:9200", index="products", max_ongoing_requests=32)
    assert settings.cluster_spec().connections_per_node == 68
    with settings.cluster_spec().connect(detect=True) as cluster:
        assert connect_calls[0]["connections_per_node"] == 68
        assert _pool_size(cluster) == 68
    with ClusterSpec(url="http://h:9200").connect() as default:
        assert _pool_size(default) == 10  # the transport's own default for every other command


def test_embedding_client_from_flag_or_env(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="knn needs it: pass --embed-url or set ESHYBRID_EMBED_URL"):
        EmbeddingClient.from_settings(ConnectionSettings(), missing="knn needs it")
    monkeypatch.setenv("ESHYBRID_EMBED_URL", "http://env:8000/embed/")
    monkeypatch.setenv("ESHYBRID_EMBED_API_KEY", "tok")
    with EmbeddingClient.from_settings(ConnectionSettings(), max_retries=1) as client:
        assert (client.base_url, client.max_retries) == ("http://env:8000/embed", 1)
    with EmbeddingClient.from_settings(ConnectionSettings(), "http://flag:8000") as client:
        assert client.base_url == "http://flag:8000"


# -- capabilities: detected by connect(), handed in, or a clear error --------------------------------


class _Recorded(Cluster):
    """A Cluster whose requests are answered from a table (path -> (status, body, headers))."""

    answers: dict[str, tuple[int, Any, dict[str, str]]] = {}

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(url, **options)
        self.sent: list[str] = []

    def request(self, method: str, path: str, **options: Any) -> ApiResult:
        self.sent.append(f"{method} {path}")
        status, body, headers = self.answers.get(path, (404, {"error": "no"}, {}))
        ignore = tuple(options.get("ignore", ()))
        if status >= 300 and status not in ignore:
            raise AssertionError(f"unexpected {status} for {path}")
        return ApiResult(status=status, body=body, headers=headers)


_ES_NODES = {"nodes": {"n0": {"version": "9.5.4", "build_flavor": "default", "plugins": []}}}
_OS_NODES = {"nodes": {"n0": {"version": "2.19.1", "plugins": [{"name": "opensearch-knn"}]}}}
_OS_ROOT = {"version": {"number": "2.19.1", "distribution": "opensearch"}}


def test_connect_detects_and_hands_the_capabilities_to_the_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        _Recorded,
        "answers",
        {
            "/_nodes/plugins": (200, _ES_NODES, {"x-elastic-product": "Elasticsearch"}),
            "/_license": (200, {"license": {"type": "enterprise", "status": "active"}}, {}),
        },
    )
    monkeypatch.setattr(_connect, "Cluster", _Recorded)
    with _connect.connect("http://h:9200") as cluster:
        assert isinstance(cluster, _Recorded)
        assert cluster.sent == ["GET /_nodes/plugins", "GET /_license"]  # the node infos named ES: no GET /
        assert cluster.capabilities.flavor == "elasticsearch"
        assert cluster.capabilities.supports("es_linear_retriever")


def test_detect_asks_get_root_when_the_node_infos_leave_the_flavor_open(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_Recorded, "answers", {"/_nodes/plugins": (200, _OS_NODES, {}), "/": (200, _OS_ROOT, {})})
    cluster = _Recorded("http://h:9200")
    with cluster:
        caps = detect_capabilities(cluster)
        assert cluster.sent == ["GET /_nodes/plugins", "GET /"]  # no license on OpenSearch
        assert (caps.flavor, caps.version) == ("opensearch", (2, 19, 1))
        assert not caps.supports("os_hybrid_query")


def test_a_cluster_without_detection_says_how_to_get_capabilities() -> None:
    with Cluster("http://h:9200") as cluster, pytest.raises(ConfigError) as info:
        cluster.capabilities  # noqa: B018
    assert "connector.connect(url)" in str(info.value) and "capabilities=" in str(info.value)
    assert info.value.field == "capabilities"


def test_capabilities_detected_elsewhere_cross_a_process_boundary() -> None:
    caps = Capabilities.from_version("opensearch", "3.6.0", plugins=["opensearch-knn", "opensearch-neural-search"])
    shipped = pickle.loads(pickle.dumps(caps))  # what a Ray driver sends its tasks
    assert shipped == caps
    with ClusterSpec(url="http://h:9200").connect(capabilities=shipped) as cluster:
        assert cluster.capabilities is shipped


def test_capabilities_are_handed_in_once() -> None:
    es = Capabilities.from_version("elasticsearch", "9.5.4")
    with Cluster("http://h:9200") as cluster:
        cluster.capabilities = es
        cluster.capabilities = Capabilities.from_version("elasticsearch", "9.5.4")  # the same: fine
        with pytest.raises(ConfigError, match="already set"):
            cluster.capabilities = Capabilities.from_version("opensearch", "3.6.0")
        assert cluster.capabilities == es
