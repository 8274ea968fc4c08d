"""Field specifications: what a person asks for, validated before any JSON is built.

The specs are flavor-neutral; the builders in :mod:`mappings.builders` turn
them into Elasticsearch or OpenSearch JSON using a
:class:`connector.cluster.capabilities.Capabilities`.
"""

from __future__ import annotations

import re
from dataclasses import KW_ONLY, dataclass
from typing import get_args

from connector.cluster.capabilities import Quantization, Similarity, VectorEngine
from connector.errors import ConfigError
from connector.texts import validate_template

__all__ = [
    "BUILTIN_ANALYZERS",
    "DEFAULT_VECTOR_FIELD",
    "TextField",
    "VectorField",
]

DEFAULT_VECTOR_FIELD = "embedding"

# Analyzers both Elasticsearch and OpenSearch ship (standard, simple, language analyzers...).
BUILTIN_ANALYZERS: frozenset[str] = frozenset(
    {
        "standard", "simple", "whitespace", "stop", "keyword", "pattern", "fingerprint",
        "arabic", "armenian", "basque", "bengali", "brazilian", "bulgarian", "catalan", "cjk",
        "czech", "danish", "dutch", "english", "estonian", "finnish", "french", "galician",
        "german", "greek", "hindi", "hungarian", "indonesian", "irish", "italian", "latvian",
        "lithuanian", "norwegian", "persian", "portuguese", "romanian", "russian", "serbian",
        "sorani", "spanish", "swedish", "turkish", "thai",
    }
)  # fmt: skip

# Field names: no leading underscore (metadata fields), no empty path segments.
_FIELD_NAME_RE = re.compile(r"^[^_.\s][^\s]*$")

_SIMILARITIES: tuple[str, ...] = get_args(Similarity)
_QUANTIZATIONS: tuple[str, ...] = get_args(Quantization)
_ENGINES: tuple[str, ...] = get_args(VectorEngine)


def _check_name(name: str, kind: str) -> None:
    if not isinstance(name, str) or not _FIELD_NAME_RE.match(name) or ".." in name or name.endswith("."):
        raise ConfigError(
            f"{kind} field name {name!r} is invalid: use a non-empty name that does not start "
            "with '_' or '.' and has no spaces",
            field=str(name),
        )


@dataclass(frozen=True)
class TextField:
    """A BM25 text field.

    Attributes:
        name: field name (dotted names map into objects, as in the cluster).
        analyzer: index-time analyzer (a built-in or one defined in the index ``analysis`` settings).
        search_analyzer: query-time analyzer, when it differs.
        keyword_subfield: also map ``<name>.keyword`` (exact match, sorting, aggregations).
        keyword_ignore_above: longer values are not indexed in the ``keyword`` subfield.
    """

    name: str
    _: KW_ONLY
    analyzer: str = "standard"
    search_analyzer: str | None = None
    keyword_subfield: bool = False
    keyword_ignore_above: int = 256

    def __post_init__(self) -> None:
        _check_name(self.name, "text")
        if self.keyword_ignore_above <= 0:
            raise ConfigError(
                f"text field {self.name!r}: keyword_ignore_above must be > 0, got {self.keyword_ignore_above}",
                field=self.name,
            )


@dataclass(frozen=True)
class VectorField:
    """A dense vector field filled by the embedding service, and what ``_meta`` records about it.

    Attributes:
        name: field name (default ``embedding``).
        dims: vector dimension; must equal the model's.
        model_id: the embedding model (recorded in ``_meta`` and in per-document bookkeeping).
        similarity: ``cosine`` | ``dot_product`` (unit vectors) | ``l2_norm`` | ``max_inner_product``.
        pooling: how the model pools token vectors (recorded in ``_meta``).
        normalized: whether the service returns unit vectors.
        source_fields: the document fields the embedded text is made from.
        template: ``str.format`` template over ``source_fields`` giving the embedded text.
        m: HNSW graph degree.
        ef_construction: HNSW candidate list size while building.
        quantization: ``none``; ES ``int8`` | ``int4`` | ``bbq``; OpenSearch lucene ``int8``,
            faiss ``fp16`` | ``binary``.
        engine: OpenSearch ANN engine (``lucene`` default, ``faiss``); leave ``None`` on ES.
    """

    name: str = DEFAULT_VECTOR_FIELD
    _: KW_ONLY
    dims: int
    model_id: str
    similarity: Similarity = "cosine"
    pooling: str = "mean"
    normalized: bool = True
    source_fields: tuple[str, ...] = ("title", "text")
    template: str = "{title}\n{text}"
    m: int = 16
    ef_construction: int = 100
    quantization: Quantization = "none"
    engine: VectorEngine | None = None

    def __post_init__(self) -> None:
        _check_name(self.name, "vector")
        # Frozen: normalise a list given by the caller into a tuple.
        object.__setattr__(self, "source_fields", tuple(self.source_fields))
        self._check_numbers()
        self._check_choices()
        self._check_template()

    def _error(self, message: str, option: str) -> ConfigError:
        return ConfigError(f"vector field {self.name!r}: {message}", field=self.name, option=option)

    def _check_numbers(self) -> None:
        if isinstance(self.dims, bool) or not isinstance(self.dims, int) or self.dims <= 0:
            raise self._error(f"dims must be a positive integer, got {self.dims!r}", "dims")
        if not 2 <= self.m <= 512:
            raise self._error(f"m (HNSW graph degree) must be within 2..512, got {self.m}", "m")
        if not 2 <= self.ef_construction <= 3200:
            raise self._error(f"ef_construction must be within 2..3200, got {self.ef_construction}", "ef_construction")
        if not self.model_id or not self.model_id.strip():
            raise self._error("model_id must name the embedding model", "model_id")

    def _check_choices(self) -> None:
        if self.similarity not in _SIMILARITIES:
            raise self._error(
                f"unknown similarity {self.similarity!r}; use one of {', '.join(_SIMILARITIES)}", "similarity"
            )
        if self.similarity == "dot_product" and not self.normalized:
            raise self._error(
                "dot_product needs unit-length vectors but normalized=False; use "
                "max_inner_product or cosine, or normalize the embeddings",
                "similarity",
            )
        if self.quantization not in _QUANTIZATIONS:
            raise self._error(
                f"unknown quantization {self.quantization!r}; use one of {', '.join(_QUANTIZATIONS)}",
                "quantization",
            )
        if self.engine is not None and self.engine not in _ENGINES:
            raise self._error(f"unknown engine {self.engine!r}; use one of {', '.join(_ENGINES)}", "engine")

    def _check_template(self) -> None:
        if not self.source_fields:
            raise self._error("source_fields must name at least one document field", "source_fields")
        # The template grammar is the one renderer's (connector.texts): {field}, {{ and }} for literal braces.
        try:
            validate_template(self.template, fields=self.source_fields)
        except ConfigError as e:
            raise self._error(
                f"template {self.template!r} is not usable: {e}; name each placeholder after one of source_fields "
                f"{list(self.source_fields)}",
                "template",
            ) from e
