"""One ``/info`` contract per service (connector.services.wire), used by the service and its client."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from connector.services.embedding import ServiceInfo
from connector.services.wire import EmbeddingServiceInfo, RerankServiceInfo

EMBEDDING_INFO: dict[str, Any] = {
    "model_id": "sentence-transformers/all-MiniLM-L6-v2",
    "revision": "r1",
    "dims": 384,
    "max_length": 256,
    "pooling": "mean",
    "normalized": True,
    "device": "cpu",
    "dtype": "float32",
    "query_prefix": "",
    "document_prefix": "",
    "max_items_per_request": 2048,
    "max_chars_per_item": 100_000,
}

CROSS_ENCODER_INFO: dict[str, Any] = {
    "model_id": "tiny",
    "revision": None,
    "kind": "cross_encoder",
    "max_length": 64,
    "max_query_share": 0.5,
    "batch_size": 8,
    "device": "cpu",
    "dtype": "float32",
    "score": "logit",
    "num_labels": 1,
    "max_documents_per_request": 200,
    "max_query_chars": 2000,
    "max_chars_per_document": 20000,
    "max_batch_pairs": 256,
    "torch_threads": None,
}


def test_the_client_reads_the_embedding_contract() -> None:
    assert ServiceInfo is EmbeddingServiceInfo
    info = EmbeddingServiceInfo.model_validate({**EMBEDDING_INFO, "added_in_a_newer_service": 1})
    # Fields added with the backends default to what an older service ran: torch, full precision.
    assert info.model_dump(exclude_unset=True) == EMBEDDING_INFO
    assert (info.backend, info.quantization, info.replicas, info.threads_per_replica) == ("torch", "none", None, None)
    with pytest.raises(ValidationError):
        info.dims = 3  # type: ignore[misc]  # frozen: a client caches it
    with pytest.raises(ValidationError):
        EmbeddingServiceInfo.model_validate({k: v for k, v in EMBEDDING_INFO.items() if k != "dims"})


def test_the_rerank_answer_keeps_only_the_fields_the_model_has() -> None:
    # What rerank.deployment builds: model fields + limits; a cross-encoder has no LLM template.
    body = RerankServiceInfo(**CROSS_ENCODER_INFO).model_dump(exclude_unset=True)
    assert body == CROSS_ENCODER_INFO
    llm = RerankServiceInfo.model_validate(
        {**CROSS_ENCODER_INFO, "kind": "llm", "score": "p_yes", "template": "{query} {document}", "yes_token": "yes"}
    )
    assert (llm.template, llm.yes_token, llm.no_token) == ("{query} {document}", "yes", None)


def test_the_embedding_service_serves_the_contract_in_its_openapi() -> None:
    pytest.importorskip("ray")
    pytest.importorskip("fastapi")
    from embedding_service.deployment import _api

    document = _api.openapi()
    answer = document["paths"]["/info"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer == {"$ref": "#/components/schemas/EmbeddingServiceInfo"}
    schema = document["components"]["schemas"]["EmbeddingServiceInfo"]
    assert sorted(schema["required"]) == sorted(EMBEDDING_INFO)
