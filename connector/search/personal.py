"""The personal signal: the shopper's profile vector scored against the query's own candidates (issue 18).

A search scores a product for a user as ``relevance(q, p) + b * u . p`` (u: the profile of
:mod:`connector.jobs.profiles`). Here ``u . p`` is one more named signal of the N-signal fusion,
computed exactly (a dot product in Python) over the candidates the legs already returned, with
their vectors fetched in the same ``_msearch`` (``_source`` = the vector field only). So
personalization only reorders what the query found; it never brings in a product the query did not.

The weight adapts to the profile: none below :data:`MIN_EVENTS` events (cold start changes
nothing), and it is scaled by how concentrated the history is (:func:`effective_weight`). Pure
functions; the profile is read by id in the search flow (:func:`profile_search_body`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from connector.errors import ModelMismatchError, SearchRequestError
from connector.search.fusion import LegHit

__all__ = [
    "CONCENTRATION_FLOOR",
    "DEFAULT_PERSONAL_WEIGHT",
    "MIN_EVENTS",
    "PERSONAL_SIGNAL",
    "UserProfile",
    "effective_weight",
    "personal_hits",
    "profile_search_body",
    "user_profile_of",
    "vectors_of",
    "with_vectors",
]

PERSONAL_SIGNAL = "personal"
# The personal signal's weight beside the legs' (relative, as every fusion weight); chosen on the
# dev data by bench/personalization.py (README "Personalization").
DEFAULT_PERSONAL_WEIGHT = 0.3
# Fewer events than this: no personal signal at all (cold start changes nothing).
MIN_EVENTS = 3
# A profile whose concentration (|mean of unit vectors|) is at or below this gets no weight; the
# weight ramps linearly to full at concentration 1. Unrelated products of this corpus have a mean
# pairwise cosine near 0.1-0.2, so a scattered history of many products lands near 0.3-0.4.
CONCENTRATION_FLOOR = 0.3


@dataclass(frozen=True)
class UserProfile:
    """A shopper's profile as the search uses it."""

    user_id: str
    vector: tuple[float, ...]
    event_count: int
    model_id: str | None = None

    @property
    def concentration(self) -> float:
        """``|vector|``: 1 when the history agrees, near 0 when it is scattered."""
        return math.sqrt(math.fsum(x * x for x in self.vector))

    @classmethod
    def from_doc(cls, user_id: str, source: Mapping[str, Any]) -> UserProfile:
        """From a profile document (:func:`mappings.system.profiles_index_body`)."""
        vector = source.get("vector")
        if not isinstance(vector, list) or not all(isinstance(x, int | float) for x in vector):
            raise SearchRequestError(f"profile {user_id!r} has no vector", field="user")
        return cls(
            user_id=user_id,
            vector=tuple(float(x) for x in vector),
            event_count=int(source.get("event_count") or 0),
            model_id=str(source["model_id"]) if source.get("model_id") else None,
        )

    def check_model(self, model_id: str | None) -> None:
        """Raise when the profile was built with another model than the index records."""
        if model_id and self.model_id and self.model_id != model_id:
            raise ModelMismatchError(
                f"profile {self.user_id!r} was built with {self.model_id!r}, the index records {model_id!r}; "
                "rebuild it (eshybrid profiles build)",
                expected=model_id,
                actual=self.model_id,
            )


def profile_search_body(user_id: str) -> dict[str, Any]:
    """The search that reads one profile document by id (sent with ``ignore_unavailable``: no
    profiles index yet is a cold start, not an error).

    Raises:
        SearchRequestError: ``user_id`` is not a non-empty string.
    """
    if not isinstance(user_id, str) or not user_id.strip() or len(user_id) > 512:
        raise SearchRequestError("user must be a non-empty user id (<= 512 chars) or a UserProfile", field="user")
    return {"query": {"ids": {"values": [user_id]}}, "size": 1, "track_total_hits": False}


def user_profile_of(response: Mapping[str, Any], user_id: str) -> UserProfile | None:
    """The profile in the answer to :func:`profile_search_body`, or ``None`` (unknown user: cold start)."""
    for hit in (response.get("hits") or {}).get("hits") or []:
        if str(hit.get("_id")) == user_id:
            return UserProfile.from_doc(user_id, hit.get("_source") or {})
    return None


def effective_weight(
    profile: UserProfile | None,
    personal_weight: float,
    *,
    min_events: int = MIN_EVENTS,
    concentration_floor: float = CONCENTRATION_FLOOR,
) -> float:
    """The personal signal's weight for this profile: 0 for cold start, else ``personal_weight``
    scaled by ``clamp((concentration - floor) / (1 - floor), 0, 1)``."""
    if not isinstance(personal_weight, int | float) or isinstance(personal_weight, bool):
        raise SearchRequestError(f"personal_weight must be a number, got {personal_weight!r}", field="personal_weight")
    if not 0.0 <= personal_weight <= 1000.0 or math.isnan(personal_weight):
        raise SearchRequestError(
            f"personal_weight must be within 0..1000, got {personal_weight!r}", field="personal_weight"
        )
    if profile is None or profile.event_count < min_events or not profile.vector:
        return 0.0
    ramp = (profile.concentration - concentration_floor) / (1.0 - concentration_floor)
    return float(personal_weight) * min(1.0, max(0.0, ramp))


def with_vectors(body: Mapping[str, Any], vector_field: str) -> dict[str, Any]:
    """A leg body that also returns each hit's vector (``_source`` = the vector field only)."""
    return {**body, "_source": {"includes": [vector_field]}}


def vectors_of(response: Mapping[str, Any], vector_field: str) -> dict[str, list[float]]:
    """``id -> vector`` of the hits of one leg response made with :func:`with_vectors`."""
    out: dict[str, list[float]] = {}
    for hit in (response.get("hits") or {}).get("hits") or []:
        node: Any = hit.get("_source") or {}
        for part in vector_field.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        if isinstance(node, list) and node:
            out[str(hit["_id"])] = node
    return out


def personal_hits(
    candidates: Sequence[LegHit], vectors: Mapping[str, Sequence[float]], profile: UserProfile
) -> list[LegHit]:
    """The personal signal over ``candidates``: cosine of the profile's direction with each candidate's
    vector (its dot product for unit product vectors). Candidates without a vector are left out (the
    signal then misses them, as a leg misses a document); no other document is ever added.

    Raises:
        SearchRequestError: the profile and the vectors differ in length.
    """
    norm = profile.concentration
    if norm == 0:
        return []
    direction = [x / norm for x in profile.vector]
    out: list[LegHit] = []
    seen: set[str] = set()
    for hit in candidates:
        vector = vectors.get(hit.id)
        if vector is None or hit.id in seen:
            continue
        if len(vector) != len(direction):
            raise SearchRequestError(
                f"profile {profile.user_id!r} has {len(direction)} dims, the index vectors {len(vector)}",
                field="user",
            )
        seen.add(hit.id)
        score = math.fsum(a * float(b) for a, b in zip(direction, vector))
        out.append(LegHit(hit.id, score, hit.index, hit.routing))
    return out
