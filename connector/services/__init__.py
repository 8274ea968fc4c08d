"""Clients of our own model services (embedding, rerank) on one HTTP layer, the wire contract both sides share,
and the in-process query encoder (the embedding service's export, loaded without torch)."""

from __future__ import annotations

from connector.services.embedding import AsyncEmbeddingClient, EmbeddingClient, InputType, ServiceInfo
from connector.services.query_encoder import QueryEncoder, QueryEncoderSettings, local_query_encoder
from connector.services.rerank import AsyncRerankClient, RerankClient, RerankReply, RerankResult
from connector.services.wire import EmbeddingServiceInfo, RerankServiceInfo

__all__ = [
    "AsyncEmbeddingClient",
    "AsyncRerankClient",
    "EmbeddingClient",
    "InputType",
    "QueryEncoder",
    "QueryEncoderSettings",
    "local_query_encoder",
    "ServiceInfo",
    "RerankClient",
    "RerankReply",
    "RerankResult",
    "EmbeddingServiceInfo",
    "RerankServiceInfo",
]
