"""The personal signal: the shopper's affinities scored over the query's own candidates (issues 18, 26).

A search scores a product for a shopper as ``relevance(q, p) + b * taste(u, p)``. The taste is what a shop
sees in its events: the brands, categories, price bands... the shopper bought, carted and viewed, as
*affinities* (:mod:`connector.jobs.affinities`; a profile keeps per field and value the decayed,
kind-weighted sum of its events). For a candidate ``p``:

    affinity_f(v) = (sum_f(v) + B * session_f(v)) / (W + B * W_session + shrinkage)
    taste(u, p)   = sum over the affinity fields f of max over p's values v in f of affinity_f(v)

``W`` is the profile's decayed weight sum, ``shrinkage`` pulls a short history toward zero, and the
events of the current session (same ``session_id``, the last :data:`SESSION_WINDOW_S` seconds, read from
the UBI events index beside the profile) count ``B`` = :data:`SESSION_BOOST` times an old event,
without a profile rebuild.

No extra round trip: the profile (and the session's events) ride in the first round trip; the legs'
``_msearch`` asks each leg's hits for the affinity fields' doc values (and, with a session, one more
search in the same ``_msearch`` reads the session products' values), so every candidate is scored from
what the second round trip already returns. The signal only reorders what the query found.

Fused as a signal named ``personal``: in a linear fusion its hits are all the candidates (the ones the
shopper has no taste for at 0) and its weight is ``personal_weight * max taste``, so after min-max
normalization a candidate gains exactly ``personal_weight * taste`` whenever some candidate has no taste
(nearly always; a weak taste moves little, where min-max alone would stretch it to the full weight; other
normalizers get the same weight, approximately so); in RRF its hits are the candidates with a taste, ranked.
Explain shows the affinities that moved each hit (:meth:`PersonalSignal.matches`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from connector.errors import ModelMismatchError, SearchRequestError
from connector.search.fusion import LegHit

__all__ = [
    "DEFAULT_PERSONAL_WEIGHT",
    "DEFAULT_SHRINKAGE",
    "MIN_EVENTS",
    "PERSONAL_SIGNAL",
    "SESSION_BOOST",
    "SESSION_KINDS",
    "SESSION_WINDOW_S",
    "PersonalSignal",
    "UserProfile",
    "candidate_values",
    "effective_weight",
    "profile_search_body",
    "session_events_body",
    "session_events_of",
    "user_profile_of",
]

PERSONAL_SIGNAL = "personal"
# Chosen on the dev data by bench/personalization.py, by the rule written in its docstring before the run:
# among 0.1/0.2/0.3/0.5/0.8/1.2, the weight with the best mean personal nDCG@10 gain over the two populations
# on the tune half whose human nDCG@10 loss there stays <= 0.005 was 0.1 (+0.009 mean gain, -0.004 loss;
# 0.2: +0.002, 0.3: -0.003 with 0.020 loss). The gains are small and do not hold on the check half: README
# "Personalization". The shrinkage, decay and session boost are priors the bench cannot tell apart (its
# histories all have one length and no time structure).
DEFAULT_PERSONAL_WEIGHT = 0.1
# In event weights (a purchase weighs 5, a view 1): a history of one purchase reaches at most 5/10 = 0.5.
DEFAULT_SHRINKAGE = 5.0
# Fewer events than this (profile and session together): no personal signal (cold start changes nothing).
MIN_EVENTS = 3
# The session: events of the last 30 minutes of the same session count this many times an old one.
SESSION_BOOST = 2.0
SESSION_WINDOW_S = 1800
_SESSION_MAX_EVENTS = 50
# UBI actions of a session and the profile kind weights they carry (connector.jobs.profiles' ladder).
SESSION_KINDS: Mapping[str, float] = {"click": 1.0, "add_to_cart": 3.0, "purchase": 5.0}

Sums = Mapping[str, Mapping[str, float]]


@dataclass(frozen=True)
class UserProfile:
    """A shopper's profile as the search uses it (``session``: this search's recent events, product id and weight)."""

    user_id: str
    vector: tuple[float, ...]
    event_count: int
    model_id: str | None = None
    weight_sum: float = 0.0
    affinities: Sums = field(default_factory=dict)
    affinity_fields: tuple[str, ...] = ()
    session: tuple[tuple[str, float], ...] = ()

    @property
    def concentration(self) -> float:
        """``|vector|``: 1 when the history agrees, near 0 when it is scattered."""
        return math.sqrt(math.fsum(x * x for x in self.vector))

    @classmethod
    def from_doc(cls, user_id: str, source: Mapping[str, Any]) -> UserProfile:
        """From a profile document (:func:`mappings.system.profiles_index_body`)."""
        vector = source.get("vector", [])
        if not isinstance(vector, list) or not all(isinstance(x, int | float) for x in vector):
            raise SearchRequestError(f"profile {user_id!r} has a malformed vector", field="user")
        raw = source.get("affinities") or {}
        affinities = {
            str(f): {str(v): float(w) for v, w in values.items() if isinstance(w, int | float)}
            for f, values in (raw.items() if isinstance(raw, Mapping) else ())
            if isinstance(values, Mapping)
        }
        return cls(
            user_id=user_id,
            vector=tuple(float(x) for x in vector),
            event_count=int(source.get("event_count") or 0),
            model_id=str(source["model_id"]) if source.get("model_id") else None,
            weight_sum=float(source.get("weight_sum") or 0.0),
            affinities=affinities,
            affinity_fields=tuple(str(f) for f in source.get("affinity_fields") or affinities),
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
    # the profile's vector and raw history are not read: the signal scores affinities (less JSON on the path)
    return {
        "query": {"ids": {"values": [user_id]}},
        "size": 1,
        "_source": {"excludes": ["vector", "history"]},
        "track_total_hits": False,
    }


def user_profile_of(response: Mapping[str, Any], user_id: str) -> UserProfile | None:
    """The profile in the answer to :func:`profile_search_body`, or ``None`` (unknown user: cold start)."""
    for hit in (response.get("hits") or {}).get("hits") or []:
        if str(hit.get("_id")) == user_id:
            return UserProfile.from_doc(user_id, hit.get("_source") or {})
    return None


def session_events_body(user_id: str, session_id: str, *, window_s: int = SESSION_WINDOW_S) -> dict[str, Any]:
    """The UBI events of this shopper's session in the last ``window_s`` seconds, newest first.

    Filtered by ``client_id`` too: a session id alone never reads another shopper's events.

    Raises:
        SearchRequestError: ``session_id`` is not a non-empty string of <= 100 chars.
    """
    if not isinstance(session_id, str) or not session_id.strip() or len(session_id) > 100:
        raise SearchRequestError("session_id must be a non-empty string (<= 100 chars)", field="session_id")
    filters = [
        {"term": {"client_id": user_id}},
        {"term": {"session_id": session_id}},
        {"terms": {"action_name": list(SESSION_KINDS)}},
        {"range": {"timestamp": {"gte": f"now-{int(window_s)}s"}}},
    ]
    return {
        "query": {"bool": {"filter": filters}},
        "size": _SESSION_MAX_EVENTS,
        "sort": [{"timestamp": {"order": "desc"}}],
        "_source": ["action_name", "event_attributes.object.object_id"],
        "track_total_hits": False,
    }


def session_events_of(response: Mapping[str, Any]) -> tuple[tuple[str, float], ...]:
    """``(product id, kind weight)`` of each event in the answer to :func:`session_events_body`."""
    events: list[tuple[str, float]] = []
    for hit in (response.get("hits") or {}).get("hits") or []:
        source = hit.get("_source") or {}
        weight = SESSION_KINDS.get(str(source.get("action_name")))
        product = ((source.get("event_attributes") or {}).get("object") or {}).get("object_id")
        if weight is not None and isinstance(product, str) and product:
            events.append((product, weight))
    return tuple(events)


def effective_weight(profile: UserProfile | None, personal_weight: float, *, min_events: int = MIN_EVENTS) -> float:
    """The personal signal's weight for this profile: ``personal_weight``, or 0 for a cold start (no profile,
    fewer than ``min_events`` events with the session's, or no affinity field)."""
    if not isinstance(personal_weight, int | float) or isinstance(personal_weight, bool):
        raise SearchRequestError(f"personal_weight must be a number, got {personal_weight!r}", field="personal_weight")
    if not 0.0 <= personal_weight <= 1000.0 or math.isnan(personal_weight):
        raise SearchRequestError(
            f"personal_weight must be within 0..1000, got {personal_weight!r}", field="personal_weight"
        )
    if profile is None or profile.event_count + len(profile.session) < min_events or not profile.affinity_fields:
        return 0.0
    return float(personal_weight)


@dataclass(frozen=True)
class PersonalSignal:
    """The personal signal of one search: the shopper's shrunk affinities, scored over the candidates' values."""

    affinities: Sums  # field -> value -> affinity (0..1)
    weight: float
    name: str = PERSONAL_SIGNAL

    @classmethod
    def of(
        cls,
        profile: UserProfile,
        weight: float,
        *,
        session_values: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
        shrinkage: float = DEFAULT_SHRINKAGE,
        session_boost: float = SESSION_BOOST,
    ) -> PersonalSignal:
        """The signal of ``profile`` plus its session's events (``session_values``: their products' values)."""
        sums = {f: dict(profile.affinities.get(f) or {}) for f in profile.affinity_fields}
        total = profile.weight_sum
        for product, kind_weight in profile.session:
            total += session_boost * kind_weight
            for name, values in (session_values or {}).get(product, {}).items():
                if name in sums:
                    for value in dict.fromkeys(values):
                        sums[name][value] = sums[name].get(value, 0.0) + session_boost * kind_weight
        denominator = total + shrinkage
        affinities = {
            f: {v: s / denominator for v, s in values.items() if s > 0} if denominator > 0 else {}
            for f, values in sums.items()
        }
        return cls(affinities=affinities, weight=weight)

    def matches(self, values: Mapping[str, Sequence[Any]]) -> dict[str, float]:
        """``{"field=value": affinity}`` of a candidate's best value per field (the affinities that move it)."""
        out: dict[str, float] = {}
        for name, known in self.affinities.items():
            best = max(((known.get(_key(v), 0.0), _key(v)) for v in values.get(name) or ()), default=(0.0, ""))
            if best[0] > 0:
                out[f"{name}={best[1]}"] = best[0]
        return out

    def taste(self, values: Mapping[str, Sequence[Any]]) -> float:
        """The candidate's score: the sum over fields of its best value's affinity (the search's hot loop)."""
        total = 0.0
        for name, known in self.affinities.items():
            got = values.get(name)
            if got:
                total += max(known.get(v if v.__class__ is str else _key(v), 0.0) for v in got)
        return total

    def leg(
        self, candidates: Iterable[LegHit], values: Mapping[str, Mapping[str, Sequence[Any]]], *, rrf: bool
    ) -> list[LegHit]:
        """The signal's hits over exactly ``candidates`` (first hit of each id): every one for a linear
        fusion (no taste: 0), only those with a taste for RRF (ranks of ties at 0 would be noise)."""
        hits: dict[str, LegHit] = {}
        for hit in candidates:
            if hit.id not in hits:
                hits[hit.id] = LegHit(hit.id, self.taste(values.get(hit.id) or {}), hit.index, hit.routing)
        return [h for h in hits.values() if h.score > 0 or not rrf]

    def fusion_weight(self, leg: Sequence[LegHit], *, rrf: bool) -> float:
        """The signal's fusion weight: ``weight`` for RRF, ``weight * max taste`` for a linear fusion (so a
        candidate gains ``weight * taste`` after min-max normalization; see the module docstring)."""
        if rrf:
            return self.weight
        return self.weight * max((h.score for h in leg), default=0.0)


def _key(value: Any) -> str:
    """A doc value as the profile keys it (a number's doc value is a JSON number; the build stored its text)."""
    return value if isinstance(value, str) else str(value)


def candidate_values(responses: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Sequence[Any]]]:
    """``{id: hit fields}`` of the hits of ``responses`` (the legs' answers, asked for the affinity fields'
    doc values): the first answer of an id wins; the values are used as the engine returned them."""
    out: dict[str, Mapping[str, Sequence[Any]]] = {}
    for response in responses:
        for hit in (response.get("hits") or {}).get("hits") or []:
            got = hit.get("fields")
            if got:
                out.setdefault(str(hit["_id"]), got)
    return out
