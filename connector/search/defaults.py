"""Which lexical form and fusion a search uses: explicit arguments, else the index's recommendation, else ours.

Pure functions over a :class:`~connector.search._profile.IndexProfile` and a
:class:`~connector.cluster.capabilities.Capabilities`. The index recommendation is
``_meta.eshybrid.search_defaults``, written by ``eshybrid tune`` (see docs/contracts.md);
a malformed one is logged and ignored, never fatal to a search.

The library defaults were chosen on the dev data only (``bench/hybrid_quality.py`` prints the
comparison; README "Relevance defaults" says how):

* lexical: ``combined_fields`` (BM25F: title and text scored as one field, so a query whose
  words are spread over both is not under-scored) where the engine has it and the fields share
  one search analyzer; else :data:`FALLBACK_FORM`; a title field boosted ×3
  (:data:`connector.search._profile.DEFAULT_TITLE_BOOST`).
* fusion: :data:`connector.search.models.DEFAULT_FUSION`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from connector.errors import ConfigError
from connector.search._profile import IndexProfile
from connector.search.models import DEFAULT_FUSION, FusionConfig, LexicalConfig, LexicalForm

__all__ = [
    "FALLBACK_FORM",
    "FALLBACK_TIE_BREAKER",
    "default_lexical_form",
    "fusion_from_meta",
    "lexical_from_meta",
    "resolve_fusion",
    "resolve_lexical",
]

logger = logging.getLogger(__name__)

# Where combined_fields is not available (OpenSearch < 3.2, fields with different analyzers).
# cross_fields (term-centric, blends each term's statistics over the fields) was the best
# multi_match type on the dev data on both engines, within 0.003 of combined_fields.
FALLBACK_FORM: LexicalForm = "cross_fields"
FALLBACK_TIE_BREAKER: float | None = None


def default_lexical_form(caps: Any, profile: IndexProfile) -> LexicalForm:
    """``combined_fields`` where the engine has it and the fields share an analyzer, else the fallback
    (also when the capabilities were not detected: ``caps`` is ``None``; every engine has the fallback)."""
    if caps is not None and caps.supports_combined_fields and profile.one_search_analyzer:
        return "combined_fields"
    return FALLBACK_FORM


def fusion_from_meta(search_defaults: Mapping[str, Any] | None) -> FusionConfig | None:
    """The recommended fusion of an index, or ``None`` (absent or malformed: logged)."""
    raw = (search_defaults or {}).get("fusion")
    if not raw:
        return None
    try:
        return FusionConfig.model_validate(raw)
    except ValidationError as e:
        logger.warning("ignoring the index's recommended fusion %s: %s", raw, e)
        return None


def lexical_from_meta(search_defaults: Mapping[str, Any] | None) -> LexicalConfig | None:
    """The recommended lexical settings of an index, or ``None`` (absent or malformed: logged)."""
    raw = (search_defaults or {}).get("lexical")
    if not raw:
        return None
    try:
        return LexicalConfig.model_validate(raw)
    except ValidationError as e:
        logger.warning("ignoring the index's recommended lexical settings %s: %s", raw, e)
        return None


def resolve_fusion(explicit: FusionConfig | None, profile: IndexProfile) -> FusionConfig:
    """``explicit``, else the index's recommendation, else :data:`DEFAULT_FUSION`."""
    return explicit or fusion_from_meta(profile.search_defaults) or DEFAULT_FUSION


def resolve_lexical(
    caps: Any, profile: IndexProfile, *, form: LexicalForm | None, tie_breaker: float | None
) -> tuple[LexicalForm, float | None]:
    """The lexical form and tie breaker: explicit, else the index's recommendation, else the default.

    A recommended or default ``combined_fields`` the index cannot run (the engine lacks it, or
    the fields have different search analyzers) becomes :data:`FALLBACK_FORM`. ``caps`` is
    ``None`` when the cluster's capabilities were not detected: an explicit form is then sent as
    asked, a default one is the fallback.

    Raises:
        ConfigError: an explicit ``combined_fields`` that this engine or index cannot run.
    """
    usable = caps is not None and caps.supports_combined_fields and profile.one_search_analyzer
    if form is not None:
        if form == "combined_fields" and caps is not None and not usable:
            raise ConfigError(
                f"combined_fields cannot run here ({caps.display_name}; search analyzers "
                f"{sorted(set(profile.search_analyzers.get(f, 'default') for f in profile.lexical_fields))}); "
                "use most_fields, cross_fields or best_fields with a tie_breaker",
                field="lexical_form",
            )
        return form, tie_breaker
    meta = lexical_from_meta(profile.search_defaults)
    if meta is not None and meta.form is not None and (meta.form != "combined_fields" or usable):
        return meta.form, tie_breaker if tie_breaker is not None else meta.tie_breaker
    chosen = default_lexical_form(caps, profile)
    if chosen == FALLBACK_FORM and tie_breaker is None:
        return chosen, FALLBACK_TIE_BREAKER
    return chosen, tie_breaker
