"""The image signal inside the sans-IO search core: driven by hand, no cluster (the core yields its operations)."""

from __future__ import annotations

from typing import Any

from connector.cluster.capabilities import Capabilities
from connector.search.hybrid import ClusterMsearch, ClusterSearch, Embed, GetMapping, HybridSearch, SearchRequest
from connector.search.images import EmbedImage, ImageSignal
from connector.search.models import FusionConfig
from connector.search.ops import Together

MAPPING = {
    "properties": {
        "title": {"type": "text"},
        "image_url": {"type": "keyword"},
        "embedding": {"type": "knn_vector", "dimension": 2},
        "image_embedding": {"type": "knn_vector", "dimension": 2},
    },
    "_meta": {
        "eshybrid": {
            "vector_fields": {
                "embedding": {"model_id": "m", "dims": 2, "source_fields": ["title"]},
                "image_embedding": {"model_id": "clip", "dims": 2, "modality": "image", "image_field": "image_url"},
            }
        }
    },
}


class _Cluster:
    capabilities = Capabilities.from_version("opensearch", "3.6.0")


class _Unused:
    def embed_query(self, text: str) -> list[float]:
        raise AssertionError("the test answers the operations itself")

    def embed_images(self, images: Any) -> list[list[float]]:
        raise AssertionError("the test answers the operations itself")


def _hits(*ids: str) -> dict[str, Any]:
    return {"hits": {"hits": [{"_id": i, "_index": "shop", "_score": 1.0 / (n + 1)} for n, i in enumerate(ids)]}}


def _drive(flow: Any, answer: Any) -> Any:
    result = None
    ops: list[Any] = []
    while True:
        try:
            op = flow.send(result)
        except StopIteration as stop:
            return stop.value, ops
        ops.append(op)
        result = tuple(answer(o) for o in op.ops) if isinstance(op, Together) else answer(op)


def test_text_to_image_is_a_third_fused_signal() -> None:
    search = HybridSearch(_Cluster(), "shop", embedder=_Unused(), image=ImageSignal(embedder=_Unused(), weight=0.5))

    def answer(op: Any) -> Any:
        if isinstance(op, GetMapping):
            return MAPPING
        if isinstance(op, Embed):
            return [1.0, 0.0]
        if isinstance(op, EmbedImage):
            assert op.text == "red dress" and op.image is None
            return [0.0, 1.0]
        assert isinstance(op, ClusterMsearch)
        bodies = [body for _, body in op.searches]
        assert len(bodies) == 3
        image_body = bodies[2]
        clause = image_body["query"]["knn"]["image_embedding"]
        assert clause["vector"] == [0.0, 1.0] and clause["filter"] == {"bool": {"filter": [{"term": {"c": "r"}}]}}
        return [_hits("a", "b"), _hits("b", "c"), _hits("d", "a")]

    flow = search._search_flow(
        SearchRequest(
            text="red dress",
            mode="hybrid",
            filters=[{"term": {"c": "r"}}],
            size=4,
            page=1,
            explain=True,
            fusion=FusionConfig(method="rrf"),
            strategy=None,
            source=False,
            correct="off",  # the spelling correction's suggest request is not what this test is about
        )
    )
    response, ops = _drive(flow, answer)
    assert search.profile.vector_field == "embedding", "the image vector is not the text vector"
    assert response.fusion.weight("image") == 0.5 and response.strategy == "client"
    assert {h.id for h in response.hits} == {"a", "b", "c", "d"}
    d = next(h for h in response.hits if h.id == "d").explanation  # found by the image leg alone
    assert d is not None and d.signals is not None and d.signals["image"].rank == 1
    assert "image_embedding" in search.source_excludes


def test_search_by_example_image_alone() -> None:
    search = HybridSearch(_Cluster(), "shop", embedder=_Unused(), image=ImageSignal(embedder=_Unused()))

    def answer(op: Any) -> Any:
        if isinstance(op, GetMapping):
            return MAPPING
        if isinstance(op, EmbedImage):
            assert op.image == b"jpeg bytes" and op.text is None
            return [0.0, 1.0]
        assert isinstance(op, ClusterSearch), op  # one leg: no lexical text, no text vector
        assert "image_embedding" in op.body["query"]["knn"]
        return _hits("x", "y")

    flow = search._search_flow(SearchRequest(
        text="", mode="knn", filters=None, size=2, page=1, explain=False, fusion=None, strategy=None, source=False,
        image=b"jpeg bytes",
    ))  # fmt: skip
    response, ops = _drive(flow, answer)
    assert [h.id for h in response.hits] == ["x", "y"] and response.strategy == "single"
    assert not any(isinstance(o, Embed) for op in ops for o in (op.ops if isinstance(op, Together) else (op,)))
