"""Affinity profiles: a shopper's taste for the values of chosen keyword fields (issue 26).

Beside the vector profile (:mod:`connector.jobs.profiles`), a profile keeps, for each *affinity field*
(brand, category, price band, colour, ... keyword fields of the product index) and each value ``v``
of it, the decayed, kind-weighted sum of the shopper's events on products carrying ``v``:

    sum_f(v) = sum over events i whose product has v in field f of weight_i
    weight_i = kind_weight(kind_i) * 0.5 ** ((as_of - t_i) / half_life)      (the vector profile's weights)

next to ``weight_sum`` (the same weights over all events). The search turns them into affinities,
shrunk toward zero for a short history (:func:`connector.search.personal.affinity_of`):
``sum_f(v) / (weight_sum + shrinkage)``: the share of the history with that value, so a scattered
history has low affinities by construction. Sums fold in incrementally exactly as the vector does
(the old sums decayed to the new ``as_of``, then the new events added); only the
:data:`MAX_VALUES_PER_FIELD` strongest values of a field are kept.

Which fields (when the shop names none, ``--affinity-fields``): the keyword fields (subfields
included) with a moderate number of distinct values (:func:`pick_affinity_fields`: at least 2
values, on at least :data:`MIN_FIELD_COVERAGE` of the documents, and at most
:data:`MAX_DISTINCT_SHARE` distinct values per document that has one; an id or a title is nearly
one value per document and tells nothing of a taste). Pure functions; the build sends the requests.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from connector.errors import ConfigError
from connector.ubi.records import UbiEvent
from mappings.builders import BOOKKEEPING_FIELD

__all__ = [
    "MAX_DISTINCT_SHARE",
    "MAX_VALUES_PER_FIELD",
    "MIN_FIELD_COVERAGE",
    "UBI_KINDS",
    "check_affinity_fields",
    "choose_affinity_fields",
    "field_stats_body",
    "field_type",
    "fold_affinity_sums",
    "keyword_fields_of",
    "pick_affinity_fields",
    "profile_events_from_ubi",
    "read_product_values",
    "values_body",
    "values_of_hit",
]

# A field whose values are nearly one per document (an id, a title, a long description's keyword)
# is no taste: at most this many distinct values per document that has one.
MAX_DISTINCT_SHARE = 0.6
# A field that few documents carry rarely matches a candidate: at least this share of the documents.
MIN_FIELD_COVERAGE = 0.05
# The strongest values kept per field (a profile stays a small document).
MAX_VALUES_PER_FIELD = 32
_MAX_VALUE_CHARS = 256

# UBI actions (the feedback loop's events) as profile event kinds; impressions say nothing of a taste.
UBI_KINDS: Mapping[str, str] = {"click": "view", "add_to_cart": "cart", "purchase": "purchase"}


def keyword_fields_of(properties: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of the ``keyword`` fields of a mapping, multi-field subfields included (``brand.keyword``);
    eshybrid's own bookkeeping is no taste."""
    names: list[str] = []
    for name, spec in properties.items():
        if not isinstance(spec, Mapping) or (not prefix and name == BOOKKEEPING_FIELD):
            continue
        full = f"{prefix}{name}"
        if spec.get("type") == "keyword":
            names.append(full)
        for sub, sub_spec in (spec.get("fields") or {}).items():
            if isinstance(sub_spec, Mapping) and sub_spec.get("type") == "keyword":
                names.append(f"{full}.{sub}")
        if spec.get("type") in (None, "object") and isinstance(spec.get("properties"), Mapping):
            names.extend(keyword_fields_of(spec["properties"], prefix=f"{full}."))
    return names


def field_stats_body(fields: Sequence[str]) -> dict[str, Any]:
    """One search counting, per field, its distinct values and the documents that have one (an empty string is none)."""
    aggs: dict[str, Any] = {}
    for n, name in enumerate(fields):
        aggs[f"d{n}"] = {"cardinality": {"field": name, "precision_threshold": 3000}}
        aggs[f"c{n}"] = {
            "filter": {"bool": {"filter": [{"exists": {"field": name}}], "must_not": [{"term": {name: ""}}]}}
        }
    return {"size": 0, "track_total_hits": True, "aggs": aggs}


def pick_affinity_fields(fields: Sequence[str], response: Mapping[str, Any]) -> list[str]:
    """The fields (of ``fields``, in their order) the answer to :func:`field_stats_body` shows as tastes."""
    total = int(((response.get("hits") or {}).get("total") or {}).get("value") or 0)
    aggs = response.get("aggregations") or {}
    picked: list[str] = []
    for n, name in enumerate(fields):
        distinct = int((aggs.get(f"d{n}") or {}).get("value") or 0)
        having = int((aggs.get(f"c{n}") or {}).get("doc_count") or 0)
        if total <= 0 or having < MIN_FIELD_COVERAGE * total or distinct < 2:
            continue
        if distinct <= MAX_DISTINCT_SHARE * having:
            picked.append(name)
    return picked


def values_body(ids: Sequence[str], fields: Sequence[str]) -> dict[str, Any]:
    """The search that reads the affinity fields' values of ``ids`` (doc values, as the search reads candidates)."""
    unique = list(dict.fromkeys(ids))
    return {
        "query": {"ids": {"values": unique}},
        "size": len(unique),
        "_source": False,
        "docvalue_fields": list(fields),
        "track_total_hits": False,
    }


def values_of_hit(hit: Mapping[str, Any], fields: Iterable[str]) -> dict[str, list[str]]:
    """``{field: [values]}`` of one hit's ``fields`` (empty strings and overlong values dropped)."""
    got = hit.get("fields") or {}
    out: dict[str, list[str]] = {}
    for name in fields:
        values = [str(v) for v in got.get(name) or [] if str(v).strip() and len(str(v)) <= _MAX_VALUE_CHARS]
        if values:
            out[name] = values
    return out


def fold_affinity_sums(
    previous: Mapping[str, Mapping[str, float]] | None,
    carried: float,
    weighted: Iterable[tuple[float, Mapping[str, Sequence[str]]]],
    *,
    max_values: int = MAX_VALUES_PER_FIELD,
) -> dict[str, dict[str, float]]:
    """New affinity sums: ``previous`` times ``carried`` (its decay to the new ``as_of``) plus each
    event's weight on each value of its product, the ``max_values`` strongest kept per field (pure)."""
    sums: dict[str, dict[str, float]] = {
        name: {value: float(total) * carried for value, total in values.items()}
        for name, values in (previous or {}).items()
    }
    for weight, values in weighted:
        for name, field_values in values.items():
            bucket = sums.setdefault(name, {})
            for value in dict.fromkeys(field_values):
                bucket[value] = bucket.get(value, 0.0) + weight
    return {
        name: dict(sorted(bucket.items(), key=lambda kv: (-kv[1], kv[0]))[:max_values])
        for name, bucket in sorted(sums.items())
        if bucket
    }


def profile_events_from_ubi(events: Iterable[UbiEvent]) -> Iterator[tuple[int, dict[str, Any]]]:
    """UBI event records as profile events (``client_id`` the shopper, the event's object the product):
    clicks are views, ``add_to_cart`` carts, purchases purchases; other actions are skipped."""
    for n, event in enumerate(events, start=1):
        kind = UBI_KINDS.get(event.action_name)
        if kind is None or event.object_id is None:
            continue
        yield (
            n,
            {
                "user_id": event.client_id,
                "product_id": event.object_id,
                "kind": kind,
                "timestamp": event.timestamp.isoformat(),
            },
        )


_DOC_VALUE_TYPES = frozenset(
    {"keyword", "constant_keyword", "wildcard", "long", "integer", "short", "byte", "double", "float", "half_float",
     "scaled_float", "unsigned_long", "boolean", "date", "ip"}
)  # fmt: skip


def field_type(properties: Mapping[str, Any], dotted: str) -> str | None:
    """The mapping type of a dotted field name (objects and multi-field subfields walked); ``None``: unmapped."""
    node: Any = {"properties": properties}
    parts = dotted.split(".")
    for n, part in enumerate(parts):
        props = node.get("properties") if isinstance(node, Mapping) else None
        if isinstance(props, Mapping) and part in props:
            node = props[part]
            continue
        subfields = node.get("fields") if isinstance(node, Mapping) and n == len(parts) - 1 else None
        if isinstance(subfields, Mapping) and isinstance(subfields.get(part), Mapping):
            node = subfields[part]
            continue
        return None
    kind = node.get("type") if isinstance(node, Mapping) else None
    return str(kind) if kind else None


def check_affinity_fields(properties: Mapping[str, Any], fields: Sequence[str]) -> None:
    """Raise unless every field is mapped with doc values the search can read (keyword, numeric, date...).

    Raises:
        ConfigError: a field is unmapped or a ``text`` field (names its keyword subfield when it has one).
    """
    for name in fields:
        kind = field_type(properties, name)
        if kind in _DOC_VALUE_TYPES:
            continue
        hint = f"; use {name}.keyword" if kind == "text" and field_type(properties, f"{name}.keyword") else ""
        raise ConfigError(
            f"affinity field {name!r} is {'unmapped' if kind is None else f'a {kind} field'}: affinities need a "
            f"keyword (or numeric, date, boolean) field{hint}",
            field="affinity_fields",
        )


def choose_affinity_fields(cluster: Any, index: str, mapping: Mapping[str, Any]) -> list[str]:
    """The default affinity fields of ``index``: its keyword fields that :func:`pick_affinity_fields` keeps."""
    fields = keyword_fields_of(mapping.get("properties") or {})
    if not fields:
        return []
    return pick_affinity_fields(fields, cluster.search(index, field_stats_body(fields)))


def read_product_values(
    cluster: Any, index: str, ids: Sequence[str], fields: Sequence[str], *, chunk: int = 500
) -> dict[str, dict[str, list[str]]]:
    """``{product id: {field: [values]}}`` of ``ids`` (products without any of the fields are left out)."""
    found: dict[str, dict[str, list[str]]] = {}
    if not fields:
        return found
    for start in range(0, len(ids), chunk):
        answer = cluster.search(index, values_body(ids[start : start + chunk], fields))
        for hit in (answer.get("hits") or {}).get("hits") or []:
            values = values_of_hit(hit, fields)
            if values:
                found[str(hit["_id"])] = values
    return found
