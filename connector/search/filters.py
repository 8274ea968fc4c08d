"""Search filters: validation of query-DSL filter clauses and the CLI's short syntax.

A filter is one query-DSL clause (``{"term": {...}}``, ``{"range": {...}}``,
``{"bool": {...}}``...). The same list is applied in the lexical leg's
``bool.filter`` and inside the kNN leg as a pre-filter, so a filter never
shrinks the kNN result after the fact.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from connector.errors import SearchRequestError

__all__ = ["ALLOWED_FILTER_CLAUSES", "validate_filters", "parse_filter_expression"]

# Structured clauses only: user text goes through multi_match, never a query parser,
# and filters are for structure (terms, ranges, existence, geo) rather than scoring.
ALLOWED_FILTER_CLAUSES: frozenset[str] = frozenset(
    {
        "term", "terms", "range", "bool", "exists", "ids", "prefix", "match", "match_phrase",
        "nested", "geo_distance", "geo_bounding_box", "geo_shape", "wildcard", "match_all",
    }
)  # fmt: skip
_BOOL_KEYS = frozenset({"must", "filter", "should", "must_not", "minimum_should_match", "boost", "_name"})


def validate_filters(filters: Sequence[Mapping[str, Any]] | None, *, field: str = "filters") -> list[dict[str, Any]]:
    """Check filter clauses and return them as plain dicts.

    Args:
        filters: query-DSL clauses, each a one-key mapping such as ``{"term": {"brand": "acme"}}``.
        field: the request field name used in error messages.

    Returns:
        The clauses as a new list of dicts.

    Raises:
        SearchRequestError: a clause is not a one-key mapping of an allowed kind
            (``field`` names the offending position, e.g. ``filters[1].bool.must[0]``).
    """
    if filters is None:
        return []
    if isinstance(filters, Mapping) or not isinstance(filters, Sequence) or isinstance(filters, str):
        raise SearchRequestError(f"{field} must be a list of query clauses", field=field)
    out: list[dict[str, Any]] = []
    for i, clause in enumerate(filters):
        _check_clause(clause, f"{field}[{i}]")
        out.append(json.loads(json.dumps(clause)))
    return out


def _check_clause(clause: Any, where: str) -> None:
    if not isinstance(clause, Mapping) or len(clause) != 1:
        raise SearchRequestError(f'{where} must be one query clause like {{"term": {{"brand": "acme"}}}}', field=where)
    kind, spec = next(iter(clause.items()))
    if kind not in ALLOWED_FILTER_CLAUSES:
        allowed = ", ".join(sorted(ALLOWED_FILTER_CLAUSES))
        raise SearchRequestError(
            f"{where}: clause {kind!r} is not allowed as a filter; use one of {allowed}", field=where
        )
    if not isinstance(spec, Mapping):
        raise SearchRequestError(f"{where}.{kind} must be an object", field=f"{where}.{kind}")
    try:
        json.dumps(spec)
    except (TypeError, ValueError) as e:
        raise SearchRequestError(f"{where}.{kind} is not JSON-serialisable: {e}", field=f"{where}.{kind}") from e
    if kind == "bool":
        for key, value in spec.items():
            if key not in _BOOL_KEYS:
                raise SearchRequestError(f"{where}.bool: unknown key {key!r}", field=f"{where}.bool.{key}")
            if key in ("must", "filter", "should", "must_not"):
                children = value if isinstance(value, list) else [value]
                for j, child in enumerate(children):
                    _check_clause(child, f"{where}.bool.{key}[{j}]")


_EXPR_RE = re.compile(r"^\s*(?P<field>[^\s=!<>]+)\s*(?P<op>!=|>=|<=|=|>|<)\s*(?P<value>.*?)\s*$", re.S)
_RANGE_OPS = {">=": "gte", "<=": "lte", ">": "gt", "<": "lt"}


def _coerce(raw: str) -> Any:
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    return value if isinstance(value, (int, float, bool, str)) else raw


def parse_filter_expression(expression: str) -> dict[str, Any]:
    """Turn the CLI's ``--filter`` syntax into a clause.

    ``brand.keyword=Acme`` -> term; ``color!=red`` -> bool must_not term;
    ``price>=10``, ``price<20``... -> range; a value holding a JSON object
    (``'{"bool": {...}}'``) is taken as the clause itself. Values are read as
    JSON when they parse (``10``, ``true``, ``"quoted"``), else as strings.

    Raises:
        SearchRequestError: the expression matches none of these forms.
    """
    text = expression.strip()
    if text.startswith("{"):
        try:
            clause = json.loads(text)
        except ValueError as e:
            raise SearchRequestError(f"--filter {expression!r} is not valid JSON: {e}", field="filter") from e
        return validate_filters([clause], field="filter")[0]
    match = _EXPR_RE.match(text)
    if match is None or not match.group("value"):
        raise SearchRequestError(
            f"--filter {expression!r}: use FIELD=VALUE, FIELD!=VALUE, FIELD>=N, FIELD<N... or a JSON clause",
            field="filter",
        )
    name, op, value = match.group("field"), match.group("op"), _coerce(match.group("value"))
    if op == "=":
        return {"term": {name: value}}
    if op == "!=":
        return {"bool": {"must_not": [{"term": {name: value}}]}}
    return {"range": {name: {_RANGE_OPS[op]: value}}}
