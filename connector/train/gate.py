"""The gated model switch: compare the old and the new model on the shop's judgments, switch only when not worse.

The command sequence (README "Models that learn the shop"), each step an existing command:

1. ``eshybrid serve embed --model NEW_DIR --port ...`` - the new model's service, beside the old one;
2. ``eshybrid migrate --index NAME --to 0003 --param new_vector_field=embedding_v2 --param new_dims=384
   --param new_model_id=...`` - a shadow vector field beside the active one (search keeps the old one);
3. ``eshybrid backfill --index NAME --vector-field embedding_v2 --embed-url NEW_URL`` - re-embed into it
   (``eshybrid reindex`` instead, for a shadow *index* behind the alias);
4. ``eshybrid train switch --index NAME --dataset JUDGMENTS --new-vector-field embedding_v2
   --new-embed-url NEW_URL [--new-model NEW_DIR] [--margin 0.01] [--force]`` - this module: scores old
   (active field, old service) and new (shadow field, new service) with ``evaluate_search`` on the judged queries
   (only the new model's held-out ones when ``--new-model`` has a training card), and applies migration 0004
   (switch the active field) only when, in every gated mode, ``new >= old - margin``; else it refuses, with the
   figures. ``--force`` switches anyway (and says that it was forced). Undo: ``eshybrid migrate --to 0003``.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connector.errors import ConfigError
from connector.quality.evaluation import evaluate_search
from connector.quality.load import BeirDataset
from connector.search import HybridSearch
from connector.train.card import read_card
from migrations import MigrationSettings, Migrator

__all__ = ["DEFAULT_MARGIN", "GateDecision", "decide", "gate_queries", "gated_switch"]

logger = logging.getLogger(__name__)

# Stated before any run: a new model may cost at most 0.01 nDCG@10 in a gated mode (about the spread of
# nDCG@10 between two seeds of the same fine-tune on ~30 held-out queries; within it "worse" is noise).
DEFAULT_MARGIN = 0.01
GATED_MODES: tuple[str, ...] = ("knn", "hybrid")


@dataclass(frozen=True)
class GateDecision:
    """Whether the new model may replace the old one, and the figures that decided it."""

    accepted: bool
    forced: bool
    switched: bool
    margin: float
    metric: str
    queries: int
    old: dict[str, float]
    new: dict[str, float]
    reason: str
    applied: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "forced": self.forced,
            "switched": self.switched,
            "margin": self.margin,
            "metric": self.metric,
            "queries": self.queries,
            "old": self.old,
            "new": self.new,
            "diff": {mode: round(self.new[mode] - self.old[mode], 6) for mode in self.old if mode in self.new},
            "reason": self.reason,
            "applied": self.applied,
        }


def decide(
    old: Mapping[str, float],
    new: Mapping[str, float],
    *,
    margin: float = DEFAULT_MARGIN,
    force: bool = False,
    metric: str = "ndcg@10",
    queries: int = 0,
) -> GateDecision:
    """Accept when, in every mode of ``old``, ``new[mode] >= old[mode] - margin`` (pure)."""
    if margin < 0:
        raise ConfigError("margin must be >= 0", field="margin")
    worse = {mode: new[mode] - value for mode, value in old.items() if new[mode] < value - margin}
    if not worse:
        reason = "the new model is not worse than the old by more than the margin in " + ", ".join(old)
    else:
        reason = "refused: the new model loses " + "; ".join(
            f"{mode} {metric} {old[mode]:.4f} -> {new[mode]:.4f} ({diff:+.4f}, margin {margin})"
            for mode, diff in worse.items()
        )
        if force:
            reason += " (switched anyway: --force)"
    return GateDecision(
        accepted=not worse,
        forced=bool(worse) and force,
        switched=False,
        margin=margin,
        metric=metric,
        queries=queries,
        old={k: round(v, 6) for k, v in old.items()},
        new={k: round(v, 6) for k, v in new.items()},
        reason=reason,
    )


def gate_queries(dataset: BeirDataset, new_model: str | Path | None) -> dict[str, str]:
    """The judged queries to compare on: the new model's held-out ones when its training card names them."""
    judged = dataset.judged_queries()
    card = read_card(new_model) if new_model is not None else None
    if card is None:
        return judged
    heldout = set(card.get("split", {}).get("heldout_queries", []))
    chosen = {q: t for q, t in judged.items() if q in heldout}
    if not chosen:
        raise ConfigError(
            f"none of the new model's held-out queries is judged in {dataset.path}; give the judgments it was "
            "trained from, or leave --new-model out to compare on every judged query",
            field="dataset",
        )
    return chosen


def _scores(
    search: HybridSearch, queries: Mapping[str, str], dataset: BeirDataset, modes: Sequence[str]
) -> dict[str, float]:
    report = evaluate_search(search, queries, dataset.qrels, modes=modes, depth=100)
    return {mode: report.metrics[mode]["ndcg@10"] for mode in modes}


def gated_switch(
    cluster: Any,
    index: str,
    dataset: BeirDataset,
    *,
    old_embedder: Any,
    new_embedder: Any,
    new_vector_field: str,
    new_model: str | Path | None = None,
    margin: float = DEFAULT_MARGIN,
    force: bool = False,
    modes: Sequence[str] = GATED_MODES,
    migration_settings: MigrationSettings | None = None,
    log: Callable[[str], None] | None = None,
) -> GateDecision:
    """Compare the active field (old model) with ``new_vector_field`` (new model); switch (0004) when it may.

    Args:
        cluster: the cluster.
        index: the shop's index or alias (0003 applied, ``new_vector_field`` backfilled).
        dataset: the shop's judgments.
        old_embedder, new_embedder: query embedders of the old and the new model.
        new_model: the new model's folder: its card's held-out queries are the ones compared.
        margin: how much worse (nDCG@10, per mode) the new model may be.
        force: switch even when refused.
        modes: the modes compared (all must pass).
        migration_settings: the migration state index etc. (default: the environment's).

    Returns:
        The decision; ``switched`` tells whether 0004 ran.

    Raises:
        MigrationError: the switch itself failed (e.g. the shadow field is not fully backfilled).
    """
    queries = gate_queries(dataset, new_model)
    meta = (cluster.get_mapping(index).get("_meta") or {}).get("eshybrid") or {}
    active = str(meta.get("active_vector_field") or "embedding")
    if active == new_vector_field:
        raise ConfigError(f"{new_vector_field} is already the active vector field of {index}", field="new_vector_field")
    old_search = HybridSearch(cluster, index, embedder=old_embedder, vector_field=active, check_model=False)
    new_search = HybridSearch(cluster, index, embedder=new_embedder, vector_field=new_vector_field, check_model=False)
    old = _scores(old_search, queries, dataset, modes)
    new = _scores(new_search, queries, dataset, modes)
    decision = decide(old, new, margin=margin, force=force, queries=len(queries))
    logger.info("gate on %s: %s", index, decision.reason)
    if not (decision.accepted or force):
        return decision
    migrator = Migrator(
        cluster,
        index,
        params={"new_vector_field": new_vector_field, "vector_field": active},
        settings=migration_settings,
        log=log,
    )
    applied = migrator.upgrade("0004")
    return dataclasses.replace(decision, switched=True, applied=applied)
