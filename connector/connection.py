"""How to reach a cluster and the embedding service: one settings object for every command.

``ESHYBRID_URL``, ``ESHYBRID_API_KEY`` or ``ESHYBRID_USERNAME`` / ``ESHYBRID_PASSWORD``,
``ESHYBRID_CA_CERTS``, ``ESHYBRID_VERIFY_CERTS``, ``ESHYBRID_EMBED_URL``, ``ESHYBRID_EMBED_API_KEY``.
Secrets stay ``SecretStr``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from connector.client import Cluster

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

    def connect(self) -> Cluster:
        basic = (self.username, self.password or SecretStr("")) if self.username else None
        return Cluster(
            self.url, api_key=self.api_key, basic_auth=basic, ca_certs=self.ca_certs,
            verify_certs=self.verify_certs, request_timeout_s=self.request_timeout_s,
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

    def cluster_spec(self, url: str | None = None) -> ClusterSpec:
        """The :class:`ClusterSpec` for ``url`` (or ``ESHYBRID_URL``)."""
        from connector.errors import ConfigError

        chosen = url or self.url
        if not chosen:
            raise ConfigError("no cluster URL: pass --url or set ESHYBRID_URL", field="url")
        return ClusterSpec(url=chosen, api_key=self.api_key, username=self.username, password=self.password,
                           ca_certs=self.ca_certs, verify_certs=self.verify_certs)

    def connect(self, url: str | None = None) -> Cluster:
        """:func:`connector.connect` (capabilities detected) to ``url`` or ``ESHYBRID_URL``.

        Raises:
            ConfigError: neither is set.
        """
        from connector._connect import connect

        spec = self.cluster_spec(url)
        basic = (spec.username, spec.password or SecretStr("")) if spec.username else None
        return connect(spec.url, api_key=spec.api_key, basic_auth=basic, ca_certs=spec.ca_certs,
                       verify_certs=spec.verify_certs)
