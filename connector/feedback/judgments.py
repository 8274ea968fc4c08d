"""Judgments from clicks: UBI records -> a click log -> a click model -> graded qrels -> a BEIR folder.

The rule that turns a click model's relevance into a 0-3 grade (written before any figure was
seen, and the same for every model):

1. a search is one query record; what it showed is its ``query_response_hit_ids`` cut to
   ``depth`` (10: a page), or to the deepest ``impression`` event it has, when it has any;
   clicks, add-to-carts and purchases join by ``query_id`` and sit at the rank of their
   ``object_id`` in that list (``position.ordinal`` when the id is missing);
2. searches group by their ``user_query`` (lower-cased, spaces collapsed): one judged query each;
3. a query-document pair shown fewer than ``min_impressions`` times gets no grade (unjudged);
4. its score is the model's relevance times ``1 + cart_weight * carts/clicks + purchase_weight *
   purchases/clicks`` (rates smoothed by ``conversion_prior`` clicks): a bought product counts
   more than a clicked one;
5. the grade is the score relative to the best score of its query: >= 0.75 -> 3, >= 0.5 -> 2,
   >= 0.25 -> 1, else 0 (relative, because click-through levels differ between shops and
   queries; nDCG only compares documents within a query).

The default model (:data:`DEFAULT_CLICK_MODEL`) was chosen by ``bench/online_loop.py`` on simulated
shoppers, by the rule in that script's docstring.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np

from connector.errors import ConfigError
from connector.feedback.clickmodels import ClickLog, ClickModelFit, ClickModelName, fit_click_model
from connector.quality.load import write_beir as write_beir_folder
from connector.ubi.records import UbiEvent, UbiQuery

__all__ = [
    "DEFAULT_CLICK_MODEL",
    "GRADE_CUTS",
    "Judgments",
    "build_judgments",
    "click_log_from_records",
    "grade_fit",
    "query_key",
    "write_beir",
]

DEFAULT_CLICK_MODEL: Final[ClickModelName] = "pbm"
# Score relative to the query's best score -> grade (rule 5 of the module docstring).
GRADE_CUTS: Final = (0.25, 0.5, 0.75)
_SPACES = re.compile(r"\s+")


def query_key(text: str) -> str:
    """The form searches are grouped by: lower case, spaces collapsed."""
    return _SPACES.sub(" ", text.strip().lower())


def _query_id(key: str) -> str:
    return "q" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]


def click_log_from_records(
    queries: Iterable[UbiQuery], events: Iterable[UbiEvent], *, depth: int = 10
) -> tuple[ClickLog, dict[str, str]]:
    """Join query and event records into a :class:`ClickLog` (rule 1 and 2 of the module docstring).

    Returns:
        The click log (pairs keyed by :func:`query_key`) and ``{query key: the user_query as first seen}``.
    """
    if depth < 1:
        raise ConfigError("depth must be >= 1", field="depth")
    actions: dict[str, list[UbiEvent]] = defaultdict(list)
    for event in events:
        if event.query_id:
            actions[event.query_id].append(event)
    pair_index: dict[tuple[str, str], int] = {}
    texts: dict[str, str] = {}
    rows: list[list[int]] = []
    flags: list[tuple[set[int], set[int], set[int]]] = []
    for record in queries:
        key = query_key(record.user_query)
        if not key or not record.query_response_hit_ids:
            continue
        texts.setdefault(key, record.user_query)
        own = actions.get(record.query_id, [])
        shown = list(record.query_response_hit_ids[:depth])
        impressions = [e.ordinal for e in own if e.action_name == "impression" and e.ordinal]
        if impressions:
            shown = shown[: max(impressions)]
        rank_of = {doc: r for r, doc in reversed(list(enumerate(shown)))}
        hit: tuple[set[int], set[int], set[int]] = (set(), set(), set())
        for e in own:
            slot = {"click": 0, "add_to_cart": 1, "purchase": 2}.get(e.action_name)
            if slot is None:
                continue
            rank = rank_of.get(e.object_id or "") if e.object_id else (e.ordinal - 1 if e.ordinal else None)
            if rank is not None and 0 <= rank < len(shown):
                hit[slot].add(rank)
                if slot:  # a cart or a purchase implies the click that led to it
                    hit[0].add(rank)
        rows.append([pair_index.setdefault((key, doc), len(pair_index)) for doc in shown])
        flags.append(hit)
    width = max((len(r) for r in rows), default=0)
    shown_arr = np.full((len(rows), width), -1, dtype=np.int64)
    masks = [np.zeros((len(rows), width), dtype=np.bool_) for _ in range(3)]
    for s, (row, hit) in enumerate(zip(rows, flags)):
        shown_arr[s, : len(row)] = row
        for mask, ranks in zip(masks, hit):
            mask[s, list(ranks)] = True
    pairs = [pair for pair, _ in sorted(pair_index.items(), key=lambda item: item[1])]
    return ClickLog(pairs, shown_arr, masks[0], masks[1], masks[2]), texts


def grade_fit(
    log: ClickLog,
    fit: ClickModelFit,
    *,
    min_impressions: int = 10,
    cart_weight: float = 1.0,
    purchase_weight: float = 2.0,
    conversion_prior: float = 5.0,
) -> dict[str, dict[str, int]]:
    """``{query key: {doc id: grade}}`` from a fitted model (rules 3-5 of the module docstring)."""
    clicks = fit.clicks.astype(np.float64)
    carts = log.pair_counts(log.carts).astype(np.float64)
    purchases = log.pair_counts(log.purchases).astype(np.float64)
    base = clicks + conversion_prior
    score = fit.relevance * (1.0 + cart_weight * carts / base + purchase_weight * purchases / base)
    best: dict[str, float] = defaultdict(float)
    for i, (key, _) in enumerate(log.pairs):
        if fit.impressions[i] >= min_impressions:
            best[key] = max(best[key], float(score[i]))
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    for i, (key, doc) in enumerate(log.pairs):
        if fit.impressions[i] < min_impressions:
            continue
        relative = float(score[i]) / best[key] if best[key] > 0 else 0.0
        qrels[key][doc] = sum(relative >= cut for cut in GRADE_CUTS)
    return dict(qrels)


@dataclass
class Judgments:
    """Graded judgments from clicks, with what they were made from."""

    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    model: ClickModelName
    searches: int
    pairs: int
    judged_pairs: int
    settings: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        grades = [g for docs in self.qrels.values() for g in docs.values()]
        return {
            "model": self.model,
            "searches": self.searches,
            "queries": len(self.queries),
            "pairs": self.pairs,
            "judged_pairs": self.judged_pairs,
            "grades": {str(g): grades.count(g) for g in range(4)},
            "settings": self.settings,
        }


def build_judgments(
    queries: Iterable[UbiQuery],
    events: Iterable[UbiEvent],
    *,
    model: ClickModelName = DEFAULT_CLICK_MODEL,
    depth: int = 10,
    min_impressions: int = 10,
    cart_weight: float = 1.0,
    purchase_weight: float = 2.0,
    query_ids: Mapping[str, str] | None = None,
) -> Judgments:
    """UBI records -> graded judgments (the whole rule of the module docstring).

    Args:
        queries, events: the records (query records with what was shown; events with what was done).
        model: the click model (``coec``, ``pbm``, ``sdbn``).
        depth: hits per search the shopper could see.
        min_impressions: impressions a pair needs before it gets a grade.
        cart_weight, purchase_weight: how much more an add-to-cart / a purchase per click counts.
        query_ids: ``{query key: id}`` to reuse existing query ids (default: a hash of the text).

    Raises:
        ConfigError: no search could be read (nothing shown), or a bad setting.
    """
    if min_impressions < 1:
        raise ConfigError("min_impressions must be >= 1", field="min_impressions")
    log, texts = click_log_from_records(queries, events, depth=depth)
    fit = fit_click_model(log, model)
    graded = grade_fit(
        log, fit, min_impressions=min_impressions, cart_weight=cart_weight, purchase_weight=purchase_weight
    )
    ids = {key: (query_ids or {}).get(key) or _query_id(key) for key in graded}
    return Judgments(
        queries={ids[key]: texts[key] for key in graded},
        qrels={ids[key]: docs for key, docs in graded.items()},
        model=model,
        searches=log.searches,
        pairs=len(log.pairs),
        judged_pairs=sum(len(d) for d in graded.values()),
        settings={
            "depth": depth,
            "min_impressions": min_impressions,
            "cart_weight": cart_weight,
            "purchase_weight": purchase_weight,
            "grade_cuts": list(GRADE_CUTS),
        },
    )


def write_beir(judgments: Judgments, out: str | Path) -> Path:
    """Write ``queries.jsonl``, ``qrels/test.tsv`` and ``judgments.json`` (how they were made) under ``out``.

    ``eshybrid eval`` and ``tune`` read the folder as they read any BEIR data set (the corpus is the index).
    """
    root = write_beir_folder(out, queries=judgments.queries, qrels=judgments.qrels)
    (root / "judgments.json").write_text(json.dumps(judgments.to_json(), indent=2) + "\n", encoding="utf-8")
    return root
