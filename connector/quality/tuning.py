"""``eshybrid tune``: choose an index's lexical form and fusion from judgments, and record the choice.

1. Lexical: every form the engine and index can run (``combined_fields`` where usable,
   ``best_fields`` with and without a tie breaker, ``most_fields``, ``cross_fields``) over the
   search's fields is scored alone (bm25 mode); the one chosen by the bootstrap rule of
   :mod:`connector.quality.selection` wins.
2. Fusion: with that lexical leg, each query's legs are fetched once and every fusion candidate
   (:func:`~connector.quality.selection.fusion_candidates`) is scored; the same rule chooses.
3. :func:`write_recommendation` stores both in ``_meta.eshybrid.search_defaults`` with the
   judgments' name and date; ``HybridSearch`` then uses them (explicit arguments still win).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connector.quality.adaptive_choice import query_evidences
from connector.quality.evaluation import Run, ranking_to_run
from connector.quality.load import BeirDataset
from connector.quality.selection import FusionComparison, compare_fusions, compare_runs
from connector.search._profile import IndexProfile
from connector.search.hybrid import HybridSearch
from connector.search.models import LexicalConfig
from mappings.search_defaults import build_search_defaults, merge_search_defaults

__all__ = ["LexicalChoice", "Recommendation", "lexical_candidates", "recommend", "write_recommendation"]


def lexical_candidates(caps: Any, profile: IndexProfile) -> list[LexicalConfig]:
    """The lexical forms worth comparing on this engine and index (over the profile's fields)."""
    fields = dict(profile.lexical_fields)
    out: list[LexicalConfig] = []
    if caps.supports_combined_fields and profile.one_search_analyzer and all(b >= 1 for b in fields.values()):
        out.append(LexicalConfig(form="combined_fields", fields=fields))
    out.append(LexicalConfig(form="cross_fields", fields=fields))
    out.append(LexicalConfig(form="most_fields", fields=fields))
    out.append(LexicalConfig(form="best_fields", fields=fields, tie_breaker=0.3))
    out.append(LexicalConfig(form="best_fields", fields=fields))
    return out


@dataclass
class LexicalChoice:
    """Each lexical candidate's figures (bm25 alone) and the chosen one."""

    candidates: list[LexicalConfig]
    ndcg10: dict[str, float]
    recall100: dict[str, float]
    hold_share: dict[str, float]
    chosen: LexicalConfig

    def to_json(self) -> dict[str, Any]:
        return {
            "chosen": self.chosen.model_dump(),
            "candidates": [
                {
                    "lexical": c.describe(),
                    "ndcg@10": round(self.ndcg10[c.describe()], 6),
                    "recall@100": round(self.recall100[c.describe()], 6),
                    "hold_share": round(self.hold_share[c.describe()], 4),
                }
                for c in self.candidates
            ],
        }

    def format_table(self) -> str:
        lines = [f"{'lexical leg (bm25 alone)':<48}{'nDCG@10':>9}{'recall@100':>12}{'holds':>8}"]
        for c in self.candidates:
            label = c.describe()
            mark = "  <- chosen" if c == self.chosen else ""
            lines.append(
                f"{label:<48}{self.ndcg10[label]:>9.4f}{self.recall100[label]:>12.4f}"
                f"{self.hold_share[label]:>8.1%}{mark}"
            )
        return "\n".join(lines)


@dataclass
class Recommendation:
    """What ``tune`` found: the lexical and fusion comparisons and the ``search_defaults`` to write."""

    lexical: LexicalChoice
    fusion: FusionComparison
    search_defaults: dict[str, Any]
    written: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "lexical": self.lexical.to_json(),
            "fusion": self.fusion.to_json(),
            "search_defaults": self.search_defaults,
            "written": self.written,
        }


def _judgments(dataset: BeirDataset, qrels_path: str | None, queries: int) -> dict[str, Any]:
    path = dataset.path / "qrels" / "test.tsv" if qrels_path is None else Path(qrels_path)
    date = dt.datetime.fromtimestamp(path.stat().st_mtime, tz=dt.UTC).date().isoformat() if path.exists() else None
    return {"name": dataset.path.name, "qrels": str(path), "date": date, "queries": queries}


def _lexical_run(search: HybridSearch, config: LexicalConfig, queries: Mapping[str, str], depth: int) -> Run:
    probe = HybridSearch(
        search.cluster,
        search.index,
        lexical_fields=config.fields,
        lexical_form=config.form,
        tie_breaker=config.tie_breaker,
        max_depth=search.max_depth,
    )
    run: Run = {}
    for qid, text in queries.items():
        hits = probe.retrieve_legs(text, mode="bm25")["lexical"]
        run[qid] = ranking_to_run([h.id for h in sorted(hits, key=lambda h: (-h.score, h.id))][:depth])
    return run


def recommend(
    search: HybridSearch,
    dataset: BeirDataset,
    *,
    qrels_path: str | None = None,
    epsilon: float = 0.01,
    bootstrap: int = 1000,
    seed: int = 13,
    depth: int = 100,
) -> Recommendation:
    """Compare the lexical forms, then the fusions on the chosen lexical leg (see the module docstring).

    Args:
        search: where the legs come from: its index, embedder and fields (its fusion is not used).
        dataset: queries and judgments.
        qrels_path: the judgments file, when not the dataset's ``qrels/test.tsv`` (recorded in ``_meta``).
        epsilon, bootstrap, seed: the selection rule's parameters.
        depth: ranking depth scored.
    """
    queries = dataset.judged_queries()
    caps = search.cluster.capabilities
    candidates = lexical_candidates(caps, search.profile)
    runs = {c.describe(): _lexical_run(search, c, queries, depth) for c in candidates}
    _, means, shares, chosen_label = compare_runs(dataset.qrels, runs, epsilon=epsilon, bootstrap=bootstrap, seed=seed)
    chosen = next(c for c in candidates if c.describe() == chosen_label)
    lexical = LexicalChoice(
        candidates=candidates,
        ndcg10={k: v["ndcg@10"] for k, v in means.items()},
        recall100={k: v["recall@100"] for k, v in means.items()},
        hold_share=shares,
        chosen=chosen,
    )
    leg_search = HybridSearch(
        search.cluster,
        search.index,
        embedder=search.embedder,
        lexical_fields=chosen.fields,
        lexical_form=chosen.form,
        tie_breaker=chosen.tie_breaker,
        max_depth=search.max_depth,
    )
    legs = {qid: leg_search.retrieve_legs(text, mode="hybrid") for qid, text in queries.items()}
    evidences = query_evidences(leg_search, queries)  # the adaptive candidates' evidence, as the search reads it
    fusion = compare_fusions(
        legs, dataset.qrels, depth=depth, epsilon=epsilon, bootstrap=bootstrap, seed=seed, evidences=evidences
    )
    best = fusion.best
    defaults = build_search_defaults(
        fusion=best.fusion.model_dump(),
        lexical=chosen.model_dump(),
        judgments=_judgments(dataset, qrels_path, fusion.queries),
        chosen_at=dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        evidence={
            "ndcg@10": round(best.ndcg10, 6),
            "recall@100": round(best.recall100, 6),
            "hold_share": round(best.hold_share, 4),
            "candidate": best.name,
            "bm25_ndcg@10": round(lexical.ndcg10[chosen_label], 6),
            "epsilon": epsilon,
            "bootstrap": bootstrap,
        },
    )
    return Recommendation(lexical=lexical, fusion=fusion, search_defaults=defaults)


def write_recommendation(cluster: Any, index: str, search_defaults: Mapping[str, Any]) -> None:
    """Store ``search_defaults`` in the index ``_meta`` (every other ``_meta`` key kept)."""
    mapping = cluster.get_mapping(index)
    cluster.put_mapping(index, {"_meta": merge_search_defaults(mapping.get("_meta"), search_defaults)})
