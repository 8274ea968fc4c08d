"""A thin, flavor-neutral client for Elasticsearch 8/9 and OpenSearch 2/3.

Why not ``elasticsearch.Elasticsearch``: the 9.x client sends
``compatible-with=9`` media types that an 8.x server rejects, and OpenSearch
speaks the same REST shapes without those headers.  One low-level transport
(``elastic_transport``) with plain JSON lets one install talk to all four
servers; request bodies are built by pure functions elsewhere and sent here.

Retry layers (as in elasticsearch-py): the transport retries connection
errors and 502/503/504; 429s are left to the caller (the bulk layer resends
only the items that got 429).
"""

from __future__ import annotations

import base64
import inspect
import json
import logging
import ssl
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit

import elastic_transport
from pydantic import SecretStr

from connector.cluster._json import SERIALIZERS
from connector.cluster.capabilities import Capabilities
from connector.errors import (
    AuthenticationError,
    ClusterApiError,
    ClusterConnectionError,
    ClusterError,
    ConfigError,
    TLSVerificationError,
)
from connector.observe.tracing import cluster_request_span, inject_trace_headers

__all__ = ["ApiResult", "Cluster", "JsonDict"]

logger = logging.getLogger(__name__)

JsonDict = dict[str, Any]

_JSON = "application/json"
# error types (or no JSON error at all, e.g. from a proxy) that mean "bad credentials / privileges"
_AUTH_ERROR_TYPES = frozenset({"security_exception", "error", "authentication_exception"})
_NDJSON = "application/x-ndjson"
# Backoff between retries: elastic-transport 9 has it; 8.x (the one the elasticsearch 8 client pins) retries at once.
RETRY_BACKOFF: dict[str, Any] = (
    {"retry_backoff_base": 0.5, "retry_backoff_cap": 8.0}
    if "retry_backoff_base" in inspect.signature(elastic_transport.Transport.__init__).parameters
    else {}
)
# What elastic-transport (ours, and the official elasticsearch clients') raises when no HTTP answer came.
TRANSPORT_FAILURES = (elastic_transport.ConnectionError, elastic_transport.ConnectionTimeout)


@dataclass(frozen=True)
class ApiResult:
    """One HTTP answer from a cluster."""

    status: int
    body: Any
    headers: Mapping[str, str]


def _secret(value: str | SecretStr | None) -> SecretStr | None:
    if value is None or isinstance(value, SecretStr):
        return value
    return SecretStr(value)


class Cluster:
    """A connection to one cluster (any supported flavor).

    Use :func:`connector.connect` to build one; it also detects
    :attr:`capabilities`.  A cluster built directly sends nothing until its first
    request and has capabilities only when given them (``capabilities=``, e.g. detected
    by a Ray driver and pickled to its tasks).  Credentials are kept as ``SecretStr``
    and never appear in ``repr``, logs or exception messages.
    """

    def __init__(
        self,
        url: str,
        *,
        api_key: str | SecretStr | None = None,
        basic_auth: tuple[str, str | SecretStr] | None = None,
        ca_certs: str | None = None,
        verify_certs: bool = True,
        request_timeout_s: float = 30.0,
        max_retries: int = 3,
        capabilities: Capabilities | None = None,
        connections_per_node: int = 10,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                "cluster url must look like http(s)://host:port, got a value without scheme or host",
                field="url",
            )
        if parts.username is not None:
            # Credentials in the URL would end up in transport logs: move them.
            # They are percent-encoded in a URL (a '@' or ':' in a password must be).
            if basic_auth is None:
                basic_auth = (unquote(parts.username), unquote(parts.password or ""))
        try:
            port = parts.port or (443 if parts.scheme == "https" else 9200)
        except ValueError:  # e.g. "host:92OO"; the message must not echo the URL (credentials)
            raise ConfigError("cluster url has an invalid port", field="url") from None
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname  # IPv6 literal
        self.url = f"{parts.scheme}://{host}:{port}{parts.path.rstrip('/')}"
        self._api_key = _secret(api_key)
        self._basic_auth = (basic_auth[0], _secret(basic_auth[1])) if basic_auth else None
        headers: dict[str, str] = {"accept": _JSON}
        if self._api_key is not None:
            headers["authorization"] = "ApiKey " + self._api_key.get_secret_value()
        elif self._basic_auth is not None:
            user, password = self._basic_auth
            token = f"{user}:{password.get_secret_value() if password else ''}"
            headers["authorization"] = "Basic " + base64.b64encode(token.encode()).decode()
        node = elastic_transport.NodeConfig(
            scheme=parts.scheme,
            host=parts.hostname,
            port=port,
            path_prefix=parts.path.rstrip("/"),
            headers=headers,
            request_timeout=request_timeout_s,
            verify_certs=verify_certs if parts.scheme == "https" else True,
            ca_certs=ca_certs if parts.scheme == "https" else None,
            connections_per_node=connections_per_node,
        )
        self._transport = elastic_transport.Transport(
            [node],
            serializers=SERIALIZERS,
            max_retries=max_retries,
            retry_on_status=(502, 503, 504),
            meta_header=False,
            **RETRY_BACKOFF,
        )
        self.request_timeout_s = request_timeout_s
        self._capabilities = capabilities

    def __repr__(self) -> str:
        auth = "api_key" if self._api_key else ("basic" if self._basic_auth else "none")
        return f"Cluster(url={self.url!r}, auth={auth})"

    # -- capabilities --------------------------------------------------------------
    @property
    def capabilities(self) -> Capabilities:
        """What this cluster can do, as detected by :func:`connector.connect` or handed in.

        Raises:
            ConfigError: the cluster was built without them (``Cluster(url)``,
                ``ClusterSpec.connect()``): connect with :func:`connector.connect` /
                ``ClusterSpec.connect(detect=True)``, or pass ``capabilities=`` detected elsewhere.
        """
        if self._capabilities is None:
            raise ConfigError(
                f"the capabilities of {self.url} were not detected: connect with connector.connect(url) "
                "(or ClusterSpec.connect(detect=True)), or pass capabilities= detected elsewhere "
                "(e.g. by the driver of a Ray job)",
                field="capabilities",
            )
        return self._capabilities

    @capabilities.setter
    def capabilities(self, caps: Capabilities) -> None:
        """Hand in detected capabilities, once (:func:`connector.connect` does it)."""
        if self._capabilities is not None and self._capabilities != caps:
            raise ConfigError(f"the capabilities of {self.url} are already set", field="capabilities")
        self._capabilities = caps

    # -- raw requests --------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        ndjson: bool = False,
        ignore: Iterable[int] = (),
        request_timeout_s: float | None = None,
    ) -> ApiResult:
        """Send one request; raise a typed :class:`ClusterError` on failure.

        Args:
            method: HTTP method.
            path: path below the cluster URL, e.g. ``"/my-index/_search"``.
            body: a JSON-able object, or for ``ndjson`` a sequence of objects.
            params: query-string parameters (booleans become ``true``/``false``).
            ndjson: send ``body`` as newline-delimited JSON (bulk, msearch).
            ignore: statuses that are returned instead of raised (e.g. 404).
            request_timeout_s: per-request timeout override.

        Returns:
            The :class:`ApiResult` with the decoded body.

        Raises:
            ClusterConnectionError, TLSVerificationError, AuthenticationError,
            ClusterApiError: with ``status`` and ``error_type`` attributes.
        """
        target = request_target(path, params)
        headers: dict[str, str] = {}
        if body is not None:
            headers["content-type"] = _NDJSON if ndjson else _JSON
        with cluster_request_span(method, path):  # a no-op without OpenTelemetry
            inject_trace_headers(headers)  # the cluster's own spans (and the official client's) nest under ours
            status, answer, answer_headers = self._send(method, target, body, headers, request_timeout_s)
        return check_answer(method, path, self.url, status, answer, answer_headers, ignore)

    def _send(
        self, method: str, target: str, body: Any, headers: Mapping[str, str], timeout_s: float | None
    ) -> tuple[int, Any, Mapping[str, str]]:
        """One round trip through our transport: ``(status, decoded body, headers)``; connection errors typed."""
        kwargs: dict[str, Any] = {}
        if timeout_s is not None:
            kwargs["request_timeout"] = timeout_s
        try:
            resp = self._transport.perform_request(method, target, body=body, headers=headers, **kwargs)
        except TRANSPORT_FAILURES as e:
            raise transport_error(e, method, target, self.url, timeout_s or self.request_timeout_s) from e
        return resp.meta.status, resp.body, dict(resp.meta.headers)

    # -- small conveniences used across the connector ------------------------------
    def info(self) -> JsonDict:
        """``GET /``: name, version and tagline."""
        body: JsonDict = self.request("GET", "/").body
        return body

    def index_exists(self, index: str) -> bool:
        return self.request("HEAD", f"/{_quote(index)}", ignore=(404,)).status == 200

    def create_index(self, index: str, body: Mapping[str, Any]) -> JsonDict:
        result: JsonDict = self.request("PUT", f"/{_quote(index)}", body=dict(body)).body
        return result

    def delete_index(self, index: str, *, missing_ok: bool = True) -> None:
        ignore = (404,) if missing_ok else ()
        self.request("DELETE", f"/{_quote(index)}", ignore=ignore)

    def refresh(self, index: str) -> None:
        self.request("POST", f"/{_quote(index)}/_refresh")

    def get_mapping(self, index: str) -> JsonDict:
        """The mapping of one concrete index (resolving an alias to its one index)."""
        return one_mapping(self.request("GET", f"/{_quote(index)}/_mapping").body, index)

    def put_mapping(self, index: str, body: Mapping[str, Any]) -> None:
        self.request("PUT", f"/{_quote(index)}/_mapping", body=dict(body))

    def search(self, index: str, body: Mapping[str, Any], *, params: Mapping[str, Any] | None = None) -> JsonDict:
        result: JsonDict = self.request("POST", f"/{_quote(index)}/_search", body=dict(body), params=params).body
        return result

    def msearch(self, index: str, searches: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]]) -> list[JsonDict]:
        """One ``_msearch`` round trip; returns each search's response (errors raised)."""
        body = self.request("POST", f"/{_quote(index)}/_msearch", body=msearch_lines(searches), ndjson=True).body
        return msearch_responses(body, index, self.url)

    def bulk(self, lines: Sequence[Mapping[str, Any]], *, refresh: str | bool | None = None) -> JsonDict:
        """Send a ``_bulk`` body (action/source lines). Item failures stay in the result."""
        params = {"refresh": refresh} if refresh is not None else None
        result: JsonDict = self.request(
            "POST", "/_bulk", body=[dict(line) for line in lines], ndjson=True, params=params
        ).body
        return result

    def count(self, index: str, query: Mapping[str, Any] | None = None) -> int:
        body = {"query": dict(query)} if query else None
        return int(self.request("POST", f"/{_quote(index)}/_count", body=body).body["count"])

    def close(self) -> None:
        self._transport.close()

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def request_target(path: str, params: Mapping[str, Any] | None) -> str:
    """The request target: ``path`` (a leading ``/`` added) and the encoded query string."""
    target = path if path.startswith("/") else "/" + path
    if params:
        encoded = {k: _param(v) for k, v in params.items() if v is not None}
        if encoded:
            target += "?" + urlencode(encoded)
    return target


def transport_error(err: BaseException, method: str, path: str, url: str, timeout_s: float) -> ClusterError:
    """The typed error for a request that got no HTTP answer (TLS, timeout, connection); the caller raises it.

    Takes any client's exception: a TLS or timeout failure is recognised by its class name
    (``TlsError``/``SSLError``, ``ConnectionTimeout``) in elastic-transport and opensearch-py alike.
    """
    names = {cls.__name__ for cls in type(err).__mro__}
    if names & {"TlsError", "SSLError"} or _is_tls_failure(err):
        return TLSVerificationError(
            f"TLS verification failed for {url}: check ca_certs (the CA that signed the "
            "server certificate) or pass verify_certs=False for a test cluster",
            url=url,
        )
    if "ConnectionTimeout" in names:
        return ClusterConnectionError(f"{method} {_no_query(path)} on {url} timed out after {timeout_s}s", url=url)
    return ClusterConnectionError(
        f"cannot reach the cluster at {url}: {type(err).__name__}; is it running and is the URL right?", url=url
    )


def check_answer(
    method: str,
    path: str,
    url: str,
    status: int,
    body: Any,
    headers: Mapping[str, str],
    ignore: Iterable[int] = (),
) -> ApiResult:
    """The :class:`ApiResult` of an HTTP answer, or the typed error it means (whatever client carried it).

    Raises:
        AuthenticationError: 401, or 403 for a credentials/privileges problem.
        ClusterApiError: any other status >= 300 not in ``ignore``.
    """
    result = ApiResult(status=status, body=body, headers=headers)
    if status < 300 or status in set(ignore):
        return result
    error_type, reason = _error_of(body)
    # A 403 is also how a write block (cluster_block_exception) answers: only
    # credential problems become AuthenticationError.
    if status == 401 or (status == 403 and error_type in _AUTH_ERROR_TYPES):
        raise AuthenticationError(
            f"{method} {path} on {url} was refused with {status}: check the API key or "
            "user/password (and the user's privileges)",
            url=url,
            status=status,
        )
    raise ClusterApiError(
        f"{method} {path} failed with {status} {error_type}: {reason}",
        url=url,
        status=status,
        error_type=error_type,
        reason=reason,
        body=body if isinstance(body, dict) else None,
    )


def msearch_lines(searches: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]]) -> list[JsonDict]:
    """The ``_msearch`` body: header and body line of each search."""
    lines: list[JsonDict] = []
    for header, body in searches:
        lines.extend([dict(header), dict(body)])
    return lines


def msearch_responses(body: Mapping[str, Any], index: str, url: str) -> list[JsonDict]:
    """Each search's response of an ``_msearch`` answer; the first failed one raised."""
    responses: list[JsonDict] = body["responses"]
    for item in responses:
        if "error" in item:
            error_type, reason = _error_of(item)
            raise ClusterApiError(
                f"_msearch on {index} failed: {error_type}: {reason}",
                url=url,
                status=item.get("status", 400),
                error_type=error_type,
                reason=reason,
                body=item,
            )
    return responses


def one_mapping(body: Mapping[str, Any], index: str) -> JsonDict:
    """The mapping of the one index in a ``GET <index>/_mapping`` answer."""
    if len(body) != 1:
        raise ConfigError(f"{index!r} resolves to {len(body)} indices; name one index", index=index)
    mapping: JsonDict = next(iter(body.values()))["mappings"]
    return mapping


def ndjson_bytes(lines: Sequence[Any]) -> bytes:
    """Newline-delimited JSON (each line compact, a final newline), for clients that send bodies as given."""
    return b"".join(_ndjson_line(line) + b"\n" for line in lines)


def _ndjson_line(line: Any) -> bytes:
    # The bulk layer hands lines it has already serialised (to size its chunks): they go as they are.
    if isinstance(line, bytes):
        return line
    if isinstance(line, str):
        return line.encode()
    return json.dumps(line, separators=(",", ":")).encode()


def _no_query(path: str) -> str:
    return path.partition("?")[0]


def _quote(index: str) -> str:
    return quote(index, safe=",*")


def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def _is_tls_failure(err: BaseException) -> bool:
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, ssl.SSLError) or "CERTIFICATE_VERIFY_FAILED" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    errors = getattr(err, "errors", ()) or ()
    return any(_is_tls_failure(e) for e in errors if e is not err)


def _error_of(body: Any) -> tuple[str, str]:
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            root = (error.get("root_cause") or [error])[0]
            return str(root.get("type", "error")), str(root.get("reason", error.get("reason", "")))
        if isinstance(error, str):
            return "error", error
    text = body.decode(errors="replace") if isinstance(body, bytes) else str(body)
    return "error", text[:500]
