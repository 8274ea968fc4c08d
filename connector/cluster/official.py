"""Bring your own client: a :class:`Cluster` that sends through the user's official client.

An app that already holds a configured ``elasticsearch.Elasticsearch`` (8.x or 9.x) or
``opensearchpy.OpenSearch`` (cloud id, API keys, AWS SigV4, node pool, its own retries) hands it
to :func:`connector.connect`; every request then goes through that client's own low-level API
(``client.perform_request`` on elasticsearch-py, ``client.transport.perform_request`` on
opensearch-py), so its auth, TLS, node pool and retry settings apply.  Answers are checked by the
same code as our own transport's (:func:`connector.cluster.client.check_answer`), so errors are
the same :mod:`connector.errors` types whatever carried the request.

Neither client is imported here: the kind is read from the object's class (both are optional
extras, ``eshybrid[elasticsearch]`` / ``eshybrid[elasticsearch8]`` / ``eshybrid[opensearch]``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Literal

from connector.cluster.capabilities import Capabilities
from connector.cluster.client import (
    _NDJSON,
    TRANSPORT_FAILURES,
    Cluster,
    ndjson_bytes,
    transport_error,
)
from connector.errors import ConfigError, UnsupportedServerError

__all__ = ["media_type_refusal", "ClientKind", "OfficialCluster", "client_kind", "client_url", "wrap_client"]

logger = logging.getLogger(__name__)

ClientKind = Literal["elasticsearch", "opensearch", "async-elasticsearch", "async-opensearch"]

# The official clients raise on every status >= 300 unless told otherwise: we take every answer
# and check it ourselves, so the same statuses mean the same errors through every client.
_EVERY_ERROR_STATUS = tuple(range(300, 600))
# elasticsearch-py's API methods set ``accept`` per call (its low-level perform_request does not), and
# turns both media types into ``compatible-with=<client major>`` ones: a server wants the pair.
_ACCEPT_JSON = {"accept": "application/json"}
# What an ES 8 server answers a 9.x client's ``compatible-with=9`` media type with.
_MEDIA_TYPE_ERROR = "media_type_header_exception"


def client_kind(client: object) -> ClientKind | None:
    """Which official client ``client`` is (by its class, nothing imported), or None."""
    for cls in type(client).__mro__:
        top = cls.__module__.partition(".")[0]
        if top == "elasticsearch" and cls.__name__ in ("Elasticsearch", "AsyncElasticsearch"):
            return "elasticsearch" if cls.__name__ == "Elasticsearch" else "async-elasticsearch"
        if top == "opensearchpy" and cls.__name__ in ("OpenSearch", "AsyncOpenSearch"):
            return "opensearch" if cls.__name__ == "OpenSearch" else "async-opensearch"
    return None


def client_url(client: Any) -> str:
    """The first node's ``scheme://host:port[/prefix]`` for messages (never credentials)."""
    try:
        transport = client.transport
        if hasattr(transport, "node_pool"):  # elastic-transport (elasticsearch-py 8/9)
            config = transport.node_pool.all()[0].config
            return f"{config.scheme}://{config.host}:{config.port}{config.path_prefix}"
        host = transport.hosts[0]  # opensearch-py: normalised host dicts
        scheme = host.get("scheme") or ("https" if host.get("use_ssl") else "http")
        return f"{scheme}://{host['host']}:{host.get('port', 9200)}{host.get('url_prefix', '')}"
    except (AttributeError, IndexError, KeyError, TypeError):
        return f"<{type(client).__name__}>"


def media_type_refusal(status: int, body: Any, url: str) -> UnsupportedServerError | None:
    """The clear error for an ES 8 server refusing a 9.x client's media type, else None."""
    error = body.get("error") if isinstance(body, Mapping) else None
    if status == 400 and isinstance(error, Mapping) and error.get("type") == _MEDIA_TYPE_ERROR:
        return UnsupportedServerError(
            f"the server at {url} refused the client's media type ({error.get('reason', '')}): an Elasticsearch "
            "8 server needs the 8.x client (pip install 'eshybrid[elasticsearch8]')",
            url=url,
        )
    return None


class OfficialCluster(Cluster):
    """A :class:`Cluster` whose requests go through an official sync client (see the module docstring).

    Build it with :func:`connector.connect` (capabilities detected) or :func:`wrap_client`.  The
    client stays the caller's: :meth:`close` does not close it.
    """

    def __init__(self, client: Any, *, capabilities: Capabilities | None = None) -> None:
        kind = client_kind(client)
        if kind not in ("elasticsearch", "opensearch"):
            raise ConfigError(
                f"expected an elasticsearch.Elasticsearch or opensearchpy.OpenSearch client, got "
                f"{type(client).__name__} (async clients: await connector.aconnect(client))",
                field="client",
            )
        self.kind: ClientKind = kind
        self.url = client_url(client)
        self.request_timeout_s = 30.0
        self._capabilities = capabilities
        self._api_key = None
        self._basic_auth = None
        self.client = client
        # elasticsearch-py: one derived client that returns every answer (options() copies the settings).
        self._es = client.options(ignore_status=_EVERY_ERROR_STATUS) if kind == "elasticsearch" else None

    def __repr__(self) -> str:
        return f"OfficialCluster(url={self.url!r}, client={type(self.client).__name__})"

    def _send(
        self, method: str, target: str, body: Any, headers: Mapping[str, str], timeout_s: float | None
    ) -> tuple[int, Any, Mapping[str, str]]:
        if self._es is not None:
            es = self._es if timeout_s is None else self._es.options(request_timeout=timeout_s)
            try:
                resp = es.perform_request(method, target, headers={**_ACCEPT_JSON, **headers}, body=body)
            except TRANSPORT_FAILURES as e:
                raise transport_error(e, method, target, self.url, timeout_s or self.request_timeout_s) from e
            status, answer = resp.meta.status, None if method == "HEAD" else resp.body
            refusal = media_type_refusal(status, answer, self.url)
            if refusal is not None:
                raise refusal
            return status, answer, dict(resp.meta.headers)
        return opensearch_send(self.client.transport, method, target, body, headers, timeout_s, self.url)

    def close(self) -> None:
        """Nothing to close: the client belongs to the caller."""


JsonArgs = dict[str, Any]


def opensearch_request_args(target: str, body: Any, headers: Mapping[str, str], timeout_s: float | None) -> JsonArgs:
    """Keyword arguments of opensearch-py's ``transport.perform_request`` for one request (sync and async)."""
    args: JsonArgs = {"url": target, "headers": dict(headers) or None}
    if body is not None:
        args["body"] = ndjson_bytes(body) if headers.get("content-type") == _NDJSON else body
    if timeout_s is not None:
        args["timeout"] = timeout_s
    return args


def opensearch_answer(err: Exception, method: str, target: str, url: str, timeout_s: float) -> tuple[int, Any]:
    """``(status, body)`` of an opensearch-py ``TransportError`` that carries an HTTP answer; else the typed error.

    opensearch-py raises on every status >= 300 (its ``ignore=`` would return the body without
    the status); the status and parsed body ride on the exception.
    """
    status = getattr(err, "status_code", None)
    if isinstance(status, int):
        return status, getattr(err, "info", None)
    raise transport_error(err, method, target, url, timeout_s) from err


def opensearch_result(method: str, data: Any) -> tuple[int, Any]:
    """``(status, body)`` of an opensearch-py success: HEAD answers a bool, others the decoded body."""
    if method == "HEAD":
        return (200 if data else 404), None
    return 200, data


def opensearch_send(
    transport: Any,
    method: str,
    target: str,
    body: Any,
    headers: Mapping[str, str],
    timeout_s: float | None,
    url: str,
) -> tuple[int, Any, Mapping[str, str]]:
    """One request through opensearch-py's sync transport (its node pool, retries and auth)."""
    try:
        data = transport.perform_request(method, **opensearch_request_args(target, body, headers, timeout_s))
    except Exception as e:  # opensearchpy.TransportError and subclasses: read below
        if not _is_opensearch_error(e):
            raise
        status, answer = opensearch_answer(e, method, target, url, timeout_s or 30.0)
        return status, answer, {}
    status, answer = opensearch_result(method, data)
    return status, answer, {}


def _is_opensearch_error(err: BaseException) -> bool:
    return any(
        cls.__name__ == "TransportError" and cls.__module__.startswith("opensearchpy") for cls in type(err).__mro__
    )


def wrap_client(client: object, *, capabilities: Capabilities | None = None) -> OfficialCluster:
    """An :class:`OfficialCluster` over ``client`` without detecting anything (see :func:`connector.connect`).

    Raises:
        ConfigError: ``client`` is not an official sync client.
    """
    return OfficialCluster(client, capabilities=capabilities)
