"""Clients of our own model services (embedding, rerank) and the wire contract both sides share."""

from __future__ import annotations

from connector.services.embedding import EmbeddingClient, InputType, ServiceInfo

__all__ = [
    "EmbeddingClient",
    "InputType",
    "ServiceInfo",
]
