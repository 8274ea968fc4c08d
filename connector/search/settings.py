"""Settings and request shape of the search endpoint (``eshybrid serve search``).

Importable without Ray or FastAPI (the CLI and tests read them); the Ray Serve
deployment itself lives in :mod:`connector.search.app`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from connector.cluster.settings import ClusterSpec
from connector.search.models import FusionConfig, Strategy

__all__ = ["SearchServiceSettings", "SearchRequestBody"]


class SearchServiceSettings(BaseSettings):
    """One object for the search deployable; every field from env ``ESHYBRID_SEARCH_*``.

    The query embedder is, in order of preference: the embedding deployment bound
    into the same application (model composition, see ``build_search_app``), the
    Serve application named ``embed_app`` (a deployment handle), or ``embed_url`` (HTTP).
    """

    model_config = SettingsConfigDict(env_prefix="ESHYBRID_SEARCH_", extra="forbid", frozen=True)

    cluster_url: str = Field(..., description="Elasticsearch / OpenSearch URL")
    api_key: SecretStr | None = Field(None, description="cluster API key")
    username: str | None = Field(None, description="cluster user (basic auth)")
    password: SecretStr | None = Field(None, description="cluster password (basic auth)")
    ca_certs: str | None = Field(None, description="PEM file of the CA that signed the cluster certificate")
    verify_certs: bool = Field(True, description="verify the cluster certificate")
    index: str = Field(..., min_length=1, description="default index or alias searched")
    allowed_indices: tuple[str, ...] = Field((), description="other indices a request may name")
    embed_app: str | None = Field(None, description="Serve application of the embedding deployment (handle)")
    embed_url: str | None = Field(None, description="embedding service base URL (HTTP), when no handle")
    embed_timeout_s: float = Field(10.0, gt=0, le=300, description="query embedding timeout")
    fusion: FusionConfig | None = Field(
        None, description="default fusion (None: the index's tune recommendation, else the library default)"
    )
    strategy: Strategy = Field("auto", description="default fusion strategy")
    max_depth: int = Field(100, ge=1, le=10_000, description="candidates per leg = deepest rank")
    request_timeout_s: float = Field(10.0, gt=0, le=300, description="cluster request timeout")
    replicas: int = Field(1, ge=1, le=256, description="search replicas")
    num_cpus_per_replica: float = Field(0.25, gt=0, le=64, description="Ray CPUs per replica (mostly I/O)")
    max_ongoing_requests: int = Field(16, ge=1, le=10_000, description="requests one replica works on at once")

    def cluster_spec(self) -> ClusterSpec:
        """How a replica reaches the cluster (``ClusterSpec.connect`` builds the client)."""
        return ClusterSpec(
            url=self.cluster_url,
            api_key=self.api_key,
            username=self.username,
            password=self.password,
            ca_certs=self.ca_certs,
            verify_certs=self.verify_certs,
            request_timeout_s=self.request_timeout_s,
        )

    @model_validator(mode="after")
    def _index_allowed(self) -> SearchServiceSettings:
        if self.index in self.allowed_indices:
            return self
        object.__setattr__(self, "allowed_indices", (self.index, *self.allowed_indices))
        return self


class SearchRequestBody(BaseModel):
    """``POST /search`` body: the same fields as :meth:`HybridSearch.search`."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(..., min_length=1, max_length=4096, description="the user's text")
    index: str | None = Field(None, description="index or alias (default: the service's)")
    mode: Literal["bm25", "knn", "hybrid"] = "hybrid"
    filters: list[dict[str, Any]] = Field(default_factory=list, description="query-DSL filter clauses")
    size: int = Field(10, ge=1, le=10_000)
    page: int = Field(1, ge=1)
    explain: bool = False
    fusion: FusionConfig | None = None
    strategy: Strategy | None = None
    source: bool | list[str] = True
    console: bool = Field(False, description="also return what ran as Dev Tools console text")
    user: str | None = Field(
        None, min_length=1, max_length=512, description="shopper id: personalize with their stored profile"
    )
    personal_weight: float | None = Field(
        None, ge=0.0, le=1000.0, description="weight of the personal signal (default: the library's)"
    )
