"""The per-index search recommendation in ``_meta`` (written by ``eshybrid tune``), as pure functions.

Layout (``_meta.eshybrid.search_defaults``; every key optional to readers)::

    {"fusion": {"method": "linear", "normalizer": "dbsf", "lexical_weight": 0.5, ...},
     "lexical": {"form": "combined_fields", "fields": {"title": 2.0, "text": 1.0}, "tie_breaker": null},
     "judgments": {"name": "esci-us-subset", "qrels": "qrels/test.tsv", "date": "2026-12-01", "queries": 103},
     "evidence": {"ndcg@10": 0.73, "library_default_ndcg@10": 0.72, "hold_share": 0.93, ...},
     "chosen_at": "2026-12-02T02:40:00Z", "chosen_by": "eshybrid tune"}

``HybridSearch`` uses ``fusion`` and ``lexical`` when present; explicit arguments still win.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from connector.errors import ConfigError

__all__ = ["SEARCH_DEFAULTS_KEY", "build_search_defaults", "merge_search_defaults", "search_defaults_of"]

SEARCH_DEFAULTS_KEY = "search_defaults"


def build_search_defaults(
    *,
    fusion: Mapping[str, Any],
    lexical: Mapping[str, Any],
    judgments: Mapping[str, Any],
    chosen_at: str,
    evidence: Mapping[str, Any] | None = None,
    chosen_by: str = "eshybrid tune",
) -> dict[str, Any]:
    """The ``search_defaults`` object.

    Args:
        fusion: a ``FusionConfig`` dump.
        lexical: a ``LexicalConfig`` dump (``form``, ``fields``, ``tie_breaker``).
        judgments: which judgments chose it (``name``, ``date``, ``queries``...).
        chosen_at: ISO-8601 UTC time of the choice.
        evidence: the figures behind the choice.
        chosen_by: what chose it (``eshybrid tune``, ``eshybrid experiment promote``).

    Raises:
        ConfigError: the judgments have no name.
    """
    if not judgments.get("name"):
        raise ConfigError("the recommendation must name the judgments it was chosen on", field="judgments")
    out: dict[str, Any] = {
        "fusion": copy.deepcopy(dict(fusion)),
        "lexical": copy.deepcopy(dict(lexical)),
        "judgments": copy.deepcopy(dict(judgments)),
        "chosen_at": chosen_at,
        "chosen_by": chosen_by,
    }
    if evidence:
        out["evidence"] = copy.deepcopy(dict(evidence))
    return out


def merge_search_defaults(existing: Mapping[str, Any] | None, search_defaults: Mapping[str, Any]) -> dict[str, Any]:
    """``existing`` ``_meta`` with ``eshybrid.search_defaults`` replaced; every other key kept
    (``PUT _mapping`` replaces ``_meta`` wholesale, so an update sends the merge).

    Raises:
        ConfigError: ``_meta.eshybrid`` exists and is not an object.
    """
    merged = copy.deepcopy(dict(existing or {}))
    ours = merged.get("eshybrid")
    if ours is not None and not isinstance(ours, Mapping):
        raise ConfigError(
            "the index _meta has an 'eshybrid' key that is not an object; it was not written by eshybrid",
            field="_meta.eshybrid",
        )
    ours = dict(ours or {})
    ours[SEARCH_DEFAULTS_KEY] = copy.deepcopy(dict(search_defaults))
    merged["eshybrid"] = ours
    return merged


def search_defaults_of(meta: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The ``search_defaults`` of an index ``_meta``, or ``None``."""
    ours = (meta or {}).get("eshybrid")
    value = ours.get(SEARCH_DEFAULTS_KEY) if isinstance(ours, Mapping) else None
    return copy.deepcopy(dict(value)) if isinstance(value, Mapping) else None
