"""``connector.connect``: build a :class:`Cluster`, check it answers, detect what it can do."""

from __future__ import annotations

import logging

from pydantic import SecretStr

from connector.cluster.client import Cluster

__all__ = ["connect"]

logger = logging.getLogger(__name__)


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

    Reads ``GET /`` and detects the cluster's capabilities before returning,
    so a wrong URL, CA, password or an unsupported server fails here with a
    clear error rather than at the first search.

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
        caps = cluster.capabilities
    except BaseException:
        cluster.close()
        raise
    logger.debug("cluster %r is %s", cluster, caps)
    return cluster
