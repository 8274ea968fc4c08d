"""``connector.connect``: build a :class:`Cluster`, check it answers, detect what it can do.

The I/O half of capability detection lives here (:func:`detect_capabilities` reads the
cluster's answers); :mod:`connector.cluster.capabilities` turns them into a
:class:`Capabilities` without any I/O.
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

from pydantic import SecretStr

from connector.cluster.capabilities import Capabilities, flavor_is_known, flavor_of, parse_capabilities
from connector.cluster.client import ApiResult, Cluster
from connector.cluster.official import client_kind, wrap_client
from connector.errors import ConfigError

__all__ = ["ClusterLike", "Read", "as_cluster", "connect", "detect_capabilities", "detection_steps"]

logger = logging.getLogger(__name__)

# What the node infos are read for: every node's version (the oldest decides), ES's
# build_flavor (it names the flavor when GET / is unavailable), plugins and modules.
_NODES_FILTER = "nodes.*.version,nodes.*.build_flavor,nodes.*.plugins.name,nodes.*.modules.name"

# Answers that mean "not available here" rather than "wrong credentials" (401 is
# raised): no x-pack (400/404), no privilege (403), serverless (410)...
_OPTIONAL_STATUSES = tuple(s for s in range(400, 500) if s != 401)


def connect(
    url: str | object,
    *,
    api_key: str | SecretStr | None = None,
    basic_auth: tuple[str, str | SecretStr] | None = None,
    ca_certs: str | None = None,
    verify_certs: bool = True,
    request_timeout_s: float = 30.0,
    max_retries: int = 3,
    connections_per_node: int = 10,
) -> Cluster:
    """Connect to an Elasticsearch 8.4+/9.x or OpenSearch 2.4+/3.x cluster.

    Reads the node infos (and ``GET /`` when needed) and detects the cluster's
    capabilities before returning, so a wrong URL, CA, password or an unsupported
    server fails here with a clear error rather than at the first search.

    Args:
        url: ``http(s)://host:port[/prefix]``; credentials in the URL are moved
            to ``basic_auth`` (they never reach logs).  Or the app's own configured
            ``elasticsearch.Elasticsearch`` (8.x/9.x) or ``opensearchpy.OpenSearch`` client: requests
            then go through it (its auth, TLS, node pool and retries; the other options are its own)
            and the result is an :class:`~connector.cluster.official.OfficialCluster`.  Async
            clients: ``await connector.aconnect(client)``.
        api_key: an encoded API key, sent as ``Authorization: ApiKey <key>``.
        basic_auth: ``(user, password)``; ignored when ``api_key`` is given.
        ca_certs: path to the PEM file of the CA that signed the server certificate.
        verify_certs: verify the server certificate (only turn off for a test cluster).
        request_timeout_s: default timeout of each request, in seconds.
        max_retries: transport retries on connection errors and 502/503/504.
        connections_per_node: the most requests in flight to one node at once (the connection pool's size: a
            request past it waits for a connection); a server should size it to the requests it makes at once.

    Returns:
        A :class:`connector.cluster.client.Cluster` whose ``capabilities`` are already detected.

    Raises:
        ConfigError: the URL is malformed, or ``url`` is neither a URL nor an official sync client.
        TLSVerificationError: the server certificate does not verify against ``ca_certs``.
        AuthenticationError: the credentials were refused (401/403).
        ClusterConnectionError: the cluster cannot be reached.
        UnsupportedServerError: ES < 8.4, OpenSearch < 2.4, OpenSearch without k-NN, or an unknown server.
    """
    cluster = (
        _client_cluster(url)
        if not isinstance(url, str)
        else Cluster(
            url,
            api_key=api_key,
            basic_auth=basic_auth,
            ca_certs=ca_certs,
            verify_certs=verify_certs,
            request_timeout_s=request_timeout_s,
            max_retries=max_retries,
            connections_per_node=connections_per_node,
        )
    )
    try:
        cluster.capabilities = detect_capabilities(cluster)
    except BaseException:
        cluster.close()
        raise
    logger.debug("cluster %r is %s", cluster, cluster.capabilities)
    return cluster


def _client_cluster(client: object) -> Cluster:
    if client_kind(client) in ("async-elasticsearch", "async-opensearch"):
        raise ConfigError(
            f"{type(client).__name__} is async: use `await connector.aconnect(client)` for an AsyncCluster",
            field="client",
        )
    return wrap_client(client)


# What the entry points that take a cluster accept (see :func:`as_cluster`): a :class:`Cluster`, a URL,
# or an official sync client (``elasticsearch.Elasticsearch`` 8/9, ``opensearchpy.OpenSearch``), which are
# optional extras and so cannot be named here.
ClusterLike: TypeAlias = Cluster | str | object


def as_cluster(target: ClusterLike) -> Cluster:
    """What every entry point that takes a cluster does with its argument.

    An official sync client is wrapped and its capabilities detected (:func:`connect`); a URL is
    connected to; anything else (a :class:`Cluster`, an :class:`~connector.cluster.aio.AsyncCluster`
    for the async driver, an object shaped like a cluster) is returned as is.

    Raises:
        ConfigError: an official async client (use ``await connector.aconnect(client)``).
        ClusterError: see :func:`connect`.
    """
    if isinstance(target, str) or client_kind(target) is not None:
        return connect(target)
    # Ours, an AsyncCluster (for the async driver) or any object shaped like a cluster: as it is.
    return target  # type: ignore[return-value]


def detect_capabilities(cluster: Cluster) -> Capabilities:
    """Read the node infos, ``GET /`` when needed and (ES) the license, and parse them.

    The node infos come first: they carry every node's version (the oldest
    decides) and Elasticsearch names itself in them, so ``GET /`` is only
    asked when the flavor is still open.  ES distributions without the
    ``rest-root`` module (the integ-test-zip) answer ``GET /`` with 405.
    The plugin list and license are optional: when they cannot be read
    (no ``monitor`` privilege, no x-pack) detection goes on with what is known
    and says so at WARNING/DEBUG.

    This only reads: hand the result to the cluster (``cluster.capabilities = caps``) or
    use :func:`connect`, which does both.  The steps are :func:`detection_steps` (no I/O),
    driven here with sync requests and by :func:`connector.cluster.aio.adetect_capabilities`
    with async ones.

    Raises:
        UnsupportedServerError: see :func:`connector.cluster.capabilities.parse_capabilities`.
        AuthenticationError: the credentials were refused.
        ClusterError: when the cluster cannot be reached.
    """
    steps = detection_steps(cluster.url)
    read = next(steps)
    while True:
        answer = cluster.request("GET", read.path, params=read.params, ignore=read.ignore)
        try:
            read = steps.send(answer)
        except StopIteration as done:
            caps: Capabilities = done.value
            return caps


@dataclass(frozen=True)
class Read:
    """One ``GET`` that detection needs answered (statuses in ``ignore`` are answers, not errors)."""

    path: str
    ignore: tuple[int, ...]
    params: Mapping[str, Any] | None = None


def detection_steps(url: str) -> Generator[Read, ApiResult, Capabilities]:
    """Capability detection without I/O: yields each :class:`Read`, is sent its answer, returns the result."""
    nodes_answer = yield Read("/_nodes/plugins", _OPTIONAL_STATUSES, {"filter_path": _NODES_FILTER})
    _note_optional(nodes_answer, url, "the node versions and plugins (needs the monitor privilege)", logging.WARNING)
    nodes = nodes_answer.body if nodes_answer.status < 300 else None
    product = nodes_answer.headers.get("x-elastic-product")
    root: Mapping[str, Any] | None = None
    if not flavor_is_known(nodes, product_header=product):
        answer = yield Read("/", (400, 404, 405, 410))
        root = answer.body if answer.status < 300 and isinstance(answer.body, Mapping) else None
        product = product or answer.headers.get("x-elastic-product")
    license = None
    if flavor_of(root, nodes=nodes, product_header=product, url=url) == "elasticsearch":
        license_answer = yield Read("/_license", _OPTIONAL_STATUSES)
        why = "the license (no x-pack in this distribution, or no monitor privilege)"
        _note_optional(license_answer, url, why, logging.DEBUG)
        license = license_answer.body if license_answer.status < 300 else None
    caps = parse_capabilities(root, nodes=nodes, license=license, product_header=product, url=url)
    logger.info("connected to %s: %s", url, caps)
    return caps


def _note_optional(result: ApiResult, url: str, why: str, level: int) -> None:
    if result.status >= 300:
        logger.log(level, "cannot read %s from %s: status %s", why, url, result.status)
