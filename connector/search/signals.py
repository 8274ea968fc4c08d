"""The signals of a client-side search: each contributes its leg body and reads its hits; fusion loops over them.

A leg signal (:class:`LexicalSignal`, :class:`VectorSignal`, :class:`ImageLeg`) searches ``max_depth``
candidates in the legs' one ``_msearch``; adding a signal is one class here and one entry in
:func:`leg_signals`, not branches in the core. The personal signal is of another kind: it scores the legs'
candidates after they are known (:mod:`connector.search.personal`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from connector.search import query_builder as qb
from connector.search._profile import IndexProfile
from connector.search.fusion import LegHit, leg_hits
from connector.search.images import IMAGE_SIGNAL, ImageSignal
from connector.search.passages import passage_knn_leg_body

__all__ = ["ImageLeg", "LegContext", "LegSignal", "LexicalSignal", "VectorSignal", "leg_signals"]


@dataclass(frozen=True)
class LegContext:
    """What the leg signals of one search build their bodies from."""

    text: str  # what the lexical leg searches ("" : no lexical leg)
    vector: Sequence[float] | None
    image_vector: Sequence[float] | None
    filters: Sequence[Mapping[str, Any]]
    depth: int
    num_candidates: int
    knn_shape: Callable[[], str]  # asked only when a kNN leg runs (a never-detected cluster still does bm25)
    lexical_query: Callable[[str, Sequence[Mapping[str, Any]]], dict[str, Any]]


class LegSignal(Protocol):
    """One leg: its name in the fusion, its body (``None``: it does not run in this search), its hits."""

    name: str

    def body(self, ctx: LegContext) -> dict[str, Any] | None: ...

    def hits(self, response: Mapping[str, Any]) -> list[LegHit]: ...


class _Leg:
    name = ""

    def hits(self, response: Mapping[str, Any]) -> list[LegHit]:
        return leg_hits(response)


class LexicalSignal(_Leg):
    """BM25 over the lexical fields (the form the index or engine recommends), with the filters."""

    name = "lexical"

    def body(self, ctx: LegContext) -> dict[str, Any] | None:
        if not ctx.text:
            return None
        return qb.lexical_leg_body(ctx.lexical_query(ctx.text, ctx.filters), size=ctx.depth)


class VectorSignal(_Leg):
    """kNN over the vector field; over a passages field, nested kNN: the best passage scores the document."""

    name = "vector"

    def __init__(self, profile: IndexProfile) -> None:
        self.field, self.passages = profile.vector_field, profile.passages

    def body(self, ctx: LegContext) -> dict[str, Any] | None:
        if ctx.vector is None:
            return None
        options: dict[str, Any] = {"k": ctx.depth, "num_candidates": ctx.num_candidates, "filters": ctx.filters}
        if self.passages:
            return passage_knn_leg_body(ctx.vector, knn_shape=ctx.knn_shape(), path=self.field, **options)
        return qb.knn_leg_body(ctx.vector, knn_shape=ctx.knn_shape(), field=self.field, **options)


class ImageLeg(_Leg):
    """kNN over the image vector field with the query's image-space vector (text-to-image or an example image)."""

    name = IMAGE_SIGNAL

    def __init__(self, image: ImageSignal) -> None:
        self.field = image.field

    def body(self, ctx: LegContext) -> dict[str, Any] | None:
        if ctx.image_vector is None:
            return None
        options: dict[str, Any] = {"k": ctx.depth, "num_candidates": ctx.num_candidates, "filters": ctx.filters}
        return qb.knn_leg_body(ctx.image_vector, knn_shape=ctx.knn_shape(), field=self.field, **options)


def leg_signals(profile: IndexProfile, image: ImageSignal | None) -> list[LegSignal]:
    """The leg signals of an index, in their ``_msearch`` order."""
    signals: list[LegSignal] = [LexicalSignal(), VectorSignal(profile)]
    if image is not None:
        signals.append(ImageLeg(image))
    return signals
