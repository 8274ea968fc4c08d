"""The one argument list of a search: what ``HybridSearch.search`` and ``AsyncHybridSearch.search`` take.

Both facades build a :class:`SearchRequest` from their keyword arguments and hand it to the one search flow;
the ``/search`` body (:class:`~connector.search.settings.SearchRequestBody`) turns into one through
:meth:`SearchRequest.options`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from connector.search.models import CorrectMode, FusionConfig, SearchMode, Strategy
from connector.search.personal import UserProfile

__all__ = ["SearchRequest"]


@dataclass(frozen=True, kw_only=True)
class SearchRequest:
    """One search call, as its caller asked for it (validated by the core; see ``HybridSearch.search``)."""

    text: str
    mode: SearchMode = "hybrid"
    filters: Sequence[Mapping[str, Any]] | None = None
    size: int = 10
    page: int = 1
    explain: bool = False
    fusion: FusionConfig | None = None
    strategy: Strategy | None = None
    source: bool | Sequence[str] = True
    user: UserProfile | str | None = None
    personal_weight: float | None = None
    correct: CorrectMode | None = None
    image: bytes | None = None
    client_id: str | None = None
    session_id: str | None = None

    def options(self) -> dict[str, Any]:
        """The keyword arguments of ``search(text, **options)`` (shallow: values are not copied)."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__ if name != "text"}
