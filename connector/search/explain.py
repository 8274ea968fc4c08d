"""Why a hit sits where it does: its score explanation, and readable text tables of hits (for the CLI)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from connector.search.fusion import FusedDoc
from connector.search.models import (
    FusionConfig,
    HitExplanation,
    LegExplanation,
    PassageMatch,
    SearchMode,
    SearchResponse,
)

__all__ = ["format_hits", "fusion_weight_lines", "hit_explanation", "hit_label"]


def hit_explanation(
    doc: FusedDoc,
    *,
    mode: SearchMode,
    strategy: Literal["client", "single"],
    fusion: FusionConfig,
    rerank_score: float | None = None,
    passage: PassageMatch | None = None,
    signals: Sequence[str] = (),
    affinities: dict[str, float] | None = None,
) -> HitExplanation:
    """The explanation of one client-side fused (or single-leg) hit: each leg's raw score, rank,
    normalized value, weight and contribution; a leg that missed the document has only its weight.

    ``signals`` names the further signals fused beside the two legs (``personal``, ``image``...):
    each gets the same entry under ``HitExplanation.signals``; ``affinities``: the shopper's affinities that
    moved the hit (``field=value``: affinity)."""

    def leg(name: str) -> LegExplanation | None:
        if mode == "bm25" and name == "vector" or mode == "knn" and name == "lexical":
            return None
        return signal(name)

    def signal(name: str) -> LegExplanation:
        score = doc.legs.get(name)
        if score is None:
            return LegExplanation(weight=1.0 if strategy == "single" else fusion.weight(name))
        return LegExplanation(
            raw_score=score.raw_score,
            rank=score.rank,
            normalized=score.normalized,
            weight=score.weight,
            contribution=score.contribution,
        )

    return HitExplanation(
        mode=mode,
        strategy=strategy,
        fusion=fusion.describe() if strategy == "client" else None,
        lexical=leg("lexical"),
        vector=leg("vector"),
        signals={name: signal(name) for name in signals} if signals else None,
        fused_score=doc.score,
        rerank_score=rerank_score,
        passage=passage,
        affinities=affinities or None,
    )


_LABEL_FIELDS = ("title", "name", "text", "description")


def hit_label(source: Mapping[str, Any] | None, *, fields: Sequence[str] = _LABEL_FIELDS, width: int = 60) -> str:
    """A one-line label of a document: its first non-empty title-like field, cut to ``width``."""
    if not source:
        return ""
    for name in fields:
        value = source.get(name)
        if isinstance(value, str) and value.strip():
            text = " ".join(value.split())
            return text if len(text) <= width else text[: width - 1] + "…"
    return ""


def _num(value: float | None, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


def _leg_cells(leg: LegExplanation | None) -> list[str]:
    if leg is None:
        return ["", "", ""]
    return [_num(leg.raw_score), "-" if leg.rank is None else str(leg.rank), _num(leg.normalized)]


def format_hits(response: SearchResponse, *, label_fields: Sequence[str] = _LABEL_FIELDS) -> str:
    """The page as a table; with explanations: per-leg raw score, rank, normalized value, and the fused score."""
    explained = any(h.explanation is not None for h in response.hits)
    extra = sorted({name for h in response.hits if h.explanation for name in h.explanation.signals or {}})
    head = ["rank", "id", "score"]
    if explained:
        head += ["lex.raw", "lex.rank", "lex.norm", "vec.raw", "vec.rank", "vec.norm"]
        head += [f"{name[:4]}.{cell}" for name in extra for cell in ("raw", "rank", "norm")]
        head.append("fused")
        if any(h.explanation and h.explanation.rerank_score is not None for h in response.hits):
            head.append("rerank")
        if any(h.explanation and h.explanation.passage is not None for h in response.hits):
            head.append("passage")
        if any(h.explanation and h.explanation.affinities for h in response.hits):
            head.append("taste")
    head.append("document")
    rows: list[list[str]] = []
    for hit in response.hits:
        row = [str(hit.rank), hit.id, _num(hit.score)]
        if explained:
            e = hit.explanation
            row += _leg_cells(e.lexical if e else None) + _leg_cells(e.vector if e else None)
            for name in extra:
                row += _leg_cells((e.signals or {}).get(name) if e else None)
            row.append(_num(e.fused_score) if e else "")
            if "rerank" in head:
                row.append(_num(e.rerank_score) if e else "")
            if "passage" in head:
                row.append(_passage_cell(e.passage if e else None))
            if "taste" in head:
                row.append(_taste_cell(e.affinities if e else None))
        row.append(hit_label(hit.source, fields=label_fields))
        rows.append(row)
    widths = [max(len(head[i]), *(len(r[i]) for r in rows)) if rows else len(head[i]) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(head)).rstrip()]
    lines += ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows]
    lines.append(_footer(response, explained))
    lines.extend(fusion_weight_lines(response, explained=explained))
    lines.extend(correction_lines(response, explained=explained))
    return "\n".join(lines)


def _taste_cell(affinities: Mapping[str, float] | None) -> str:
    """The affinities that moved a personalized hit, strongest first: ``brand.keyword=Acme 0.62``."""
    ranked = sorted((affinities or {}).items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{name[:40]} {value:.2f}" for name, value in ranked)


def fusion_weight_lines(response: SearchResponse, *, explained: bool = False) -> list[str]:
    """The adaptive fusion's weights for this query; explained: the evidence and each reason."""
    weights = response.fusion_weights
    if weights is None:
        return []
    lines = [f"-- weights for this query: lexical {weights.lexical:.2f} / vector {weights.vector:.2f}"]
    if explained:
        coverage = "not counted" if weights.coverage is None else f"{weights.coverage:.2f}"
        agreement = "n/a" if weights.agreement is None else f"{weights.agreement:.0%}"
        lines.append(
            f"--   content words {', '.join(weights.content_words) or '(none)'}; absent from the index: "
            f"{', '.join(weights.absent_words) or 'none'}; coverage {coverage}; legs agree {agreement}"
        )
        lines.append(
            f"--   rule: lexical = {weights.base_share:.2f} x coverage^{weights.coefficients.get('coverage_power', 0):g}"
        )
        lines.extend(f"--   {reason}" for reason in weights.reasons)
    return lines


def correction_lines(response: SearchResponse, *, explained: bool = False) -> list[str]:
    """What query understanding did: the corrected text, "did you mean", and (explained) each word's reason."""
    correction = response.correction
    if correction is None:
        return []
    lines: list[str] = []
    if correction.rewritten:
        lines.append(f"-- rewritten: {correction.rewritten!r}")
    if correction.rewrite_fallback:
        lines.append(f"-- REWRITER FAILED ({correction.rewrite_fallback_reason}): original text searched")
    if response.corrected_query:
        lines.append(
            f"-- searched for {response.corrected_query!r} (typed {response.query!r}); "
            f"lexical leg: {correction.lexical_text!r}"
        )
    elif response.did_you_mean:
        lines.append(f"-- did you mean {response.did_you_mean!r}?")
    if correction.error:
        lines.append(f"-- spelling correction failed ({correction.error}): original text searched")
    if explained:
        for change in correction.changes:
            mark = "changed" if change.applied else "kept"
            lines.append(f"--   {change.original} -> {change.suggestion}: {mark} ({change.reason})")
    return lines


def _passage_cell(passage: PassageMatch | None) -> str:
    """``#3 [700:950]``: which passage scored the kNN leg (its position and character span)."""
    if passage is None:
        return ""
    return f"#{passage.offset if passage.offset is not None else '?'} [{passage.start}:{passage.end}]"


def _footer(response: SearchResponse, explained: bool) -> str:
    t = response.timings
    how = response.strategy + (f" ({response.server_form})" if response.server_form else "")
    fusion = f", fusion {response.fusion.describe()}" if response.fusion else ""
    parts = [
        f"mode {response.mode}, {how}{fusion}, page {response.page} x {response.size}",
        f"candidates {response.candidates if response.candidates is not None else 'n/a'} (max depth {response.max_depth})",
        (f"correct {t.correct_ms:.1f} ms, " if response.correction is not None else "")
        + f"embed {t.embed_ms:.1f} ms, search {t.search_ms:.1f} ms, fetch {t.fetch_ms:.1f} ms, total {t.total_ms:.1f} ms",
    ]
    if response.rerank_fallback:
        parts.append("RERANK FAILED: fused order shown")
    if explained and response.fusion and response.fusion.method in ("linear", "adaptive"):
        parts.append("fused = sum(weight * norm) / sum(weights)")
    elif explained and response.fusion:
        parts.append("fused = sum(weight / (k + rank)); norm = 1/(k + rank)")
    return "-- " + "; ".join(parts)
