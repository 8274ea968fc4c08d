"""Our services speak the wire formats people already use, and our async clients answer as the sync ones.

The official ``openai`` client calls ``/v1/embeddings`` (its default base64 encoding included) and the
official ``cohere`` client calls ``/v1/rerank``, unchanged, with only ``base_url`` (and a placeholder key)
set, against the real Ray Serve services of the session fixtures.
"""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from connector.services.embedding import AsyncEmbeddingClient, EmbeddingClient
from connector.services.rerank import AsyncRerankClient, RerankClient

pytestmark = [pytest.mark.integration, pytest.mark.ray]

openai = pytest.importorskip("openai")
cohere = pytest.importorskip("cohere")

TEXTS = ["a waterproof tent for heavy rain", "a camping stove", "red running shoes"]
QUERY = "tent for rain"
DOCUMENTS = ["a waterproof tent for heavy rain", "a gas stove", "tents keep the rain out", "a red shoe"]
RERANK_MODEL = "tiny-cross-encoder"  # the rerank_url fixture's model id


def test_openai_client_embeds_through_our_service(embed_url: str) -> None:
    with EmbeddingClient(embed_url) as ours:
        model = ours.info().model_id
        expected = ours.embed_documents(TEXTS)
        query = ours.embed_query(QUERY)
    client = openai.OpenAI(base_url=f"{embed_url}/v1", api_key="not-needed")
    default = client.embeddings.create(model=model, input=TEXTS)  # the client asks for base64 by default
    assert [item.index for item in default.data] == [0, 1, 2] and default.model == model
    for item, vector in zip(default.data, expected):
        assert item.embedding == pytest.approx(vector, abs=1e-6)
    floats = client.embeddings.create(model=model, input=TEXTS[0], encoding_format="float")
    assert floats.data[0].embedding == pytest.approx(expected[0], abs=1e-6)
    assert default.usage.total_tokens > 0
    # our one extension, through the client's own escape hatch: the query prefix
    prefixed = client.embeddings.create(model=model, input=QUERY, extra_body={"input_type": "query"})
    assert prefixed.data[0].embedding == pytest.approx(query, abs=1e-6)
    with pytest.raises(openai.UnprocessableEntityError) as err:
        client.embeddings.create(model=model, input=[])
    assert "input" in str(err.value)
    with pytest.raises(openai.UnprocessableEntityError, match="model"):  # a bad field: 422, the field named
        client.embeddings.create(model="not-our-model", input=TEXTS[0])

    async def async_call() -> list[float]:
        async with openai.AsyncOpenAI(base_url=f"{embed_url}/v1", api_key="not-needed") as aclient:
            answer = await aclient.embeddings.create(model=model, input=TEXTS[1])
            return list(answer.data[0].embedding)

    assert asyncio.run(async_call()) == pytest.approx(expected[1], abs=1e-6)


def test_cohere_client_reranks_through_our_service(rerank_url: str) -> None:
    with RerankClient(rerank_url) as ours:
        expected = ours.rerank(QUERY, DOCUMENTS, top_n=3)
    client = cohere.Client(api_key="not-needed", base_url=rerank_url)
    answer = client.rerank(model=RERANK_MODEL, query=QUERY, documents=DOCUMENTS, top_n=3)
    assert [r.index for r in answer.results] == [r.index for r in expected.results]
    for got, want in zip(answer.results, expected.results):
        assert got.relevance_score == pytest.approx(want.relevance_score, abs=1e-6)
    echoed = client.rerank(model=RERANK_MODEL, query=QUERY, documents=DOCUMENTS, return_documents=True)
    assert {r.document.text for r in echoed.results if r.document} == set(DOCUMENTS)
    with pytest.raises(cohere.core.ApiError) as err:
        client.rerank(model=RERANK_MODEL, query=QUERY, documents=[])
    assert err.value.status_code == 422


def test_async_clients_answer_as_the_sync_ones(embed_url: str, rerank_url: str) -> None:
    with EmbeddingClient(embed_url) as sync_embed, RerankClient(rerank_url) as sync_rerank:
        expected = (sync_embed.embed_documents(TEXTS), sync_embed.embed_query(QUERY))
        scores = sync_rerank.score(QUERY, DOCUMENTS)
        info = sync_embed.info()

    async def run() -> tuple[object, ...]:
        async with AsyncEmbeddingClient(embed_url, batch_size=2) as embed, AsyncRerankClient(rerank_url) as rerank:
            embed.check_compatible({"model_id": info.model_id, "dims": info.dims})  # checked at the first query
            query = await embed.embed_query(QUERY)
            docs = await embed.embed_documents(TEXTS)
            return (docs, query), await rerank.score(QUERY, DOCUMENTS, timeout_s=30.0)

    (docs, query), async_scores = asyncio.run(run())
    assert np.allclose(docs, expected[0], atol=1e-6) and np.allclose(query, expected[1], atol=1e-6)
    assert async_scores == pytest.approx(scores, abs=1e-6)
