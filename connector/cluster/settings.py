"""How to reach a cluster and the embedding service: one settings object for every command.

``ESHYBRID_URL``, ``ESHYBRID_API_KEY`` or ``ESHYBRID_USERNAME`` / ``ESHYBRID_PASSWORD``,
``ESHYBRID_CA_CERTS``, ``ESHYBRID_VERIFY_CERTS``, ``ESHYBRID_EMBED_URL``, ``ESHYBRID_EMBED_API_KEY``;
managed clusters: ``ESHYBRID_CLOUD_ID`` (Elastic Cloud) or ``ESHYBRID_AWS_REGION`` (+ ``ESHYBRID_AWS_SERVICE``,
Amazon OpenSearch Service, SigV4 with the standard AWS credential chain).  Secrets stay ``SecretStr``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from connector.cluster import detect as _detect
from connector.cluster.capabilities import Capabilities
from connector.cluster.client import Cluster
from connector.cluster.cloud import AwsService, aws_signed_client, cloud_id_url
from connector.cluster.official import wrap_client
from connector.errors import ConfigError

__all__ = ["ClusterSpec", "ConnectionSettings"]


class ClusterSpec(BaseModel):
    """How to reach a cluster, in a form that crosses process boundaries (Ray tasks).

    Secrets stay ``SecretStr``: they pickle, but never print.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    api_key: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None
    ca_certs: str | None = None
    verify_certs: bool = True
    request_timeout_s: float = Field(60.0, gt=0)
    aws_region: str | None = Field(None, description="sign every request with AWS SigV4 for this region")
    aws_service: AwsService = Field("es", description="es: OpenSearch Service; aoss: OpenSearch Serverless")
    connections_per_node: int = Field(
        10, ge=1, le=1024, description="requests in flight to one node at once (the connection pool's size)"
    )

    @property
    def basic_auth(self) -> tuple[str, SecretStr] | None:
        """``(username, password)`` for HTTP basic auth (an unset password is empty); None without a username."""
        return (self.username, self.password or SecretStr("")) if self.username else None

    def connect(self, *, detect: bool = False, capabilities: Capabilities | None = None) -> Cluster:
        """A client for this cluster.

        Args:
            detect: read ``GET /`` and detect the capabilities now (:func:`connector.connect`), so a
                wrong URL, CA or password fails here; without it nothing is sent until the first request
                (a Ray task reaching a cluster the driver has already checked).
            capabilities: without ``detect``, capabilities detected elsewhere (the driver's, pickled to a
                Ray task); without either, ``cluster.capabilities`` raises :class:`ConfigError`.

        Raises:
            ConfigError: the URL is malformed, or both ``detect`` and ``capabilities`` were given.
            ClusterError: with ``detect``, the cluster cannot be reached, refuses the credentials or is
                not supported (see :func:`connector.connect`).
        """
        if detect and capabilities is not None:
            raise ConfigError("pass detect=True or capabilities=, not both", field="capabilities")
        if self.aws_region:
            # Amazon OpenSearch Service: every request signed by opensearch-py's SigV4 signer.
            client = aws_signed_client(
                self.url,
                region=self.aws_region,
                service=self.aws_service,
                ca_certs=self.ca_certs,
                verify_certs=self.verify_certs,
                request_timeout_s=self.request_timeout_s,
                connections_per_node=self.connections_per_node,
            )
            return _detect.connect(client) if detect else wrap_client(client, capabilities=capabilities)
        if detect:
            return _detect.connect(
                self.url,
                api_key=self.api_key,
                basic_auth=self.basic_auth,
                ca_certs=self.ca_certs,
                verify_certs=self.verify_certs,
                request_timeout_s=self.request_timeout_s,
                connections_per_node=self.connections_per_node,
            )
        return Cluster(
            self.url,
            api_key=self.api_key,
            basic_auth=self.basic_auth,
            ca_certs=self.ca_certs,
            verify_certs=self.verify_certs,
            request_timeout_s=self.request_timeout_s,
            capabilities=capabilities,
            connections_per_node=self.connections_per_node,
        )


class ConnectionSettings(BaseSettings):
    """Where the cluster and the embedding service are, from the environment (``ESHYBRID_URL``...)."""

    model_config = SettingsConfigDict(env_prefix="ESHYBRID_", extra="forbid")

    url: str | None = None
    api_key: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None
    ca_certs: str | None = None
    verify_certs: bool = True
    embed_url: str | None = None
    embed_api_key: SecretStr | None = None
    cloud_id: str | None = None
    aws_region: str | None = None
    aws_service: AwsService = "es"

    def cluster_spec(self, url: str | None = None) -> ClusterSpec:
        """The :class:`ClusterSpec` for ``url`` (or ``ESHYBRID_URL``)."""
        chosen = url or self.url or (cloud_id_url(self.cloud_id) if self.cloud_id else None)
        if not chosen:
            raise ConfigError(
                "no cluster URL: pass --url or set ESHYBRID_URL (or --cloud-id / ESHYBRID_CLOUD_ID)", field="url"
            )
        return ClusterSpec(
            url=chosen,
            api_key=self.api_key,
            username=self.username,
            password=self.password,
            ca_certs=self.ca_certs,
            verify_certs=self.verify_certs,
            aws_region=self.aws_region,
            aws_service=self.aws_service,
        )

    def connect(self, url: str | None = None, *, request_timeout_s: float = 30.0) -> Cluster:
        """:func:`connector.connect` (capabilities detected) to ``url`` or ``ESHYBRID_URL``.

        Args:
            request_timeout_s: each request's default timeout (the upgrade jobs, whose bulk requests
                are larger, connect through :meth:`cluster_spec` with its 60 s).

        Raises:
            ConfigError: neither is set.
        """
        spec = self.cluster_spec(url).model_copy(update={"request_timeout_s": request_timeout_s})
        return spec.connect(detect=True)
