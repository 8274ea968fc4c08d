"""The personal signal: the shopper's profile vector scored against the query's own candidates (issue 18).

A search scores a product for a user as ``relevance(q, p) + b * u . p`` (u: the profile of
:mod:`connector.jobs.profiles`). Here ``u . p`` is one more named signal of the N-signal fusion:
after the legs' ``_msearch``, one kNN search with the profile's direction, filtered to the ids of
the legs' candidates (:func:`personal_body`; a filter this small is searched exactly), scores every
candidate. So personalization only reorders what the query found; it never brings in a product the
query did not. The engines score it ``(1 + cos) / 2`` (cosine or dot_product fields): an affine map
of the cosine, so min-max, z-score and DBSF normalization and RRF ranks are those of the cosine.

Why a kNN search and not the candidates' vectors in the legs' answers: 2 x ``max_depth`` vectors
as JSON are ~1.5 MB for 384 dims (an estimate, not measured: several times the ~8 ms of a client-side
hybrid search here); the kNN answer is ids and scores. The engines' script scoring (painless) would
avoid the round trip but is absent from the integ-test servers the tests run on.

The weight adapts to the profile: none below :data:`MIN_EVENTS` events (cold start changes
nothing), and it is scaled by how concentrated the history is (:func:`effective_weight`). Pure
functions; the search flow sends the requests.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from connector.errors import ModelMismatchError, SearchRequestError
from connector.search.fusion import LegHit
from connector.search.query_builder import knn_leg_body

__all__ = [
    "CONCENTRATION_FLOOR",
    "DEFAULT_PERSONAL_WEIGHT",
    "MIN_EVENTS",
    "PERSONAL_SIGNAL",
    "UserProfile",
    "effective_weight",
    "personal_body",
    "personal_leg",
    "profile_search_body",
    "user_profile_of",
]

PERSONAL_SIGNAL = "personal"
# The personal signal's weight beside the legs' (relative, as every fusion weight; the default legs
# weigh 0.7 + 0.3 = 1). Chosen on the dev data by bench/personalization.py (95 simulated shoppers on
# esci-us-subset): the weight with the best personal nDCG@10 whose human nDCG@10 loss stays <= 0.005
# among 0.1/0.2/0.3/0.5/0.8/1.2 was 0.2 (0.3: equal within 0.0003; 0.5 and up lose 0.016+ human
# nDCG@10). The gain there is small (+0.0008): README "Personalization".
DEFAULT_PERSONAL_WEIGHT = 0.2
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


def personal_body(profile: UserProfile, candidate_ids: Sequence[str], *, knn_shape: str, field: str) -> dict[str, Any]:
    """The kNN search of the profile's direction over exactly ``candidate_ids`` (ids and scores only).

    Raises:
        SearchRequestError: the profile has no direction (an all-zero vector).
    """
    norm = profile.concentration
    if norm == 0:
        raise SearchRequestError(f"profile {profile.user_id!r} has an all-zero vector", field="user")
    ids = list(dict.fromkeys(candidate_ids))
    direction = [x / norm for x in profile.vector]
    return knn_leg_body(
        direction,
        knn_shape=knn_shape,
        field=field,
        k=max(1, len(ids)),
        num_candidates=max(1, len(ids)),
        filters=[{"ids": {"values": ids}}],
    )


def personal_leg(hits: Sequence[LegHit], candidate_ids: Iterable[str]) -> list[LegHit]:
    """The personal signal's hits, kept to the candidates (a safety net: the filter already does it)."""
    allowed = set(candidate_ids)
    return [hit for hit in hits if hit.id in allowed]
