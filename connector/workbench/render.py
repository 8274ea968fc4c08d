"""The workbench page as HTML, rendered on the server (pure functions of the comparison).

Every value that comes from a document, a query or a URL goes through :func:`esc` (product text is untrusted:
a title holding ``<script>`` must show as text). The page has no inline script and no inline style (the app
sends a Content-Security-Policy that forbids them); charts are SVG whose sizes are attributes. The script
(``static/workbench.js``) only adds rating, keyboard shortcuts and the live nDCG.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlencode

from connector.search.models import CORRECT_MODES, LEXICAL_FORMS, SEARCH_MODES, SearchHit, SearchResponse
from connector.workbench.compare import Move, ndcg_at, score_parts, timing_bars
from connector.workbench.config import FUSION_METHODS, NORMALIZERS, SideConfig

__all__ = ["PageView", "SideView", "esc", "render_page"]

TITLE_FIELDS: Final = ("title", "name", "product_title")
IMAGE_FIELDS: Final = ("image", "image_url", "thumbnail", "img")
_CHART_W: Final = 220
_WATERFALL_W: Final = 260


def esc(value: Any) -> str:
    """HTML-escape any value (quotes included, so it is safe in an attribute too)."""
    return html.escape("" if value is None else str(value), quote=True)


@dataclass
class SideView:
    """One side of the page: its config (as asked) and its answer, or the error that stopped it."""

    name: str
    config: SideConfig
    spec: str
    response: SearchResponse | None = None
    error: str | None = None
    moves: dict[str, Move] = field(default_factory=dict)

    @property
    def ids(self) -> list[str]:
        return self.response.ids if self.response else []


@dataclass
class PageView:
    """Everything the page shows."""

    index: str
    query: str
    sides: list[SideView]
    presets: Sequence[str]
    grades: dict[str, int] = field(default_factory=dict)
    disagreements: dict[str, dict[str, int]] = field(default_factory=dict)
    notice: str | None = None
    root: str = ""  # the host app's mount point: links are ``{root}/ui/...``


def hit_title(source: Mapping[str, Any] | None, doc_id: str) -> str:
    """The hit's title: the first of the usual title fields, else its id."""
    for name in TITLE_FIELDS:
        value = (source or {}).get(name)
        if isinstance(value, str) and value.strip():
            return value
    return doc_id


def hit_image(source: Mapping[str, Any] | None) -> str | None:
    """An http(s) or ``data:image/`` URL of the hit, when it has one (other schemes, ``javascript:`` included,
    are dropped)."""
    for name in IMAGE_FIELDS:
        value = (source or {}).get(name)
        if isinstance(value, list) and value:
            value = value[0]
        if isinstance(value, str) and value.lower().startswith(("https://", "http://", "data:image/")):
            return value
    return None


def _chart(hit: SearchHit, scale: float) -> str:
    parts = [p for p in score_parts(hit.explanation) if p.contribution > 0]
    x = 0.0
    rects = []
    for part in parts:
        width = _CHART_W * part.contribution / scale if scale > 0 else 0.0
        label = (
            f"{part.signal}: +{part.contribution:.4f} (raw {part.raw_score}, rank {part.rank}, "
            f"normalized {part.normalized}, weight {part.weight:g})"
        )
        rects.append(
            f'<rect class="sig sig-{esc(part.signal)}" x="{x:.1f}" y="0" width="{width:.1f}" height="12">'
            f"<title>{esc(label)}</title></rect>"
        )
        x += width
    legend = " ".join(f'<span class="sig-{esc(p.signal)}">{esc(p.signal)} {p.contribution:.3f}</span>' for p in parts)
    rerank = ""
    if hit.explanation is not None and hit.explanation.rerank_score is not None:
        rerank = f' <span class="rerank">rerank {hit.explanation.rerank_score:.3f}</span>'
    svg = (
        f'<svg class="chart" width="{_CHART_W}" height="12" role="img" aria-label="score parts">{"".join(rects)}</svg>'
    )
    return f'<div class="parts">{svg}<div class="legend">{legend}{rerank}</div></div>'


def _move(move: Move | None) -> str:
    if move is None:
        return ""
    text = {"up": f"▲{move.by}", "down": f"▼{move.by}", "same": "=", "only": "only here"}[move.kind]
    where = f" (#{move.other_rank} on the other side)" if move.other_rank else " (not on the other side)"
    return f'<span class="move move-{move.kind}" title="{esc(move.kind + where)}">{esc(text)}</span>'


def _grade_buttons(doc: str, grade: int | None) -> str:
    buttons = "".join(
        f'<button type="button" class="grade g{g}{" on" if grade == g else ""}" data-grade="{g}">{g}</button>'
        for g in range(4)
    )
    return f'<span class="grades" data-doc="{esc(doc)}">{buttons}</span>'


def _hit(hit: SearchHit, side: SideView, grades: Mapping[str, int], scale: float) -> str:
    title = hit_title(hit.source, hit.id)
    image = hit_image(hit.source)
    img = f'<img src="{esc(image)}" alt="" loading="lazy" referrerpolicy="no-referrer">' if image else ""
    grade = grades.get(hit.id)
    return (
        f'<li class="hit" tabindex="0" data-doc="{esc(hit.id)}" data-rank="{hit.rank}">'
        f'<span class="rank">{hit.rank}</span>{_move(side.moves.get(hit.id))}{img}'
        f'<div class="body"><div class="title">{esc(title)}</div>'
        f'<div class="meta">id {esc(hit.id)} · score {hit.score:.4f}</div>'
        f"{_chart(hit, scale)}{_grade_buttons(hit.id, grade)}</div></li>"
    )


def _correction(response: SearchResponse) -> str:
    c = response.correction
    if c is None or (not c.changes and not c.rewritten and not c.error):
        return ""
    changes = "".join(
        f"<li>{esc(ch.original)} → {esc(ch.suggestion)}: {'applied' if ch.applied else 'not applied'} "
        f"({esc(ch.reason)})</li>"
        for ch in c.changes
    )
    searched = f"searched <q>{esc(c.searched)}</q>" if c.searched != response.query else ""
    error = f'<div class="warn">correction failed: {esc(c.error)}</div>' if c.error else ""
    return f'<div class="correction">correction {esc(c.mode)}: {searched}<ul>{changes}</ul>{error}</div>'


def _fallbacks(response: SearchResponse) -> str:
    notes = []
    if response.rerank_fallback:
        notes.append(f"rerank fell back: {response.rerank_fallback_reason or 'no reason given'}")
    # vector_fallback / fusion_weights: fields of newer responses (read softly, so older ones render too).
    if getattr(response, "vector_fallback", False):
        reason = getattr(response, "vector_fallback_reason", None)
        notes.append(f"a signal was left out: {reason or 'its helper failed'}")
    if response.correction is not None and response.correction.rewrite_fallback:
        notes.append(f"rewrite fell back: {response.correction.rewrite_fallback_reason or 'no reason given'}")
    return "".join(f'<div class="warn fallback">{esc(n)}</div>' for n in notes)


def _waterfall(response: SearchResponse) -> str:
    bars = timing_bars(response.timings)
    total = max(response.timings.total_ms, sum(b.ms for b in bars), 1e-9)
    rows = []
    for i, bar in enumerate(bars):
        x = _WATERFALL_W * bar.start_ms / total
        w = max(_WATERFALL_W * bar.ms / total, 1.0)
        rows.append(
            f'<rect class="stage st-{esc(bar.stage)}" x="{x:.1f}" y="{i * 12}" width="{w:.1f}" height="10">'
            f"<title>{esc(bar.stage)} {bar.ms:.1f} ms</title></rect>"
            f'<text x="{_WATERFALL_W + 4}" y="{i * 12 + 9}">{esc(bar.stage)} {bar.ms:.1f}</text>'
        )
    height = max(len(bars), 1) * 12
    return (
        f'<figure class="waterfall"><svg width="{_WATERFALL_W + 90}" height="{height}" role="img" '
        f'aria-label="timings">{"".join(rows)}</svg><figcaption>total {response.timings.total_ms:.1f} ms'
        "</figcaption></figure>"
    )


def _scale(side: SideView) -> float:
    """The largest score of a side's hits: its bars share one scale (the sides' scores are not comparable)."""
    hits = side.response.hits if side.response else []
    totals = [sum(p.contribution for p in score_parts(h.explanation) if p.contribution > 0) for h in hits]
    return max([*totals, 1e-9])


def _ndcg(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def _side(side: SideView, page: PageView, scale: float) -> str:
    head = (
        f'<h2>{esc(side.name.upper())} <small class="desc">{esc(side.config.describe())}</small></h2>'
        f'<div class="ndcg-line">nDCG@10 over rated hits: <b class="ndcg" data-side="{esc(side.name)}">'
        f"{_ndcg(ndcg_at(side.ids, page.grades))}</b></div>"
    )
    if side.error is not None:
        return f'<section class="side" data-side="{esc(side.name)}">{head}<div class="error">{esc(side.error)}</div></section>'
    response = side.response
    if response is None:
        return f'<section class="side" data-side="{esc(side.name)}">{head}</section>'
    info = (
        f'<div class="info">{esc(response.mode)} · {esc(response.strategy)}'
        f"{' · ' + esc(response.fusion.describe()) if response.fusion else ''}"
        f"{' · ' + esc(response.server_form) if response.server_form else ''}</div>"
    )
    weights = getattr(response, "fusion_weights", None)
    if weights is not None:
        info += f'<div class="info weights">query weights: {esc(getattr(weights, "summary", ""))}</div>'
    hits = "".join(_hit(hit, side, page.grades, scale) for hit in response.hits)
    ids = esc(" ".join(side.ids))
    return (
        f'<section class="side" data-side="{esc(side.name)}" data-ids="{ids}">{head}{info}'
        f"{_correction(response)}{_fallbacks(response)}{_waterfall(response)}"
        f'<ol class="hits">{hits or "<li>no hits</li>"}</ol></section>'
    )


def _options(values: Sequence[str], chosen: str | None, *, blank: str) -> str:
    first = f'<option value="">{esc(blank)}</option>'
    return first + "".join(
        f'<option value="{esc(v)}"{" selected" if v == chosen else ""}>{esc(v)}</option>' for v in values
    )


def _side_form(side: SideView, presets: Sequence[str]) -> str:
    c = side.config
    n = esc(side.name)

    def field_(key: str, value: Any, label: str) -> str:
        return f'<label>{esc(label)} <input name="{n}.{key}" value="{esc("" if value is None else value)}" size="6"></label>'

    return (
        f'<fieldset class="side-form"><legend>{n.upper()}</legend>'
        f'<label>preset <select name="{n}.preset">{_options(presets, c.preset, blank="(none)")}</select></label>'
        f'<label>mode <select name="{n}.mode">{_options(SEARCH_MODES, c.mode, blank="hybrid")}</select></label>'
        f'<label>fusion <select name="{n}.fusion">{_options(FUSION_METHODS, c.method, blank="index")}</select></label>'
        f"{field_('lw', c.lexical_weight, 'lexical w')}{field_('vw', c.vector_weight, 'vector w')}"
        f"{field_('k', c.rank_constant, 'rrf k')}"
        f'<label>normalizer <select name="{n}.norm">{_options(NORMALIZERS, c.normalizer, blank="default")}</select></label>'
        f'<label>lexical form <select name="{n}.form">{_options(LEXICAL_FORMS, c.lexical_form, blank="index")}</select></label>'
        f'<label>correction <select name="{n}.correct">{_options(CORRECT_MODES, c.correct, blank="default")}</select></label>'
        f"{field_('user', c.user, 'user')}{field_('pw', c.personal_weight, 'personal w')}"
        "</fieldset>"
    )


def _disagreements(page: PageView) -> str:
    rows = "".join(
        f"<li><b>{esc(doc)}</b>: " + ", ".join(f"{esc(r)}={g}" for r, g in sorted(raters.items())) + "</li>"
        for doc, raters in sorted(page.disagreements.items())
    )
    return f'<section id="disagreements"><h3>Disagreements</h3><ul>{rows or "<li>none</li>"}</ul></section>'


def render_page(page: PageView) -> str:
    """The whole page (a complete HTML document)."""
    sides = "".join(_side(side, page, _scale(side)) for side in page.sides)
    forms = "".join(_side_form(side, page.presets) for side in page.sides)
    state = esc(urlencode({"q": page.query, **{s.name: s.spec for s in page.sides}}))
    notice = f'<div class="notice">{esc(page.notice)}</div>' if page.notice else ""
    root = esc(page.root)
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(page.query or 'workbench')} · {esc(page.index)} · eshybrid</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="stylesheet" href="{root}/ui/static/workbench.css"></head>'
        f'<body data-index="{esc(page.index)}" data-query="{esc(page.query)}" data-state="{state}" data-root="{root}">'
        f"<header><h1>eshybrid workbench <small>{esc(page.index)}</small></h1>"
        f'<form id="search" method="get" action="{root}/ui">'
        f'<input id="q" name="q" value="{esc(page.query)}" placeholder="query" autofocus size="40">'
        '<label>rater <input id="rater" size="10" placeholder="your id"></label>'
        '<button type="submit">Compare</button>'
        '<button type="button" id="export">Export BEIR</button><span id="status" role="status"></span>'
        f'<details><summary>configurations</summary><div class="forms">{forms}</div></details></form>'
        '<p class="keys">keys: j/k next/previous hit · 0-3 grade it · / query</p></header>'
        f'{notice}<main class="sides">{sides}</main>{_disagreements(page)}'
        f'<script src="{root}/ui/static/workbench.js" defer></script></body></html>'
    )
