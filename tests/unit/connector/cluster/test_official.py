"""Bring your own client, without a cluster: which client is which, the detection steps (sans-IO),
the answer checks every kind shares, and the clear errors for a wrong kind."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from connector import aconnect, as_cluster, connect
from connector.cluster.client import ApiResult, check_answer, ndjson_bytes, request_target
from connector.cluster.detect import Read, detection_steps
from connector.cluster.official import OfficialCluster, client_kind, client_url, media_type_refusal
from connector.errors import (
    AuthenticationError,
    ClusterApiError,
    ClusterConnectionError,
    ConfigError,
    UnsupportedServerError,
)
from tests.unit.connector.cluster.test_capabilities import es_root, license_of, nodes

elasticsearch = pytest.importorskip("elasticsearch")
opensearchpy = pytest.importorskip("opensearchpy")

# Nothing listens there: building a client sends nothing, a request is refused at once.
NOWHERE = "http://127.0.0.1:1"


def test_client_kinds_are_read_from_the_class() -> None:
    assert client_kind(elasticsearch.Elasticsearch(NOWHERE)) == "elasticsearch"
    assert client_kind(opensearchpy.OpenSearch(NOWHERE)) == "opensearch"
    assert client_kind(opensearchpy.AsyncOpenSearch(NOWHERE)) == "async-opensearch"
    assert client_kind(object()) is None and client_kind(NOWHERE) is None

    class AppClient(elasticsearch.Elasticsearch):  # an app's own subclass is still the official client
        pass

    assert client_kind(AppClient(NOWHERE)) == "elasticsearch"


def test_client_url_never_carries_credentials() -> None:
    es = elasticsearch.Elasticsearch("https://elastic:hunter2@es.example:9243", api_key="c2VjcmV0")
    assert client_url(es) == "https://es.example:9243"
    os_client = opensearchpy.OpenSearch("https://admin:hunter2@os.example:9200")
    assert client_url(os_client) == "https://os.example:9200"
    wrapped = OfficialCluster(es)
    assert "hunter2" not in repr(wrapped) and "c2VjcmV0" not in repr(wrapped)


def test_wrong_kinds_get_clear_errors() -> None:
    with pytest.raises(ConfigError, match="aconnect"):
        connect(opensearchpy.AsyncOpenSearch(NOWHERE))
    with pytest.raises(ConfigError, match="aconnect"):
        as_cluster(elasticsearch.AsyncElasticsearch(NOWHERE))
    with pytest.raises(ConfigError, match="connector.connect"):
        asyncio.run(aconnect(opensearchpy.OpenSearch(NOWHERE)))


def test_an_unreachable_cluster_raises_our_error_through_each_client() -> None:
    for client in (
        elasticsearch.Elasticsearch(NOWHERE, max_retries=0),
        opensearchpy.OpenSearch(NOWHERE, max_retries=0),
    ):
        with pytest.raises(ClusterConnectionError, match="cannot reach the cluster at http://127.0.0.1:1"):
            connect(client)


def _drive(steps: Any, answers: dict[str, ApiResult]) -> tuple[Any, list[str]]:
    asked: list[str] = []
    read: Read = next(steps)
    while True:
        asked.append(read.path)
        try:
            read = steps.send(answers[read.path])
        except StopIteration as done:
            return done.value, asked


def _ok(body: Any, **headers: str) -> ApiResult:
    return ApiResult(status=200, body=body, headers=headers)


def test_detection_steps_ask_only_what_they_need() -> None:
    es = {"/_nodes/plugins": _ok(nodes("9.5.4", build_flavor=True)), "/_license": _ok(license_of("basic"))}
    caps, asked = _drive(detection_steps("http://es"), es)
    assert caps.flavor == "elasticsearch" and asked == ["/_nodes/plugins", "/_license"]
    # no monitor privilege: GET / names the server
    hidden = {
        "/_nodes/plugins": ApiResult(403, {"error": "forbidden"}, {}),
        "/": _ok(es_root("8.19.9")),
        "/_license": ApiResult(404, {}, {}),
    }
    caps, asked = _drive(detection_steps("http://es"), hidden)
    assert caps.version == (8, 19, 9) and asked == ["/_nodes/plugins", "/", "/_license"]


def test_answers_are_checked_alike_whatever_carried_them() -> None:
    assert check_answer("HEAD", "/i", "u", 404, None, {}, ignore=(404,)).status == 404
    with pytest.raises(AuthenticationError):
        check_answer("GET", "/", "u", 401, {"error": "nope"}, {})
    with pytest.raises(ClusterApiError) as err:
        check_answer("POST", "/i/_search", "u", 404, {"error": {"type": "index_not_found_exception"}}, {})
    assert (err.value.status, err.value.error_type) == (404, "index_not_found_exception")  # type: ignore[attr-defined]
    refused = {"error": {"type": "media_type_header_exception", "reason": "Invalid media-type"}}
    assert isinstance(media_type_refusal(400, refused, "u"), UnsupportedServerError)
    assert media_type_refusal(404, refused, "u") is None
    assert request_target("i/_search", {"size": 3, "x": None, "ok": True}) == "/i/_search?size=3&ok=true"
    assert ndjson_bytes([{"a": 1}, {}, b"{}", "{}"]) == b'{"a":1}\n{}\n{}\n{}\n'
