"""One side of a comparison: how a search is configured, written in (and read from) the page's URL.

A side is a short string, ``a=mode:hybrid,fusion:linear,lw:0.7,vw:0.3,form:cross_fields`` (keys below), so a
comparison is shared as a link. ``preset:NAME`` starts from a preset (:func:`presets`): the library default,
the index's own recommendation (``_meta.eshybrid.search_defaults``, written by ``eshybrid tune``), single legs,
and ``tune``'s fusion candidates; the other keys override it. Values are percent-encoded, so a user id may hold
any character. Pure functions: no cluster.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, Final, get_args
from urllib.parse import quote, unquote

from connector.errors import SearchRequestError
from connector.quality.selection import fusion_candidates
from connector.search.defaults import fusion_from_meta, lexical_from_meta
from connector.search.models import (
    CORRECT_MODES,
    DEFAULT_FUSION,
    LEXICAL_FORMS,
    SEARCH_MODES,
    CorrectMode,
    FusionConfig,
    FusionMethod,
    LexicalForm,
    Normalizer,
    SearchMode,
)
from connector.search.request import SearchRequest

__all__ = ["FUSION_METHODS", "NORMALIZERS", "SIDE_KEYS", "SideConfig", "parse_side", "presets", "side_to_url"]

NORMALIZERS: Final[tuple[str, ...]] = get_args(Normalizer)
FUSION_METHODS: Final[tuple[str, ...]] = get_args(FusionMethod)
# URL key -> SideConfig attribute.
SIDE_KEYS: Final = {
    "preset": "preset",
    "mode": "mode",
    "fusion": "method",
    "k": "rank_constant",
    "lw": "lexical_weight",
    "vw": "vector_weight",
    "norm": "normalizer",
    "form": "lexical_form",
    "correct": "correct",
    "user": "user",
    "pw": "personal_weight",
}


@dataclass(frozen=True)
class SideConfig:
    """How one side searches; ``None`` fields use the index's recommendation, else the library default."""

    preset: str | None = None
    mode: SearchMode = "hybrid"
    method: FusionMethod | None = None
    rank_constant: int | None = None
    lexical_weight: float | None = None
    vector_weight: float | None = None
    normalizer: Normalizer | None = None
    lexical_form: LexicalForm | None = None
    correct: CorrectMode | None = None
    user: str | None = None
    personal_weight: float | None = None

    def fusion(self) -> FusionConfig | None:
        """The fusion to pass to ``search`` (``None``: the index's or the library's)."""
        if self.method is None:
            return None
        values: dict[str, Any] = {"method": self.method}
        for name in ("rank_constant", "lexical_weight", "vector_weight", "normalizer"):
            if getattr(self, name) is not None:
                values[name] = getattr(self, name)
        try:
            return FusionConfig(**values)
        except ValueError as e:
            raise SearchRequestError(f"fusion of this side: {e}", field="fusion") from e

    def request(self, text: str, *, size: int = 10) -> SearchRequest:
        """The search this side runs for ``text``: the first page, ``size`` hits, explained
        (``search(request.text, **request.options())``)."""
        return SearchRequest(
            text=text,
            mode=self.mode,
            size=size,
            explain=True,
            fusion=self.fusion(),
            correct=self.correct,
            user=self.user or None,
            personal_weight=self.personal_weight if self.user else None,
        )

    def describe(self) -> str:
        """A short label: ``hybrid · linear(min_max, w=0.7/0.3) · cross_fields``."""
        fusion = self.fusion()
        parts = [self.mode, fusion.describe() if fusion else "index fusion", self.lexical_form or "index form"]
        if self.correct:
            parts.append(f"correct={self.correct}")
        if self.user:
            parts.append(f"user={self.user}")
        return " · ".join(parts)


def _value(key: str, raw: str) -> Any:
    text = unquote(raw)
    choices: Mapping[str, tuple[str, ...]] = {
        "mode": SEARCH_MODES,
        "fusion": FUSION_METHODS,
        "norm": NORMALIZERS,
        "form": LEXICAL_FORMS,
        "correct": CORRECT_MODES,
    }
    if key in choices:
        if text not in choices[key]:
            raise SearchRequestError(f"{key} must be one of {', '.join(choices[key])}, got {text!r}", field=key)
        return text
    if key == "k":
        return _number(key, text, int)
    if key in ("lw", "vw", "pw"):
        return _number(key, text, float)
    return text or None


def _number(key: str, text: str, kind: type[int] | type[float]) -> int | float:
    try:
        return kind(text)
    except ValueError as e:
        raise SearchRequestError(f"{key} must be a number, got {text!r}", field=key) from e


def parse_side(spec: str | None, available: Mapping[str, SideConfig]) -> SideConfig:
    """``mode:knn,lw:0.5`` -> a :class:`SideConfig`; ``preset:NAME`` starts from ``available[NAME]``.

    Raises:
        SearchRequestError: an unknown key, preset or value (the message lists what is allowed).
    """
    values: dict[str, Any] = {}
    for part in (spec or "").split(","):
        if not part.strip():
            continue
        key, sep, raw = part.partition(":")
        key = key.strip()
        if not sep or key not in SIDE_KEYS:
            raise SearchRequestError(
                f"side setting {part!r}: use key:value with a key among {', '.join(SIDE_KEYS)}", field=key or "side"
            )
        values[SIDE_KEYS[key]] = _value(key, raw.strip())
    preset = values.get("preset")
    if preset is not None and preset not in available:
        raise SearchRequestError(f"unknown preset {preset!r}; known: {', '.join(available)}", field="preset")
    base = available[preset] if preset is not None else SideConfig()
    return replace(base, **values)


def side_to_url(side: SideConfig) -> str:
    """The URL form of a side (keys in a fixed order, unset ones left out); ``parse_side`` reads it back."""
    by_attr = {attr: key for key, attr in SIDE_KEYS.items()}
    parts = []
    for f in fields(side):
        value = getattr(side, f.name)
        if value is not None:
            parts.append(f"{by_attr[f.name]}:{quote(str(value), safe='')}")
    return ",".join(parts)


def _from_fusion(name: str, fusion: FusionConfig, *, form: LexicalForm | None = None) -> SideConfig:
    return SideConfig(
        preset=name,
        method=fusion.method,
        rank_constant=fusion.rank_constant if fusion.method == "rrf" else None,
        lexical_weight=fusion.lexical_weight,
        vector_weight=fusion.vector_weight,
        normalizer=fusion.normalizer if fusion.method == "linear" else None,
        lexical_form=form,
    )


def presets(search_defaults: Mapping[str, Any] | None) -> dict[str, SideConfig]:
    """The presets a side can start from, in menu order.

    ``index`` (when the index has a recommendation): its fusion and lexical form; ``default``: the library
    default fusion; ``bm25`` and ``knn``: one leg; ``tune:NAME``: each of ``eshybrid tune``'s fusion
    candidates at its listed weights.
    """
    out: dict[str, SideConfig] = {}
    fusion = fusion_from_meta(search_defaults)
    lexical = lexical_from_meta(search_defaults)
    if fusion is not None or lexical is not None:
        out["index"] = _from_fusion("index", fusion or DEFAULT_FUSION, form=lexical.form if lexical else None)
    out["default"] = _from_fusion("default", DEFAULT_FUSION)
    out["bm25"] = SideConfig(preset="bm25", mode="bm25")
    out["knn"] = SideConfig(preset="knn", mode="knn")
    for candidate in fusion_candidates():
        name = f"tune:{candidate.name}"
        out[name] = _from_fusion(name, candidate.fusion)
    return out
