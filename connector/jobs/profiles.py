"""Shopper profiles: a user's (or session's) interest vector from interaction events (issue 18).

An event is one JSON object ``{"user_id", "product_id", "kind", "timestamp"}`` (``kind``:
``view`` | ``cart`` | ``purchase`` by default; ``timestamp``: ISO 8601 or epoch seconds). A
profile is the kind-weighted, time-decayed mean of the vectors of the products the user touched,
read from the product index (the same model as the index: its ``_meta`` model id is recorded
in the profile and checked by the search):

    weight_i = kind_weight(kind_i) * 0.5 ** ((as_of - t_i) / half_life)
    vector   = sum_i weight_i * v_i / sum_i weight_i            (as_of = the newest event)

Product vectors are unit length, so ``|vector|`` (the *concentration*, 0..1) says how much the
history agrees: 1 when every product points the same way, near 0 for a scattered history (kept in the
profile; the search scores the affinities below, issue 26).

Incremental: a stored profile keeps ``vector``, ``weight_sum`` and ``as_of``; new events fold
in as ``S = vector * weight_sum * 0.5 ** ((as_of' - as_of) / half_life) + sum(new)``, which is
what building from all events at once gives. Bad events (bad JSON, missing or mistyped fields,
unknown kind, bad timestamp, unknown product or a product without a vector) are counted by reason
with a few samples, never fatal. The raw history is stored only with ``keep_history``.

Beside the vector, a profile keeps the shopper's affinities for the values of chosen keyword fields
(brand, category, price band...): the same weights summed per value (:mod:`connector.jobs.affinities`),
which the personal signal scores the candidates by (issue 26).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from connector.cluster.client import Cluster
from connector.errors import ConfigError
from connector.jobs import affinities
from connector.jobs.bulk import BulkAction, streaming_bulk
from mappings.builders import BOOKKEEPING_FIELD
from mappings.system import profiles_index_body, profiles_index_name

__all__ = [
    "DEFAULT_HALF_LIFE_DAYS",
    "DEFAULT_KIND_WEIGHTS",
    "BadEvent",
    "Event",
    "ProfileBuildReport",
    "ProfileState",
    "build_profiles",
    "fold_events",
    "parse_event",
    "parse_timestamp",
    "profile_doc",
    "profiles_index_name",
    "read_events",
    "state_from_doc",
]

logger = logging.getLogger(__name__)

JsonDict = dict[str, Any]

# A purchase says more than a cart, a cart more than a view (the usual implicit-feedback ladder).
DEFAULT_KIND_WEIGHTS: Mapping[str, float] = {"view": 1.0, "cart": 3.0, "purchase": 5.0}
# Interest fades: an event a month old counts half as much as one from the newest day.
DEFAULT_HALF_LIFE_DAYS = 30.0
_MAX_SAMPLES = 20
_MGET_CHUNK = 500


@dataclass(frozen=True)
class Event:
    """One valid interaction event."""

    user_id: str
    product_id: str
    kind: str
    at: float  # epoch seconds (UTC)


@dataclass(frozen=True)
class BadEvent:
    """One event that was not used, and why (``reason_code``: bad_json, missing_field, bad_type,
    unknown_kind, bad_timestamp, unknown_product, no_vector, stale_vector)."""

    line: int
    reason_code: str
    reason: str


def parse_timestamp(value: Any) -> float:
    """Epoch seconds from ISO 8601 (``2026-01-31T12:00:00Z``; no zone: UTC) or epoch seconds/milliseconds.

    Raises:
        ValueError: anything else.
    """
    if isinstance(value, bool):
        raise ValueError(f"timestamp must be ISO 8601 or epoch seconds, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value) / 1000.0 if abs(value) >= 1e11 else float(value)  # > year 5138 in s: ms
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"timestamp {value!r} is not a time")
        return seconds
    if isinstance(value, str) and value.strip():
        parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        return parsed.timestamp()
    raise ValueError(f"timestamp must be ISO 8601 or epoch seconds, got {value!r}")


def parse_event(raw: Any, *, line: int, kinds: Mapping[str, float] = DEFAULT_KIND_WEIGHTS) -> Event | BadEvent:
    """Validate one event object (pure)."""
    if not isinstance(raw, Mapping):
        return BadEvent(line, "bad_type", f"an event is a JSON object, got {type(raw).__name__}")
    for name in ("user_id", "product_id", "kind", "timestamp"):
        if raw.get(name) in (None, ""):
            return BadEvent(line, "missing_field", f"{name} is missing")
    for name in ("user_id", "product_id", "kind"):
        if not isinstance(raw[name], str | int) or isinstance(raw[name], bool):
            return BadEvent(line, "bad_type", f"{name} must be a string, got {type(raw[name]).__name__}")
    kind = str(raw["kind"])
    if kind not in kinds:
        return BadEvent(line, "unknown_kind", f"kind {kind!r} is not one of {', '.join(sorted(kinds))}")
    try:
        at = parse_timestamp(raw["timestamp"])
    except (ValueError, OverflowError) as e:
        return BadEvent(line, "bad_timestamp", str(e))
    return Event(str(raw["user_id"]), str(raw["product_id"]), kind, at)


def read_events(path: str | Path) -> Iterator[tuple[int, Any]]:
    """``(line number, decoded object)`` per non-empty line of a JSON-lines file; a line that is
    not JSON comes back as a :class:`BadEvent`."""
    with Path(path).open(encoding="utf-8") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                yield number, json.loads(text)
            except json.JSONDecodeError as e:
                yield number, BadEvent(number, "bad_json", f"not JSON: {e.msg}")


@dataclass(frozen=True)
class ProfileState:
    """What a stored profile keeps to be updated later."""

    vector: list[float]
    weight_sum: float
    as_of: float
    event_count: int
    history: tuple[JsonDict, ...] = ()
    # affinity field -> value -> decayed weight of the events on products with that value (same scale as weight_sum)
    affinities: dict[str, dict[str, float]] = field(default_factory=dict)
    affinity_fields: tuple[str, ...] = ()

    @property
    def concentration(self) -> float:
        """``|vector|``: 1 when the history agrees, near 0 when it is scattered."""
        return float(np.linalg.norm(np.asarray(self.vector, dtype=np.float64)))


def fold_events(
    state: ProfileState | None,
    events: Sequence[tuple[Event, Sequence[float]]],
    *,
    kind_weights: Mapping[str, float] = DEFAULT_KIND_WEIGHTS,
    half_life_days: float = DEFAULT_HALF_LIFE_DAYS,
    keep_history: bool = False,
    values: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
    affinity_fields: Sequence[str] = (),
) -> ProfileState:
    """Fold new events (each with its product vector) into a profile (pure).

    ``values``: the affinity fields' values of the products (``{product id: {field: [values]}}``); the
    stored sums of fields no longer in ``affinity_fields`` are dropped.

    Raises:
        ValueError: no state and no events, or vectors of different lengths.
    """
    if state is None and not events:
        raise ValueError("a profile needs at least one event")
    half_life_s = half_life_days * 86_400.0
    as_of = max([e.at for e, _ in events] + ([state.as_of] if state else []))

    def decay(age_s: float) -> float:
        return 0.5 ** (max(age_s, 0.0) / half_life_s) if half_life_s > 0 else 1.0

    total: np.ndarray | None = None
    weight_sum = 0.0
    if state is not None and state.weight_sum > 0:
        carried = state.weight_sum * decay(as_of - state.as_of)
        total = np.asarray(state.vector, dtype=np.float64) * carried
        weight_sum = carried
    weighted: list[tuple[float, Mapping[str, Sequence[str]]]] = []
    for event, vector in events:
        weight = kind_weights[event.kind] * decay(as_of - event.at)
        weighted.append(
            (weight, {f: v for f, v in (values or {}).get(event.product_id, {}).items() if f in affinity_fields})
        )
        contribution = np.asarray(vector, dtype=np.float64) * weight
        if total is not None and contribution.shape != total.shape:
            raise ValueError(f"vector of {event.product_id!r} has {contribution.shape[0]} dims, not {total.shape[0]}")
        total = contribution if total is None else total + contribution
        weight_sum += weight
    assert total is not None
    mean = total / weight_sum if weight_sum > 0 else total * 0.0
    history = state.history if state else ()
    if keep_history:
        history = history + tuple(
            {"product_id": e.product_id, "kind": e.kind, "timestamp": _iso(e.at)} for e, _ in events
        )
    kept = {f: v for f, v in (state.affinities if state else {}).items() if f in affinity_fields}
    return ProfileState(
        vector=[float(x) for x in mean],
        weight_sum=weight_sum,
        as_of=as_of,
        event_count=(state.event_count if state else 0) + len(events),
        history=history,
        affinities=affinities.fold_affinity_sums(kept, decay(as_of - state.as_of) if state else 1.0, weighted),
        affinity_fields=tuple(affinity_fields),
    )


def _iso(epoch_s: float) -> str:
    return dt.datetime.fromtimestamp(epoch_s, tz=dt.UTC).isoformat().replace("+00:00", "Z")


def profile_doc(
    user_id: str,
    state: ProfileState,
    *,
    model_id: str,
    index: str,
    vector_field: str,
    updated_at: float,
) -> JsonDict:
    """The stored profile document (fields of :data:`mappings.system.PROFILE_FIELDS`)."""
    doc: JsonDict = {
        "user_id": user_id,
        "vector": [round(x, 7) for x in state.vector],
        "model_id": model_id,
        "index": index,
        "vector_field": vector_field,
        "updated_at": _iso(updated_at),
        "as_of": _iso(state.as_of),
        "event_count": state.event_count,
        "weight_sum": state.weight_sum,
        "concentration": round(state.concentration, 6),
        "affinity_fields": list(state.affinity_fields),
        "affinities": {f: {v: round(w, 6) for v, w in values.items()} for f, values in state.affinities.items()},
    }
    if state.history:
        doc["history"] = list(state.history)
    return doc


def state_from_doc(doc: Mapping[str, Any]) -> ProfileState:
    """The updatable state of a stored profile document."""
    return ProfileState(
        vector=[float(x) for x in doc.get("vector") or []],
        weight_sum=float(doc.get("weight_sum") or 0.0),
        as_of=parse_timestamp(doc["as_of"]),
        event_count=int(doc.get("event_count") or 0),
        history=tuple(doc.get("history") or ()),
        affinities={
            str(f): {str(v): float(w) for v, w in values.items()}
            for f, values in (doc.get("affinities") or {}).items()
            if isinstance(values, Mapping)
        },
        affinity_fields=tuple(str(f) for f in doc.get("affinity_fields") or ()),
    )


@dataclass
class ProfileBuildReport:
    """What one build did: events read/used, bad events by reason (with samples), profiles written."""

    index: str
    profiles_index: str
    model_id: str
    affinity_fields: list[str] = field(default_factory=list)
    events_read: int = 0
    events_used: int = 0
    bad_events: Counter[str] = field(default_factory=Counter)
    bad_samples: list[BadEvent] = field(default_factory=list)
    profiles_created: int = 0
    profiles_updated: int = 0
    profiles_reset: int = 0
    write_failures: int = 0
    took_s: float = 0.0

    def add_bad(self, bad: BadEvent) -> None:
        self.bad_events[bad.reason_code] += 1
        if len(self.bad_samples) < _MAX_SAMPLES:
            self.bad_samples.append(bad)

    def to_json(self) -> JsonDict:
        return {
            "index": self.index,
            "profiles_index": self.profiles_index,
            "model_id": self.model_id,
            "affinity_fields": self.affinity_fields,
            "events_read": self.events_read,
            "events_used": self.events_used,
            "bad_events": dict(sorted(self.bad_events.items())),
            "bad_samples": [
                {"line": b.line, "reason_code": b.reason_code, "reason": b.reason} for b in self.bad_samples
            ],
            "profiles_created": self.profiles_created,
            "profiles_updated": self.profiles_updated,
            "profiles_reset": self.profiles_reset,
            "write_failures": self.write_failures,
            "took_s": round(self.took_s, 3),
        }


def _vector_field_and_model(cluster: Cluster, index: str, vector_field: str | None) -> tuple[str, str, JsonDict]:
    mapping = cluster.get_mapping(index)
    fields = ((mapping.get("_meta") or {}).get("eshybrid") or {}).get("vector_fields") or {}
    if vector_field is None:
        if len(fields) != 1:
            raise ConfigError(
                f"index {index!r} records {len(fields)} vector fields in _meta; pass vector_field=",
                index=index,
                field="vector_field",
            )
        vector_field = next(iter(fields))
    model_id = (fields.get(vector_field) or {}).get("model_id")
    if not model_id:
        raise ConfigError(
            f"index {index!r} has no _meta model id for vector field {vector_field!r} (create it with eshybrid)",
            index=index,
            field="vector_field",
        )
    return vector_field, str(model_id), mapping


def _mget_sources(cluster: Cluster, index: str, ids: Sequence[str], includes: Sequence[str]) -> dict[str, JsonDict]:
    found: dict[str, JsonDict] = {}
    for start in range(0, len(ids), _MGET_CHUNK):
        chunk = list(ids[start : start + _MGET_CHUNK])
        params = {"_source_includes": ",".join(includes), "realtime": "false"}
        body = cluster.request("POST", f"/{index}/_mget", body={"ids": chunk}, params=params).body
        for doc in body.get("docs", []):
            if doc.get("found"):
                found[str(doc["_id"])] = doc.get("_source") or {}
    return found


def _product_vectors(
    cluster: Cluster, index: str, vector_field: str, model_id: str, ids: Sequence[str]
) -> tuple[dict[str, list[float]], dict[str, str]]:
    """Vectors of ``ids`` and, for the ones without a usable vector, the reason code."""
    sources = _mget_sources(cluster, index, ids, [vector_field, f"{BOOKKEEPING_FIELD}.{vector_field}"])
    vectors: dict[str, list[float]] = {}
    missing: dict[str, str] = {}
    for product_id in ids:
        source = sources.get(product_id)
        if source is None:
            missing[product_id] = "unknown_product"
            continue
        vector = source.get(vector_field)
        if not isinstance(vector, list) or not vector:
            missing[product_id] = "no_vector"
            continue
        recorded = ((source.get(BOOKKEEPING_FIELD) or {}).get(vector_field) or {}).get("model_id")
        if recorded and recorded != model_id:  # embedded by another model than _meta names: not comparable
            missing[product_id] = "stale_vector"
            continue
        vectors[product_id] = [float(x) for x in vector]
    return vectors, missing


def build_profiles(
    cluster: Cluster,
    events: Iterable[tuple[int, Any]],
    *,
    index: str,
    profiles_index: str | None = None,
    vector_field: str | None = None,
    kind_weights: Mapping[str, float] = DEFAULT_KIND_WEIGHTS,
    half_life_days: float = DEFAULT_HALF_LIFE_DAYS,
    keep_history: bool = False,
    refresh: bool = True,
    affinity_fields: Sequence[str] | None = None,
) -> ProfileBuildReport:
    """Build or update the profiles of the users in ``events`` (``(line, object)`` pairs, see :func:`read_events`).

    Args:
        cluster: the cluster of the product index.
        events: ``(line number, event object or BadEvent)`` pairs.
        index: the product index (or alias) whose vectors make the profiles.
        profiles_index: where profiles live (default ``eshybrid-profiles-<index>``; created when absent).
        vector_field: the product vector field (default: the one ``_meta`` records).
        kind_weights: weight per event kind (kinds not listed are bad events).
        half_life_days: decay half-life (``0``: no decay).
        keep_history: also store the raw events in each profile.
        refresh: refresh the profiles index afterwards.
        affinity_fields: keyword fields whose values make the affinities (brand, category, price band...);
            ``None``: the index's keyword fields with a moderate number of distinct values
            (:func:`connector.jobs.affinities.pick_affinity_fields`); empty: none.

    Returns:
        A :class:`ProfileBuildReport` (bad events counted, never raised).

    Raises:
        ConfigError: the index has no recorded vector field/model, an affinity field without doc values, or
            bad options.
    """
    started = time.perf_counter()
    if half_life_days < 0 or not kind_weights or any(w < 0 for w in kind_weights.values()):
        raise ConfigError("half_life_days and kind weights must be >= 0", field="kind_weights")
    vector_field, model_id, mapping = _vector_field_and_model(cluster, index, vector_field)
    target = profiles_index or profiles_index_name(index)
    if affinity_fields is None:
        affinity_fields = affinities.choose_affinity_fields(cluster, index, mapping)
    fields = list(dict.fromkeys(affinity_fields))
    affinities.check_affinity_fields(mapping.get("properties") or {}, fields)
    report = ProfileBuildReport(index=index, profiles_index=target, model_id=model_id, affinity_fields=fields)
    by_user: dict[str, list[tuple[int, Event]]] = {}
    for line, raw in events:
        report.events_read += 1
        parsed = raw if isinstance(raw, BadEvent) else parse_event(raw, line=line, kinds=kind_weights)
        if isinstance(parsed, BadEvent):
            report.add_bad(parsed)
        else:
            by_user.setdefault(parsed.user_id, []).append((line, parsed))
    products = sorted({e.product_id for items in by_user.values() for _, e in items})
    vectors, missing = _product_vectors(cluster, index, vector_field, model_id, products)
    values = affinities.read_product_values(cluster, index, [p for p in products if p in vectors], fields)
    if not cluster.index_exists(target):
        cluster.create_index(target, profiles_index_body())
    stored = _mget_sources(cluster, target, sorted(by_user), ["*"]) if by_user else {}
    actions: list[BulkAction] = []
    now = time.time()
    for user_id in sorted(by_user):
        usable: list[tuple[Event, Sequence[float]]] = []
        for line, event in by_user[user_id]:
            if event.product_id in missing:
                code = missing[event.product_id]
                report.add_bad(BadEvent(line, code, f"product {event.product_id!r}: {code.replace('_', ' ')}"))
            else:
                usable.append((event, vectors[event.product_id]))
        if not usable:
            continue
        state = _stored_state(stored.get(user_id), model_id, report)
        try:
            new_state = fold_events(
                state,
                usable,
                kind_weights=kind_weights,
                half_life_days=half_life_days,
                keep_history=keep_history,
                values=values,
                affinity_fields=fields,
            )
        except ValueError as e:  # vectors of another length than the stored profile's
            for line, _ in by_user[user_id]:
                report.add_bad(BadEvent(line, "bad_vector", str(e)))
            continue
        report.events_used += len(usable)
        doc = profile_doc(user_id, new_state, model_id=model_id, index=index, vector_field=vector_field, updated_at=now)
        actions.append(BulkAction(op="index", meta={"_index": target, "_id": user_id}, source=doc, ref=user_id))
        if state is None:
            report.profiles_created += 1
        else:
            report.profiles_updated += 1
    for result in streaming_bulk(cluster, actions, refresh=refresh or None):
        if not result.ok:
            report.write_failures += 1
            logger.warning("profile %s not written: %s %s", result.action.ref, result.error_type, result.reason)
    report.took_s = time.perf_counter() - started
    return report


def _stored_state(doc: Mapping[str, Any] | None, model_id: str, report: ProfileBuildReport) -> ProfileState | None:
    """The stored profile to update, or ``None`` (none stored, or made with another model: rebuilt)."""
    if doc is None:
        return None
    if doc.get("model_id") != model_id:
        report.profiles_reset += 1
        return None
    try:
        return state_from_doc(doc)
    except (KeyError, ValueError, TypeError):
        report.profiles_reset += 1
        return None
