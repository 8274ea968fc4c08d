"""Turning a document's ``_source`` into the text that is embedded and reranked (pure functions).

The one renderer of document text: the backfill/reindex jobs embed what
:func:`build_text` renders, and the search-side reranker reads the same text
(``connector.search.rerank.document_text`` calls :func:`build_text` with
``strict=False``). The text is rendered from a list of source fields, either
joined with newlines or through a template such as ``"{title}\\n{description}"``;
a list of strings is joined with spaces. The strict rendering is what the indices
hold and what :func:`text_hash` fingerprints for incremental re-embedding: changing
it would re-embed every document, so the reranker follows it, not the other way.

Documents whose text cannot be embedded are not errors of the job: in strict mode
:func:`build_text` raises :class:`UnembeddableDocument` with a machine-readable
``reason_code`` and a sentence a person can act on, and the job sends the
document to the dead-letter index. The reranker must read something for every
hit, so its lenient mode never refuses a document.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from connector.errors import ConfigError

__all__ = [
    "ReasonCode",
    "TextPolicy",
    "UnembeddableDocument",
    "build_text",
    "default_template",
    "template_fields",
    "text_hash",
    "validate_template",
]

ReasonCode = Literal[
    "missing_text",
    "empty_text",
    "wrong_type",
    "text_too_long",
    "invalid_utf8",
    "embedding_rejected",
    "write_rejected",
    "conflict_retries_exhausted",
]

# ``{field}`` placeholders; ``{{`` and ``}}`` are literal braces.
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")


class UnembeddableDocument(Exception):
    """A document whose text cannot be embedded (goes to the dead-letter index).

    Not an :class:`~connector.errors.EshybridError`: it never leaves the job; it is
    how :func:`build_text` reports a per-document verdict.
    """

    def __init__(self, reason_code: ReasonCode, reason: str) -> None:
        super().__init__(reason)
        self.reason_code = reason_code
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.reason_code, self.reason))


@dataclass(frozen=True)
class TextPolicy:
    """How a document's text is built and which texts are refused.

    Attributes:
        fields: source fields (dotted paths allowed) the text is built from.
        template: optional ``{field}`` template; default joins non-empty fields with ``\\n``.
        max_text_chars: texts longer than this are dead-lettered instead of being
            silently truncated far beyond what the model reads (the model itself
            truncates to its ``max_length`` tokens below this limit).
    """

    fields: tuple[str, ...]
    template: str | None = None
    max_text_chars: int = 32_768

    def __post_init__(self) -> None:
        if not self.fields:
            raise ConfigError(
                "give at least one source field to embed (e.g. --fields title,description)", field="fields"
            )
        if self.max_text_chars < 1:
            raise ConfigError("max_text_chars must be >= 1", field="max_text_chars")
        if self.template is not None:
            validate_template(self.template, fields=self.fields)


def default_template(fields: Sequence[str]) -> str:
    """The template that names ``fields`` one per line: what ``_meta`` records when the user gave none."""
    return "\n".join(f"{{{name}}}" for name in fields)


def template_fields(template: str) -> list[str]:
    """The field names a template refers to, in order of appearance."""
    names: list[str] = []
    for match in _PLACEHOLDER.finditer(template):
        name = match.group(1)
        if name is None:
            continue
        name = name.strip()
        if name and name not in names:
            names.append(name)
    return names


def validate_template(template: str, *, fields: Sequence[str]) -> None:
    """Raise :class:`ConfigError` when a template is malformed or names an unknown field."""
    stripped = _PLACEHOLDER.sub("", template)
    if "{" in stripped or "}" in stripped:
        raise ConfigError(
            f"template {template!r} has an unmatched brace; write literal braces as {{{{ and }}}}",
            field="template",
        )
    for match in _PLACEHOLDER.finditer(template):
        if match.group(1) is not None and not match.group(1).strip():
            raise ConfigError(f"template {template!r} has an empty placeholder {{}}", field="template")
    unknown = [name for name in template_fields(template) if name not in fields]
    if unknown:
        raise ConfigError(
            f"template names fields {unknown} that are not in --fields {list(fields)}; add them to --fields",
            field="template",
        )
    if not template_fields(template):
        raise ConfigError(f"template {template!r} names no field", field="template")


def _lookup(source: Mapping[str, Any], path: str) -> Any:
    if path in source:
        return source[path]
    node: Any = source
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _any_text(value: Any) -> str | None:
    """Lenient text of any value: ``None``/NaN are missing, lists join their items with spaces, else ``str``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (list, tuple)):
        return " ".join(t for t in (_any_text(v) for v in value) if t is not None)
    return str(value)


def _field_text(source: Mapping[str, Any], path: str, *, strict: bool) -> str | None:
    """The text of one field: ``None`` when missing; lists of strings are joined with spaces.

    A value that is not text (a number, an object, a list holding non-strings) is
    refused in strict mode and rendered by :func:`_any_text` otherwise.
    """
    value = _lookup(source, path)
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return " ".join(value)
    if not strict:
        return _any_text(value)
    kind = type(value).__name__
    if isinstance(value, list):
        kind = "list of " + ", ".join(sorted({type(v).__name__ for v in value}))
    raise UnembeddableDocument(
        "wrong_type",
        f"field {path!r} holds a {kind}, not text (a string or a list of strings); "
        "fix the document or drop the field from --fields",
    )


def _render(template: str, values: Mapping[str, str]) -> str:
    def substitute(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        return values.get(match.group(1).strip(), "")

    return _PLACEHOLDER.sub(substitute, template)


def build_text(source: Mapping[str, Any], policy: TextPolicy, *, strict: bool = True) -> str:
    """Render the text of one document: what is embedded, and what the reranker reads.

    Args:
        source: the document's ``_source``.
        policy: fields, template and limits.
        strict: ``True`` (the jobs): refuse a document whose text cannot be embedded.
            ``False`` (the reranker, which must read something for every hit): never
            raise; a missing or empty text is ``""`` (a template keeps its literal
            text), a value that is not text is rendered with ``str`` (``19.99``), and
            a text over ``max_text_chars`` is cut there. For every document that
            strict mode accepts, both modes return the same text.

    Returns:
        The text (stripped of surrounding whitespace).

    Raises:
        UnembeddableDocument: (strict only) missing/empty text, a non-text field, text
            over ``max_text_chars``, or text that is not valid UTF-8 (lone surrogates).
    """
    values: dict[str, str] = {}
    for path in policy.fields:
        text = _field_text(source, path, strict=strict)
        if text is not None:
            values[path] = text
    if not values and strict:
        raise UnembeddableDocument(
            "missing_text", f"none of the fields {list(policy.fields)} is present in the document"
        )
    if policy.template is None:
        text = "\n".join(v.strip() for v in (values.get(f, "") for f in policy.fields) if v.strip())
    else:
        text = _render(policy.template, values).strip()
    if not strict:
        return text[: policy.max_text_chars]
    _check_embeddable(text, values, policy)
    return text


def _check_embeddable(text: str, values: Mapping[str, str], policy: TextPolicy) -> None:
    if not text.strip():
        raise UnembeddableDocument(
            "empty_text", f"the fields {list(values)} are present but hold only empty or blank text"
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        raise UnembeddableDocument(
            "invalid_utf8",
            f"the text is not valid UTF-8 (lone surrogate {text[e.start]!r} at character {e.start}); "
            "fix the document's encoding",
        ) from None
    if len(text) > policy.max_text_chars:
        raise UnembeddableDocument(
            "text_too_long",
            f"the text has {len(text)} characters, over the limit of {policy.max_text_chars}; "
            "shorten it or raise --max-text-chars",
        )


def text_hash(text: str) -> str:
    """sha256 hex of the embedded text (the ``eshybrid_meta.<field>.text_hash`` contract)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
