"""The async cluster: the same requests, answers and errors as :class:`Cluster`, awaited.

:func:`aconnect` takes the app's own ``elasticsearch.AsyncElasticsearch`` (8.x/9.x) or
``opensearchpy.AsyncOpenSearch`` (requests go through its own low-level API: its auth, TLS, node
pool and retries apply), or a URL (our own transport, elastic-transport's async one on aiohttp).
It detects the capabilities with the same steps as the sync :func:`connector.connect`
(:func:`connector.cluster.detect.detection_steps`, driven here with awaited requests), and every
answer is checked by the same :func:`connector.cluster.client.check_answer`.

The conveniences below are one line each over :meth:`AsyncCluster.request`; what they build or
read (paths, ``_msearch`` lines and answers, the one mapping) is shared with the sync client.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import elastic_transport
from pydantic import SecretStr

from connector.cluster._json import SERIALIZERS
from connector.cluster.capabilities import Capabilities
from connector.cluster.client import (
    _JSON,
    _NDJSON,
    RETRY_BACKOFF,
    TRANSPORT_FAILURES,
    ApiResult,
    Cluster,
    JsonDict,
    _quote,
    check_answer,
    msearch_lines,
    msearch_responses,
    one_mapping,
    request_target,
    transport_error,
)
from connector.cluster.detect import detection_steps
from connector.cluster.official import (
    _ACCEPT_JSON,
    _EVERY_ERROR_STATUS,
    _is_opensearch_error,
    client_kind,
    client_url,
    media_type_refusal,
    opensearch_answer,
    opensearch_request_args,
    opensearch_result,
)
from connector.errors import ConfigError
from connector.observe.tracing import cluster_request_span, inject_trace_headers

__all__ = ["AsyncCluster", "aconnect", "adetect_capabilities"]

logger = logging.getLogger(__name__)


class AsyncCluster:
    """A connection to one cluster for async code (see the module docstring).

    Build it with :func:`aconnect`; it holds the detected :attr:`capabilities`.  A wrapped
    official client stays the caller's (:meth:`close` leaves it open); a URL-built one is ours
    and closed by :meth:`close` / ``async with``.
    """

    def __init__(
        self,
        target: object,
        *,
        api_key: str | SecretStr | None = None,
        basic_auth: tuple[str, str | SecretStr] | None = None,
        ca_certs: str | None = None,
        verify_certs: bool = True,
        request_timeout_s: float = 30.0,
        max_retries: int = 3,
        capabilities: Capabilities | None = None,
    ) -> None:
        self._capabilities = capabilities
        self.request_timeout_s = request_timeout_s
        self._es: Any = None
        self._os: Any = None
        self._own: elastic_transport.AsyncTransport | None = None
        if isinstance(target, str):
            # Our own transport: the sync Cluster parses the URL and builds the node (credentials moved
            # out of the URL, auth headers); the same node serves elastic-transport's async transport.
            sync = Cluster(
                target,
                api_key=api_key,
                basic_auth=basic_auth,
                ca_certs=ca_certs,
                verify_certs=verify_certs,
                request_timeout_s=request_timeout_s,
            )
            node = sync._transport.node_pool.all()[0].config
            sync.close()
            self.url = sync.url
            self._auth = "api_key" if api_key else ("basic" if sync._basic_auth else "none")
            self._own = elastic_transport.AsyncTransport(
                [node],
                serializers=SERIALIZERS,
                node_class="aiohttp",
                max_retries=max_retries,
                retry_on_status=(502, 503, 504),
                meta_header=False,
                **RETRY_BACKOFF,
            )
            self.client: Any = None
            return
        kind = client_kind(target)
        if kind == "async-elasticsearch":
            self._es = target.options(ignore_status=_EVERY_ERROR_STATUS)  # type: ignore[attr-defined]
        elif kind == "async-opensearch":
            self._os = target.transport  # type: ignore[attr-defined]
        else:
            raise ConfigError(
                f"expected a cluster URL, an elasticsearch.AsyncElasticsearch or an opensearchpy.AsyncOpenSearch "
                f"client, got {type(target).__name__} (sync clients: connector.connect(client))",
                field="client",
            )
        self.client = target
        self.url = client_url(target)
        self._auth = "client"

    def __repr__(self) -> str:
        if self.client is not None:
            return f"AsyncCluster(url={self.url!r}, client={type(self.client).__name__})"
        return f"AsyncCluster(url={self.url!r}, auth={self._auth})"

    @property
    def capabilities(self) -> Capabilities:
        """What this cluster can do, as detected by :func:`aconnect` or handed in.

        Raises:
            ConfigError: not detected (build it with :func:`aconnect`).
        """
        if self._capabilities is None:
            raise ConfigError(
                f"the capabilities of {self.url} were not detected: build it with `await connector.aconnect(...)`",
                field="capabilities",
            )
        return self._capabilities

    @capabilities.setter
    def capabilities(self, caps: Capabilities) -> None:
        if self._capabilities is not None and self._capabilities != caps:
            raise ConfigError(f"the capabilities of {self.url} are already set", field="capabilities")
        self._capabilities = caps

    async def request(
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
        """Send one request; the arguments, answer and errors of :meth:`Cluster.request`."""
        target = request_target(path, params)
        headers: dict[str, str] = {}
        if body is not None:
            headers["content-type"] = _NDJSON if ndjson else _JSON
        with cluster_request_span(method, path):  # a no-op without OpenTelemetry
            inject_trace_headers(headers)  # the cluster's own spans (and the official client's) nest under ours
            status, answer, answer_headers = await self._send(method, target, body, headers, request_timeout_s)
        return check_answer(method, path, self.url, status, answer, answer_headers, ignore)

    async def _send(
        self, method: str, target: str, body: Any, headers: Mapping[str, str], timeout_s: float | None
    ) -> tuple[int, Any, Mapping[str, str]]:
        timeout = timeout_s or self.request_timeout_s
        if self._os is not None:
            try:
                data = await self._os.perform_request(
                    method, **opensearch_request_args(target, body, headers, timeout_s)
                )
            except Exception as e:  # opensearchpy.TransportError and subclasses: read below
                if not _is_opensearch_error(e):
                    raise
                status, answer = opensearch_answer(e, method, target, self.url, timeout)
                return status, answer, {}
            status, answer = opensearch_result(method, data)
            return status, answer, {}
        try:
            if self._es is not None:
                es = self._es if timeout_s is None else self._es.options(request_timeout=timeout_s)
                resp = await es.perform_request(method, target, headers={**_ACCEPT_JSON, **headers}, body=body)
            else:
                assert self._own is not None
                kwargs: dict[str, Any] = {} if timeout_s is None else {"request_timeout": timeout_s}
                resp = await self._own.perform_request(method, target, body=body, headers=headers, **kwargs)
        except TRANSPORT_FAILURES as e:
            raise transport_error(e, method, target, self.url, timeout) from e
        status, answer = resp.meta.status, None if method == "HEAD" else resp.body
        refusal = media_type_refusal(status, answer, self.url) if self._es is not None else None
        if refusal is not None:
            raise refusal
        return status, answer, dict(resp.meta.headers)

    # -- the conveniences of Cluster, awaited --------------------------------------
    async def info(self) -> JsonDict:
        body: JsonDict = (await self.request("GET", "/")).body
        return body

    async def index_exists(self, index: str) -> bool:
        return (await self.request("HEAD", f"/{_quote(index)}", ignore=(404,))).status == 200

    async def create_index(self, index: str, body: Mapping[str, Any]) -> JsonDict:
        result: JsonDict = (await self.request("PUT", f"/{_quote(index)}", body=dict(body))).body
        return result

    async def delete_index(self, index: str, *, missing_ok: bool = True) -> None:
        await self.request("DELETE", f"/{_quote(index)}", ignore=(404,) if missing_ok else ())

    async def refresh(self, index: str) -> None:
        await self.request("POST", f"/{_quote(index)}/_refresh")

    async def get_mapping(self, index: str) -> JsonDict:
        """The mapping of one concrete index (resolving an alias to its one index)."""
        return one_mapping((await self.request("GET", f"/{_quote(index)}/_mapping")).body, index)

    async def put_mapping(self, index: str, body: Mapping[str, Any]) -> None:
        await self.request("PUT", f"/{_quote(index)}/_mapping", body=dict(body))

    async def search(self, index: str, body: Mapping[str, Any], *, params: Mapping[str, Any] | None = None) -> JsonDict:
        answer = await self.request("POST", f"/{_quote(index)}/_search", body=dict(body), params=params)
        result: JsonDict = answer.body
        return result

    async def msearch(
        self, index: str, searches: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]]
    ) -> list[JsonDict]:
        """One ``_msearch`` round trip; returns each search's response (errors raised)."""
        answer = await self.request("POST", f"/{_quote(index)}/_msearch", body=msearch_lines(searches), ndjson=True)
        return msearch_responses(answer.body, index, self.url)

    async def bulk(self, lines: Sequence[Mapping[str, Any]], *, refresh: str | bool | None = None) -> JsonDict:
        """Send a ``_bulk`` body (action/source lines). Item failures stay in the result."""
        params = {"refresh": refresh} if refresh is not None else None
        answer = await self.request("POST", "/_bulk", body=[dict(line) for line in lines], ndjson=True, params=params)
        result: JsonDict = answer.body
        return result

    async def count(self, index: str, query: Mapping[str, Any] | None = None) -> int:
        body = {"query": dict(query)} if query else None
        return int((await self.request("POST", f"/{_quote(index)}/_count", body=body)).body["count"])

    async def close(self) -> None:
        """Close our own transport; a wrapped client belongs to the caller and stays open."""
        if self._own is not None:
            await self._own.close()

    async def __aenter__(self) -> AsyncCluster:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def adetect_capabilities(cluster: AsyncCluster) -> Capabilities:
    """:func:`connector.cluster.detect.detect_capabilities` with awaited requests (same steps, same rules)."""
    steps = detection_steps(cluster.url)
    read = next(steps)
    while True:
        answer = await cluster.request("GET", read.path, params=read.params, ignore=read.ignore)
        try:
            read = steps.send(answer)
        except StopIteration as done:
            caps: Capabilities = done.value
            return caps


async def aconnect(
    target: object,
    *,
    api_key: str | SecretStr | None = None,
    basic_auth: tuple[str, str | SecretStr] | None = None,
    ca_certs: str | None = None,
    verify_certs: bool = True,
    request_timeout_s: float = 30.0,
    max_retries: int = 3,
) -> AsyncCluster:
    """Connect async code to a cluster and detect its capabilities (the async :func:`connector.connect`).

    Args:
        target: the app's own ``elasticsearch.AsyncElasticsearch`` (8.x/9.x) or
            ``opensearchpy.AsyncOpenSearch`` (the other options are then its own), or a cluster URL
            (our own transport; needs ``aiohttp``).  An :class:`AsyncCluster` is returned as is.
        api_key, basic_auth, ca_certs, verify_certs, request_timeout_s, max_retries: as in
            :func:`connector.connect`, for a URL.

    Returns:
        An :class:`AsyncCluster` whose ``capabilities`` are detected.

    Raises:
        ConfigError: ``target`` is none of those (a sync client among them: use :func:`connector.connect`).
        ClusterError: as :func:`connector.connect` (unreachable, refused, unsupported server).
    """
    if isinstance(target, AsyncCluster):
        return target
    cluster = AsyncCluster(
        target,
        api_key=api_key,
        basic_auth=basic_auth,
        ca_certs=ca_certs,
        verify_certs=verify_certs,
        request_timeout_s=request_timeout_s,
        max_retries=max_retries,
    )
    try:
        cluster.capabilities = await adetect_capabilities(cluster)
    except BaseException:
        await cluster.close()
        raise
    logger.debug("cluster %r is %s", cluster, cluster.capabilities)
    return cluster
