"""Render a search, or any executed requests, in Kibana / OpenSearch Dashboards Dev Tools console syntax.

``METHOD path?params`` on one line, then the body: pretty JSON for a plain
body (numeric arrays such as query vectors kept on one line), one compact JSON
object per line for ndjson bodies (``_msearch``). ``#`` lines are console comments.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from connector.search.models import ExecutedRequest, SearchResponse

__all__ = ["render_console", "render_response", "pretty_json"]


def _is_number_list(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    )


def pretty_json(value: Any, *, indent: int = 2, _level: int = 0) -> str:
    """Indented JSON where lists of numbers (vectors, weights) stay on one line."""
    pad, inner = " " * (indent * _level), " " * (indent * (_level + 1))
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [
            f"{inner}{json.dumps(str(k))}: {pretty_json(v, indent=indent, _level=_level + 1)}" for k, v in value.items()
        ]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, list):
        if not value:
            return "[]"
        if _is_number_list(value):
            return json.dumps(value, separators=(",", ":"))
        items = [inner + pretty_json(v, indent=indent, _level=_level + 1) for v in value]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return json.dumps(value, ensure_ascii=False)


def render_console(requests: Sequence[ExecutedRequest], *, header: str | None = None) -> str:
    """Console text for ``requests`` (in the order they ran), ready to paste into Dev Tools."""
    lines: list[str] = []
    if header:
        lines.extend("# " + line.lstrip("# ") for line in header.splitlines())
        lines.append("")
    for req in requests:
        if req.note:
            lines.extend("# " + line for line in req.note.splitlines())
        query = ("?" + urlencode(req.params)) if req.params else ""
        lines.append(f"{req.method} {req.path.lstrip('/')}{query}")
        if req.ndjson is not None:
            lines.extend(json.dumps(item, separators=(",", ":"), ensure_ascii=False) for item in req.ndjson)
        elif req.body is not None:
            lines.append(pretty_json(req.body))
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def render_response(response: SearchResponse) -> str:
    """What one search ran, as console text: a header comment (mode, strategy, fusion, page), then the requests."""
    header = (
        f"# eshybrid search: mode={response.mode} strategy={response.strategy}"
        + (f" form={response.server_form}" if response.server_form else "")
        + (f" fusion={response.fusion.describe()}" if response.fusion else "")
        + f" page={response.page} size={response.size} round_trips={response.round_trips}"
        + (f"\n# vector_fallback: {response.vector_fallback_reason}" if response.vector_fallback else "")
        + (f"\n# corrected: {response.query!r} -> {response.corrected_query!r}" if response.corrected_query else "")
        + (
            f"\n# did you mean: {response.did_you_mean!r}"
            if response.did_you_mean and not response.corrected_query
            else ""
        )
    )
    return render_console(response.requests, header=header)
