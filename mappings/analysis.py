"""Text analysis of a new index (``eshybrid load``): which analyzer, and the settings it needs.

Only indices eshybrid *creates* get these; ``migrate``/``backfill`` never touch a shop's
analyzers (they add a vector field beside the text fields and leave them as they are).

``english`` is the built-in language analyzer (stemming, English stopwords, possessives)
wherever the server has it. Elasticsearch ships it in the ``analysis-common`` module; a
build without that module (the Maven integ-test-zip) gets ``eshybrid_english`` instead:
the standard analyzer with English stopwords (no stemming, which needs the module).
"""

from __future__ import annotations

from typing import Any, Literal

from connector.cluster.capabilities import Capabilities
from connector.errors import ConfigError

__all__ = ["ANALYZERS", "ENGLISH_FALLBACK", "ShopAnalyzer", "shop_analysis", "string_dynamic_template"]

ShopAnalyzer = Literal["standard", "english"]
ANALYZERS: tuple[str, ...] = ("standard", "english")
ENGLISH_FALLBACK = "eshybrid_english"


def shop_analysis(caps: Capabilities, analyzer: str) -> tuple[str, dict[str, Any] | None]:
    """The analyzer name for text fields and the index ``analysis`` settings it needs (or ``None``).

    Raises:
        ConfigError: an analyzer outside :data:`ANALYZERS`.
    """
    if analyzer not in ANALYZERS:
        raise ConfigError(f"analyzer must be one of {', '.join(ANALYZERS)}, got {analyzer!r}", field="analyzer")
    if analyzer == "english" and not caps.language_analyzers:
        return ENGLISH_FALLBACK, {"analyzer": {ENGLISH_FALLBACK: {"type": "standard", "stopwords": "_english_"}}}
    return analyzer, None


def string_dynamic_template(analyzer: str, *, keyword_ignore_above: int = 256) -> dict[str, Any]:
    """A dynamic template mapping every other string as text with ``analyzer`` plus a ``keyword``
    subfield, so all text fields of the index share one analyzer (``combined_fields`` needs that)."""
    return {
        "strings_as_text": {
            "match_mapping_type": "string",
            "mapping": {
                "type": "text",
                "analyzer": analyzer,
                "fields": {"keyword": {"type": "keyword", "ignore_above": keyword_ignore_above}},
            },
        }
    }
