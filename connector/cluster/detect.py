"""``connector.connect``: build a :class:`Cluster`, check it answers, detect what it can do.

The I/O half of capability detection lives here (:func:`detect_capabilities` reads the
cluster's answers); :mod:`connector.cluster.capabilities` turns them into a
:class:`Capabilities` without any I/O.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from pydantic import SecretStr

from connector.cluster.capabilities import Capabilities, flavor_is_known, flavor_of, parse_capabilities
from connector.cluster.client import ApiResult, Cluster

__all__ = ["connect", "detect_capabilities"]

logger = logging.getLogger(__name__)

# What the node infos are read for: every node's version (the oldest decides), ES's
# build_flavor (it names the flavor when GET / is unavailable), plugins and modules.
_NODES_FILTER = "nodes.*.version,nodes.*.build_flavor,nodes.*.plugins.name,nodes.*.modules.name"

# Answers that mean "not available here" rather than "wrong credentials" (401 is
# raised): no x-pack (400/404), no privilege (403), serverless (410)...
_OPTIONAL_STATUSES = tuple(s for s in range(400, 500) if s != 401)


def connect(
    url: str,
    *,
    api_key: str | SecretStr | None = None,
    basic_auth: tuple[str, str | SecretStr] | None = None,
    ca_certs: str | None = None,
    verify_certs: bool = True,
    request_timeout_s: float = 30.0,
    max_retries: int = 3,
) -> Cluster:
    """Connect to an Elasticsearch 8.4+/9.x or OpenSearch 2.4+/3.x cluster.

    Reads the node infos (and ``GET /`` when needed) and detects the cluster's
    capabilities before returning, so a wrong URL, CA, password or an unsupported
    server fails here with a clear error rather than at the first search.

    Args:
        url: ``http(s)://host:port[/prefix]``; credentials in the URL are moved
            to ``basic_auth`` (they never reach logs).
        api_key: an encoded API key, sent as ``Authorization: ApiKey <key>``.
        basic_auth: ``(user, password)``; ignored when ``api_key`` is given.
        ca_certs: path to the PEM file of the CA that signed the server certificate.
        verify_certs: verify the server certificate (only turn off for a test cluster).
        request_timeout_s: default timeout of each request, in seconds.
        max_retries: transport retries on connection errors and 502/503/504.

    Returns:
        A :class:`connector.cluster.client.Cluster` whose ``capabilities`` are already detected.

    Raises:
        ConfigError: the URL is malformed.
        TLSVerificationError: the server certificate does not verify against ``ca_certs``.
        AuthenticationError: the credentials were refused (401/403).
        ClusterConnectionError: the cluster cannot be reached.
        UnsupportedServerError: ES < 8.4, OpenSearch < 2.4, OpenSearch without k-NN, or an unknown server.
    """
    cluster = Cluster(
        url,
        api_key=api_key,
        basic_auth=basic_auth,
        ca_certs=ca_certs,
        verify_certs=verify_certs,
        request_timeout_s=request_timeout_s,
        max_retries=max_retries,
    )
    try:
        cluster.capabilities = detect_capabilities(cluster)
    except BaseException:
        cluster.close()
        raise
    logger.debug("cluster %r is %s", cluster, cluster.capabilities)
    return cluster


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
    use :func:`connect`, which does both.

    Raises:
        UnsupportedServerError: see :func:`connector.cluster.capabilities.parse_capabilities`.
        AuthenticationError: the credentials were refused.
        ClusterError: when the cluster cannot be reached.
    """
    nodes_answer = _optional_get(
        cluster,
        "/_nodes/plugins",
        params={"filter_path": _NODES_FILTER},
        why="the node versions and plugins (needs the monitor privilege)",
        level=logging.WARNING,
    )
    nodes = nodes_answer.body if nodes_answer.status < 300 else None
    product = nodes_answer.headers.get("x-elastic-product")
    root: Mapping[str, Any] | None = None
    if not flavor_is_known(nodes, product_header=product):
        answer = cluster.request("GET", "/", ignore=(400, 404, 405, 410))
        root = answer.body if answer.status < 300 and isinstance(answer.body, Mapping) else None
        product = product or answer.headers.get("x-elastic-product")
    license = None
    if flavor_of(root, nodes=nodes, product_header=product, url=cluster.url) == "elasticsearch":
        license_answer = _optional_get(
            cluster,
            "/_license",
            why="the license (no x-pack in this distribution, or no monitor privilege)",
            level=logging.DEBUG,
        )
        license = license_answer.body if license_answer.status < 300 else None
    caps = parse_capabilities(root, nodes=nodes, license=license, product_header=product, url=cluster.url)
    logger.info("connected to %s: %s", cluster.url, caps)
    return caps


def _optional_get(
    cluster: Cluster,
    path: str,
    *,
    why: str,
    level: int,
    params: Mapping[str, Any] | None = None,
) -> ApiResult:
    result = cluster.request("GET", path, params=params, ignore=_OPTIONAL_STATUSES)
    if result.status >= 300:
        logger.log(level, "cannot read %s from %s: status %s", why, cluster.url, result.status)
    return result
