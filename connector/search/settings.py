"""Settings and request shape of the search endpoint (``eshybrid serve search``).

Importable without Ray or FastAPI (the CLI and tests read them); the Ray Serve
deployment itself lives in :mod:`connector.search.app`.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from connector.cluster.settings import ClusterSpec
from connector.search.experiment import ExperimentSpec
from connector.search.images import DEFAULT_IMAGE_WEIGHT, MAX_QUERY_IMAGE_BYTES
from connector.search.models import CorrectMode, FusionConfig, Strategy
from connector.search.request import SearchRequest
from connector.ubi.intake import EventIntakeSettings

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
    embed_budget_s: float | None = Field(
        0.2,
        gt=0,
        le=60,
        description="the search path's query embedding budget, no retries (None: none); over it, or with the "
        "embedder down, /search answers the lexical result flagged vector_fallback (200, never 5xx)",
    )
    embed_breaker_failures: int = Field(3, ge=1, le=1000, description="embedder failures in a row that skip it")
    embed_breaker_open_s: float = Field(5.0, gt=0, le=3600, description="seconds until a skipped embedder is probed")
    image_url: str | None = Field(
        None, description="image service base URL (`eshybrid serve image`): adds the image signal (None: no image leg)"
    )
    image_field: str = Field("image_embedding", min_length=1, description="image vector field")
    image_weight: float = Field(DEFAULT_IMAGE_WEIGHT, ge=0, le=1000, description="fusion weight of the image signal")
    rerank_url: str | None = Field(
        None,
        description="rerank service base URL (`eshybrid serve rerank`): requests may ask mode hybrid+rerank "
        "(None: no reranker)",
    )
    rerank_top_k: int = Field(50, ge=1, le=1000, description="fused hits the reranker reorders")
    rerank_budget_s: float = Field(
        2.0,
        gt=0,
        le=60,
        description="one rerank call's budget, no retries; over it, or with the reranker down, /search answers the "
        "fused order flagged rerank_fallback (200, never 5xx)",
    )
    max_body_bytes: int = Field(
        4 * (MAX_QUERY_IMAGE_BYTES // 3 + 1) + 65_536,
        ge=1024,
        le=1 << 30,
        description="largest POST /search body (then 413); the default fits the largest example image",
    )
    fusion: FusionConfig | None = Field(
        None, description="default fusion (None: the index's tune recommendation, else the library default)"
    )
    strategy: Strategy = Field("auto", description="default fusion strategy")
    correct: CorrectMode | None = Field(
        None, description="default spelling correction: off | auto | force (None: the library default)"
    )
    max_depth: int = Field(100, ge=1, le=10_000, description="candidates per leg = deepest rank")
    request_timeout_s: float = Field(10.0, gt=0, le=300, description="cluster request timeout")
    replicas: int = Field(1, ge=1, le=256, description="search replicas")
    num_cpus_per_replica: float = Field(0.25, gt=0, le=64, description="Ray CPUs per replica (mostly I/O)")
    max_ongoing_requests: int = Field(16, ge=1, le=10_000, description="requests one replica works on at once")
    cluster_connections: int | None = Field(
        None,
        ge=1,
        le=1024,
        description="a replica's connection pool to each cluster node (None: 2 x max_ongoing_requests + 4, so no "
        "search waits for a connection when the cluster slows down)",
    )
    malloc_arena_max: int = Field(
        2,
        ge=0,
        le=64,
        description="glibc malloc arenas of a replica process (MALLOC_ARENA_MAX; 0: glibc's own, 8 per core): the "
        "replica's many threads each took an arena and kept what they freed, so its RSS grew with every search",
    )
    ubi: bool = Field(
        False, description="record searches that name a client_id in ubi_queries, and accept POST /events (UBI)"
    )
    ubi_queries_index: str = Field("ubi_queries", min_length=1, description="UBI query records index")
    ubi_events_index: str = Field("ubi_events", min_length=1, description="UBI event records index")
    events_queue_size: int = Field(10_000, ge=1, le=1_000_000, description="records waiting to be written (then 429)")
    events: EventIntakeSettings = Field(
        default_factory=EventIntakeSettings,
        description="POST /events limits: body, records, rates per client and address",
    )
    experiment: ExperimentSpec | None = Field(
        None, description="the experiment searches may join (`experiment` in the body): two arms, interleaved or A/B"
    )
    workbench: bool = Field(True, description="serve the relevance workbench at /ui (`eshybrid serve search`)")
    workbench_api_key: SecretStr | None = Field(
        None, description="token every workbench client must bring (None: the workbench serves loopback clients only)"
    )
    workbench_export_dir: str = Field("workbench-judgments", description="where the workbench's Export writes")

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
            connections_per_node=self.connections_per_node,
        )

    @property
    def connections_per_node(self) -> int:
        """The replica's connection pool to a cluster node: ``cluster_connections``, or by default two per search
        it works on at once (a first round trip may send the suggestion's ``_msearch`` and the profile read
        together) and four for the background writers (search log, UBI queries and events). The transport's
        default pool of 10 made searches wait for a connection whenever the cluster slowed down: at +200 ms a
        request, one replica served ~25 searches/s whatever ``max_ongoing_requests`` said (issue 29's soak)."""
        return self.cluster_connections or min(1024, 2 * self.max_ongoing_requests + 4)

    @model_validator(mode="after")
    def _index_allowed(self) -> SearchServiceSettings:
        if self.index in self.allowed_indices:
            return self
        object.__setattr__(self, "allowed_indices", (self.index, *self.allowed_indices))
        return self


class SearchRequestBody(BaseModel):
    """``POST /search`` body: the same fields as :meth:`HybridSearch.search`."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field("", max_length=4096, description="the user's text (may be empty with `image`)")
    index: str | None = Field(None, description="index or alias (default: the service's)")
    mode: Literal["bm25", "knn", "hybrid", "hybrid+rerank"] = Field(
        "hybrid", description="hybrid+rerank needs the service's reranker (`rerank_url`)"
    )
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
    correct: CorrectMode | None = Field(
        None, description="spelling correction: off | auto | force (default: the service's)"
    )
    client_id: str | None = Field(
        None, min_length=1, max_length=100, description="the shopper's browser (UBI): recorded, and the experiment arm"
    )
    session_id: str | None = Field(None, min_length=1, max_length=100, description="the shopper's visit (UBI)")
    experiment: str | None = Field(
        None, min_length=1, max_length=256, description="join the service's experiment of this name (needs client_id)"
    )
    image: str | None = Field(
        None,
        max_length=4 * (MAX_QUERY_IMAGE_BYTES // 3 + 1) + 64,
        description="search by example image: the base64 of an image file (a `data:image/...;base64,` prefix is "
        "accepted); needs the service's image signal (`image_url`)",
    )

    @field_validator("image")
    @classmethod
    def _image_is_base64(cls, value: str | None) -> str | None:
        if value is not None:
            _decode_image(value)
        return value

    def search_request(self) -> SearchRequest:
        """The search this body asks for (the one argument list of ``HybridSearch.search``)."""
        return SearchRequest(
            text=self.text,
            mode=self.mode,
            filters=self.filters,
            size=self.size,
            page=self.page,
            explain=self.explain,
            fusion=self.fusion,
            strategy=self.strategy,
            source=self.source,
            user=self.user,
            personal_weight=self.personal_weight,
            correct=self.correct,
            image=self.image_bytes(),
            client_id=self.client_id,
            session_id=self.session_id,
        )

    def image_bytes(self) -> bytes | None:
        """The example image's bytes, or None."""
        return None if self.image is None else _decode_image(self.image)


def _decode_image(value: str) -> bytes:
    data = value.split(",", 1)[1] if value.startswith("data:") and "," in value else value
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ValueError(f"not base64: {e}") from e
    if not raw:
        raise ValueError("empty image")
    return raw
