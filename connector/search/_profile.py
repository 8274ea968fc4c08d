"""What a search needs to know about an index: its vector field, text fields and ``_meta``.

Read once from the mapping (``GET index/_mapping``) and cached by
:class:`~connector.search.hybrid.HybridSearch`; the parsing is pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from connector.errors import ConfigError
from mappings.images import image_vector_fields
from mappings.search_defaults import search_defaults_of

__all__ = [
    "DEFAULT_TITLE_BOOST",
    "IndexProfile",
    "default_boost",
    "profile_from_mapping",
    "search_analyzers_of",
    "shingle_fields_of",
    "text_fields_of",
]

DEFAULT_VECTOR_FIELD = "embedding"
# Default boost of a title field (last name segment ``title`` or ``name``) in the lexical leg when
# nobody chose the boosts: title^3 over the rest was the steadiest of 1/2/3 for every lexical form
# on the dev data (bench/hybrid_quality.py; README "Relevance defaults"). Other fields get 1.
DEFAULT_TITLE_BOOST = 3.0
_TITLE_NAMES = frozenset({"title", "name"})


def default_boost(field_name: str) -> float:
    """The default lexical boost of a field: :data:`DEFAULT_TITLE_BOOST` for a title, else 1."""
    return DEFAULT_TITLE_BOOST if field_name.rsplit(".", 1)[-1].lower() in _TITLE_NAMES else 1.0


@dataclass(frozen=True)
class IndexProfile:
    """The resolved search settings of one index."""

    vector_field: str
    lexical_fields: dict[str, float]
    has_vector_field: bool
    vector_meta: dict[str, Any] | None = None
    text_fields: tuple[str, ...] = field(default_factory=tuple)
    # ``_meta.eshybrid.search_defaults``: what ``eshybrid tune`` recommended for this index.
    search_defaults: dict[str, Any] | None = None
    # text field -> its search analyzer (``combined_fields`` needs one analyzer over all its fields).
    search_analyzers: dict[str, str] = field(default_factory=dict)
    # text field -> its shingle subfield (the phrase suggester's field), see shingle_fields_of.
    shingle_fields: dict[str, str] = field(default_factory=dict)
    # The vector field is a nested passages field (``mappings.passages``): the kNN leg is nested kNN.
    passages: bool = False

    @property
    def one_search_analyzer(self) -> bool:
        """Whether every lexical field is searched with the same analyzer."""
        return len({self.search_analyzers.get(f, "default") for f in self.lexical_fields}) <= 1

    @property
    def template(self) -> str | None:
        """The embedding text template recorded in ``_meta`` (the reranker reads documents through it)."""
        value = (self.vector_meta or {}).get("template")
        return str(value) if value else None


def text_fields_of(properties: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Dotted names of the ``text`` fields of a mapping (objects walked, ``nested`` skipped)."""
    names: list[str] = []
    for name, spec in properties.items():
        if not isinstance(spec, Mapping):
            continue
        full = f"{prefix}{name}"
        kind = spec.get("type")
        if kind == "text":
            names.append(full)
        elif kind in (None, "object") and isinstance(spec.get("properties"), Mapping):
            names.extend(text_fields_of(spec["properties"], prefix=f"{full}."))
    return names


def search_analyzers_of(properties: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Dotted text field name -> its search analyzer (``search_analyzer``, else ``analyzer``, else
    ``default``: the index default)."""
    out: dict[str, str] = {}
    for name, spec in properties.items():
        if not isinstance(spec, Mapping):
            continue
        full = f"{prefix}{name}"
        if spec.get("type") == "text":
            out[full] = str(spec.get("search_analyzer") or spec.get("analyzer") or "default")
        elif spec.get("type") in (None, "object") and isinstance(spec.get("properties"), Mapping):
            out.update(search_analyzers_of(spec["properties"], prefix=f"{full}."))
    return out


_SHINGLE_MARKS = ("shingle", "trigram", "bigram")


def shingle_fields_of(properties: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Dotted text field -> its shingle subfield: a ``text`` subfield whose name or analyzer
    says ``shingle``, ``trigram`` or ``bigram`` (the mapping names the analyzer, not its filters,
    so the name is what tells; the phrase suggester's documented setup is ``title.trigram``)."""
    out: dict[str, str] = {}
    for name, spec in properties.items():
        if not isinstance(spec, Mapping):
            continue
        full = f"{prefix}{name}"
        if spec.get("type") == "text":
            for sub, sub_spec in (spec.get("fields") or {}).items():
                if not isinstance(sub_spec, Mapping) or sub_spec.get("type") != "text":
                    continue
                label = f"{sub} {sub_spec.get('analyzer') or ''}".lower()
                if any(mark in label for mark in _SHINGLE_MARKS):
                    out[full] = f"{full}.{sub}"
                    break
        elif spec.get("type") in (None, "object") and isinstance(spec.get("properties"), Mapping):
            out.update(shingle_fields_of(spec["properties"], prefix=f"{full}."))
    return out


def _field_exists(properties: Mapping[str, Any], dotted: str) -> bool:
    node: Any = {"properties": properties}
    for part in dotted.split("."):
        props = node.get("properties") if isinstance(node, Mapping) else None
        if not isinstance(props, Mapping) or part not in props:
            return False
        node = props[part]
    return True


def profile_from_mapping(
    mapping: Mapping[str, Any],
    *,
    index: str,
    vector_field: str | None = None,
    lexical_fields: Mapping[str, float] | None = None,
) -> IndexProfile:
    """Resolve the vector field and lexical fields of an index from its mapping.

    Vector field: the one given, else the only one ``_meta.eshybrid.vector_fields``
    names, else ``embedding``. Lexical fields: the ones given, else the ones
    ``_meta.eshybrid.search_defaults.lexical.fields`` recommends (``eshybrid tune``) that are
    text fields, else the vector field's ``source_fields`` from ``_meta`` that are text
    fields (boost 1), else every text field of the mapping (boost 1).

    Raises:
        ConfigError: ``_meta`` names several vector fields and none was chosen, or the
            index has no text field to search.
    """
    properties = mapping.get("properties") or {}
    ours = (mapping.get("_meta") or {}).get("eshybrid") or {}
    # An image vector (``modality: image``) is searched by the image signal, never as the text vector.
    images = image_vector_fields(mapping.get("_meta"))
    meta_fields = {k: v for k, v in (ours.get("vector_fields") or {}).items() if k not in images}
    defaults = search_defaults_of(mapping.get("_meta"))
    if vector_field is None:
        if len(meta_fields) > 1:
            raise ConfigError(
                f"index {index!r} has several vector fields ({', '.join(sorted(meta_fields))}); pass vector_field=",
                index=index,
                field="vector_field",
            )
        vector_field = next(iter(meta_fields), DEFAULT_VECTOR_FIELD)
    vector_meta = meta_fields.get(vector_field)
    passages = (properties.get(vector_field) or {}).get("type") == "nested"
    if passages:
        vector_meta = (ours.get("passage_fields") or {}).get(vector_field)
    text_fields = tuple(text_fields_of(properties))
    recommended = ((defaults or {}).get("lexical") or {}).get("fields") or {}
    recommended = {str(k): float(v) for k, v in recommended.items() if k in text_fields}
    if lexical_fields:
        lexical = {str(k): float(v) for k, v in lexical_fields.items()}
    elif recommended:
        lexical = recommended
    else:
        declared = [f for f in (vector_meta or {}).get("source_fields") or [] if f in text_fields]
        lexical = {name: default_boost(name) for name in (declared or text_fields)}
    if not lexical:
        raise ConfigError(
            f"index {index!r} has no text field for the lexical leg; pass lexical_fields=",
            index=index,
            field="lexical_fields",
        )
    return IndexProfile(
        vector_field=vector_field,
        lexical_fields=lexical,
        has_vector_field=_field_exists(properties, vector_field),
        vector_meta=dict(vector_meta) if isinstance(vector_meta, Mapping) else None,
        text_fields=text_fields,
        search_defaults=defaults,
        search_analyzers=search_analyzers_of(properties),
        shingle_fields=shingle_fields_of(properties),
        passages=passages,
    )
