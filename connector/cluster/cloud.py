"""Managed clusters: an Elastic Cloud id, and Amazon OpenSearch Service with AWS SigV4 signing.

- A **cloud id** (``name:base64(host$es_uuid$kibana_uuid)``) names the deployment's Elasticsearch
  endpoint; :func:`cloud_id_url` resolves it (elastic-transport's own parser) to the ``https://``
  URL our transport connects to, with the API key or user/password as for any cluster.
- **AWS SigV4**: every request is signed with the standard AWS credential chain (environment,
  shared config/credentials files and profiles, SSO, container and instance roles: botocore's
  ``Session().get_credentials()``), by opensearch-py's own signer on an ``opensearchpy.OpenSearch``
  client that :class:`~connector.cluster.official.OfficialCluster` wraps.  It needs the
  ``eshybrid[aws]`` extra (opensearch-py and botocore), imported only here and only then.

Credentials stay inside botocore's objects and the signer: nothing here logs or prints them.
"""

from __future__ import annotations

import logging
from typing import Any, Literal
from urllib.parse import urlsplit

from elastic_transport.client_utils import parse_cloud_id

from connector.errors import ConfigError

__all__ = ["AwsService", "aws_credentials", "aws_signed_client", "cloud_id_url"]

logger = logging.getLogger(__name__)

# "es": Amazon OpenSearch Service domains; "aoss": OpenSearch Serverless collections.
AwsService = Literal["es", "aoss"]


def cloud_id_url(cloud_id: str) -> str:
    """The Elasticsearch URL of an Elastic Cloud deployment's cloud id.

    Raises:
        ConfigError: the value is not a cloud id (the message never echoes it).
    """
    try:
        parsed = parse_cloud_id(cloud_id)
    except (ValueError, TypeError) as e:
        raise ConfigError(
            "the cloud id is malformed: copy it from the deployment's page in the Elastic Cloud console "
            "(it looks like name:base64...)",
            field="cloud_id",
        ) from e
    if parsed.es_address is None:
        raise ConfigError("the cloud id names no Elasticsearch endpoint", field="cloud_id")
    host, port = parsed.es_address
    return f"https://{host}:{port}"


def aws_credentials(profile: str | None = None) -> Any:
    """The credentials of the standard AWS chain (``botocore.credentials.Credentials``).

    Raises:
        ConfigError: botocore is not installed (``pip install 'eshybrid[aws]'``) or the chain found none.
    """
    try:
        import botocore.session
    except ImportError as e:
        raise ConfigError("AWS SigV4 needs botocore: pip install 'eshybrid[aws]'", field="aws_region") from e
    credentials = botocore.session.Session(profile=profile).get_credentials()
    if credentials is None:
        raise ConfigError(
            "no AWS credentials found: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run where a "
            "role provides them (the standard AWS credential chain)",
            field="aws_region",
        )
    return credentials


def aws_signed_client(
    url: str,
    *,
    region: str,
    service: AwsService = "es",
    credentials: Any = None,
    ca_certs: str | None = None,
    verify_certs: bool = True,
    request_timeout_s: float = 30.0,
    max_retries: int = 3,
    connections_per_node: int = 10,
) -> Any:
    """An ``opensearchpy.OpenSearch`` client whose every request is SigV4-signed (opensearch-py's signer).

    Args:
        url: the domain endpoint, ``https://search-....<region>.es.amazonaws.com`` (or a local proxy).
        region: the AWS region of the domain, e.g. ``eu-west-1``.
        service: ``es`` (OpenSearch Service) or ``aoss`` (OpenSearch Serverless).
        credentials: botocore credentials (default: :func:`aws_credentials`, the standard chain).

    Raises:
        ConfigError: opensearch-py/botocore missing (``eshybrid[aws]``), no credentials, or a malformed URL.
    """
    if not region:
        raise ConfigError("an AWS region is needed to sign requests (--aws-region)", field="aws_region")
    try:
        from opensearchpy import OpenSearch, Urllib3HttpConnection
        from opensearchpy.helpers.signer import Urllib3AWSV4SignerAuth
    except ImportError as e:
        raise ConfigError("AWS SigV4 needs opensearch-py: pip install 'eshybrid[aws]'", field="aws_region") from e
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError("cluster url must look like http(s)://host:port", field="url")
    auth = Urllib3AWSV4SignerAuth(credentials or aws_credentials(), region, service)
    return OpenSearch(
        hosts=[
            {
                "host": parts.hostname,
                "port": parts.port or (443 if parts.scheme == "https" else 80),
                "scheme": parts.scheme,
                "url_prefix": parts.path.rstrip("/"),
            }
        ],
        http_auth=auth,
        use_ssl=parts.scheme == "https",
        verify_certs=verify_certs,
        ca_certs=ca_certs,
        connection_class=Urllib3HttpConnection,
        timeout=request_timeout_s,
        max_retries=max_retries,
        retry_on_status=(502, 503, 504),
        pool_maxsize=connections_per_node,
    )
