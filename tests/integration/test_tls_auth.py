"""TLS verification and credentials against real clusters behind a TLS + auth nginx proxy.

Each failure must be typed and say what to do, and no secret may show up in
logs (DEBUG, elastic_transport included), ``repr``, messages or pickles.
"""

from __future__ import annotations

import base64
import logging
import pickle
import traceback
from collections.abc import Iterator
from typing import Any

import pytest

from connector import Cluster, connect
from connector.errors import AuthenticationError, ClusterError, TLSVerificationError
from tests.fixtures.tls import TlsEndpoint

pytestmark = [pytest.mark.integration]

# elastic_transport.node does not propagate to the root logger: hook caplog in directly.
_QUIET_LOGGERS = ("elastic_transport.node",)


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)
    hooked = []
    for name in _QUIET_LOGGERS:
        logger = logging.getLogger(name)
        hooked.append((logger, logger.level))
        logger.addHandler(caplog.handler)
        logger.setLevel(logging.DEBUG)
    yield caplog
    for logger, level in hooked:
        logger.removeHandler(caplog.handler)
        logger.setLevel(level)


def expected_flavor(endpoint: TlsEndpoint) -> str:
    return "elasticsearch" if endpoint.name.startswith("es") else "opensearch"


def test_right_ca_and_password(tls_endpoint: TlsEndpoint) -> None:
    with connect(
        tls_endpoint.basic_url,
        basic_auth=(tls_endpoint.username, tls_endpoint.password),
        ca_certs=tls_endpoint.ca_certs,
    ) as cluster:
        assert cluster.capabilities.flavor == expected_flavor(tls_endpoint)
        assert cluster.request("GET", "/_cluster/health").body["status"] in ("green", "yellow")


def test_commands_and_the_search_service_connect_through_one_spec(
    tls_endpoint: TlsEndpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ConnectionSettings`` (CLI, env ``ESHYBRID_*``) and ``SearchServiceSettings`` share ``ClusterSpec.connect``."""
    from pydantic import SecretStr

    from connector.cluster.settings import ConnectionSettings
    from connector.search.settings import SearchServiceSettings

    for name in ("URL", "API_KEY", "USERNAME", "PASSWORD", "CA_CERTS", "VERIFY_CERTS"):
        monkeypatch.delenv(f"ESHYBRID_{name}", raising=False)
    monkeypatch.setenv("ESHYBRID_URL", tls_endpoint.basic_url)
    monkeypatch.setenv("ESHYBRID_USERNAME", tls_endpoint.username)
    monkeypatch.setenv("ESHYBRID_PASSWORD", tls_endpoint.password)
    monkeypatch.setenv("ESHYBRID_CA_CERTS", tls_endpoint.ca_certs)
    settings = ConnectionSettings()
    with settings.connect() as cluster:
        assert cluster.capabilities.flavor == expected_flavor(tls_endpoint)
    with settings.cluster_spec().connect() as cluster:  # what a Ray task does: no GET / up front
        assert cluster.request("GET", "/_cluster/health").body["status"] in ("green", "yellow")
    service = SearchServiceSettings(
        cluster_url=tls_endpoint.api_key_url,
        api_key=SecretStr(tls_endpoint.api_key),
        ca_certs=tls_endpoint.ca_certs,
        index="any",
    )
    with service.cluster_spec().connect(detect=True) as cluster:
        assert cluster.capabilities.flavor == expected_flavor(tls_endpoint)


def test_right_ca_and_api_key(tls_endpoint: TlsEndpoint) -> None:
    with connect(tls_endpoint.api_key_url, api_key=tls_endpoint.api_key, ca_certs=tls_endpoint.ca_certs) as cluster:
        assert cluster.capabilities.flavor == expected_flavor(tls_endpoint)
        assert cluster.capabilities.major in (3, 9)


def test_credentials_in_the_url_are_used_and_hidden(tls_endpoint: TlsEndpoint) -> None:
    url = tls_endpoint.basic_url.replace("https://", f"https://{tls_endpoint.username}:{tls_endpoint.password}@")
    with connect(url, ca_certs=tls_endpoint.ca_certs) as cluster:
        assert cluster.capabilities.flavor == expected_flavor(tls_endpoint)
        assert tls_endpoint.password not in repr(cluster)
        assert tls_endpoint.password not in cluster.url


def test_wrong_ca_is_a_tls_error(tls_endpoint: TlsEndpoint) -> None:
    with pytest.raises(TLSVerificationError) as info:
        connect(
            tls_endpoint.basic_url,
            basic_auth=(tls_endpoint.username, tls_endpoint.password),
            ca_certs=tls_endpoint.wrong_ca_certs,
            max_retries=0,
        )
    message = str(info.value)
    assert "TLS verification failed" in message
    assert tls_endpoint.basic_url in message
    assert "ca_certs" in message
    assert info.value.url == tls_endpoint.basic_url


def test_system_cas_do_not_trust_the_test_ca(tls_endpoint: TlsEndpoint) -> None:
    with pytest.raises(TLSVerificationError):
        connect(tls_endpoint.api_key_url, api_key=tls_endpoint.api_key, max_retries=0)


def test_verify_certs_off_still_authenticates(tls_endpoint: TlsEndpoint) -> None:
    with pytest.warns(Warning):  # elastic_transport warns about the insecure connection
        cluster = connect(tls_endpoint.api_key_url, api_key=tls_endpoint.api_key, verify_certs=False)
    with cluster:
        assert cluster.capabilities.flavor == expected_flavor(tls_endpoint)


def test_wrong_password_is_an_authentication_error(tls_endpoint: TlsEndpoint) -> None:
    with pytest.raises(AuthenticationError) as info:
        connect(
            tls_endpoint.basic_url,
            basic_auth=(tls_endpoint.username, tls_endpoint.password + "x"),
            ca_certs=tls_endpoint.ca_certs,
        )
    assert info.value.status == 401
    assert "401" in str(info.value)
    assert "user/password" in str(info.value)


@pytest.mark.parametrize("api_key", ["wrong-key", None])
def test_wrong_or_missing_api_key_is_an_authentication_error(tls_endpoint: TlsEndpoint, api_key: str | None) -> None:
    with pytest.raises(AuthenticationError) as info:
        connect(tls_endpoint.api_key_url, api_key=api_key, ca_certs=tls_endpoint.ca_certs)
    assert info.value.status == 401
    assert "API key" in str(info.value)


def _failures(endpoint: TlsEndpoint) -> list[ClusterError]:
    """Every failure path, each with the real secret somewhere in its inputs."""
    wrong_ca = endpoint.wrong_ca_certs
    attempts: list[tuple[str, dict[str, Any]]] = [
        (endpoint.basic_url, {"basic_auth": (endpoint.username, endpoint.password), "ca_certs": wrong_ca}),
        (endpoint.api_key_url, {"api_key": endpoint.api_key, "ca_certs": wrong_ca}),
        # the right secret at the wrong door: refused, and still must not leak
        (endpoint.basic_url, {"api_key": endpoint.api_key, "ca_certs": endpoint.ca_certs}),
        (endpoint.api_key_url, {"basic_auth": (endpoint.username, endpoint.password), "ca_certs": endpoint.ca_certs}),
        (endpoint.basic_url.replace("https://", f"https://u:{endpoint.password}@"), {"ca_certs": endpoint.ca_certs}),
    ]
    errors: list[ClusterError] = []
    for url, options in attempts:
        with pytest.raises(ClusterError) as info:
            connect(url, max_retries=0, **options)
        errors.append(info.value)
    return errors


def _official(endpoint: TlsEndpoint, url: str, *, ca_certs: str | None = None, **auth: Any) -> Any:
    """The official client of the endpoint's flavor, configured as an app would (no retries: failures are fast)."""
    ca = ca_certs or endpoint.ca_certs
    if endpoint.name.startswith("os"):
        opensearchpy = pytest.importorskip("opensearchpy")
        http_auth = auth.get("basic_auth")
        headers = {"authorization": f"ApiKey {auth['api_key']}"} if "api_key" in auth else None
        return opensearchpy.OpenSearch(url, http_auth=http_auth, headers=headers, ca_certs=ca, max_retries=0)
    elasticsearch = pytest.importorskip("elasticsearch")
    return elasticsearch.Elasticsearch(url, ca_certs=ca, max_retries=0, **auth)


def test_secrets_never_leak(tls_endpoint: TlsEndpoint, all_logs: pytest.LogCaptureFixture) -> None:
    endpoint = tls_endpoint
    basic_token = base64.b64encode(f"{endpoint.username}:{endpoint.password}".encode()).decode()
    forbidden = (endpoint.password, endpoint.api_key, basic_token)

    clusters: list[Cluster] = [
        connect(endpoint.basic_url, basic_auth=(endpoint.username, endpoint.password), ca_certs=endpoint.ca_certs),
        connect(endpoint.api_key_url, api_key=endpoint.api_key, ca_certs=endpoint.ca_certs),
        # the app's own official client, holding the secret: our wrapper must not show it either
        connect(_official(endpoint, endpoint.basic_url, basic_auth=(endpoint.username, endpoint.password))),
    ]
    for cluster in clusters:
        cluster.request("GET", "/_cluster/health")
        cluster.request("GET", "/no-such-index-eshybrid/_search", ignore=(404,))
    errors = _failures(endpoint)
    assert {type(e) for e in errors} == {TLSVerificationError, AuthenticationError}
    for client in (  # the same failures through the official client: typed, and silent about the secret
        _official(endpoint, endpoint.basic_url, basic_auth=(endpoint.username, "wrong-" + endpoint.password)),
        _official(endpoint, endpoint.api_key_url, api_key=endpoint.api_key, ca_certs=endpoint.wrong_ca_certs),
    ):
        with pytest.raises(ClusterError) as info:
            connect(client)
        errors.append(info.value)
    assert {type(e) for e in errors[-2:]} == {TLSVerificationError, AuthenticationError}

    texts = {"logs": all_logs.text, **{f"repr(cluster {i})": repr(c) for i, c in enumerate(clusters)}}
    for i, err in enumerate(errors):
        texts[f"str(error {i})"] = str(err)
        texts[f"repr(error {i})"] = repr(err)
        texts[f"details(error {i})"] = repr(vars(err))
        texts[f"traceback(error {i})"] = "".join(traceback.format_exception(err))
        texts[f"pickle(error {i})"] = pickle.dumps(err).decode("latin-1")
    assert "> Authorization" in all_logs.text or "> authorization" in all_logs.text.lower(), (
        "the DEBUG request log was not captured; the leak check would prove nothing"
    )
    for where, text in texts.items():
        for secret in forbidden:
            assert secret not in text, f"a secret leaked into {where}"
    for cluster in clusters:
        cluster.close()
