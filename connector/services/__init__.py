"""Clients of our own model services (embedding, rerank) on one HTTP layer, and the wire contract both sides share."""

from __future__ import annotations

from connector.services.embedding import AsyncEmbeddingClient, EmbeddingClient, InputType, ServiceInfo
from connector.services.rerank import AsyncRerankClient, RerankClient, RerankReply, RerankResult
from connector.services.wire import EmbeddingServiceInfo, RerankServiceInfo

__all__ = [
    "AsyncEmbeddingClient",
    "AsyncRerankClient",
    "EmbeddingClient",
    "InputType",
    "ServiceInfo",
    "RerankClient",
    "RerankReply",
    "RerankResult",
    "EmbeddingServiceInfo",
    "RerankServiceInfo",
]
