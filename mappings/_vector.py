"""The vector field's JSON, per server dialect.

The only flavor dispatch of the mappings package: ``_DIALECTS`` is keyed by
``Capabilities.vector_field_type``; everything version-dependent is asked of
the :class:`Capabilities` object.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from connector.cluster.capabilities import Capabilities
from connector.errors import ConfigError
from mappings.fields import VectorField

JsonDict = dict[str, Any]

# ES ``index_options.type`` for each quantization.
_ES_INDEX_OPTIONS = {"none": "hnsw", "int8": "int8_hnsw", "int4": "int4_hnsw", "bbq": "bbq_hnsw"}
# Elasticsearch refuses bbq below 64 dims (too few bits to rank with).
_BBQ_MIN_DIMS = 64


def vector_field_mapping(caps: Capabilities, field: VectorField) -> JsonDict:
    """The mapping of one vector field for the server described by ``caps``.

    Raises:
        ConfigError: the field asks for something this server cannot do.
    """
    check_against_server(caps, field)
    return _DIALECTS[caps.vector_field_type](caps, field)


def check_against_server(caps: Capabilities, field: VectorField) -> None:
    """Validate a :class:`VectorField` against what the server offers."""

    def error(message: str, option: str) -> ConfigError:
        return ConfigError(f"vector field {field.name!r}: {message}", field=field.name, option=option)

    if field.dims > caps.max_vector_dims:
        raise error(f"dims {field.dims} exceeds {caps.display_name}'s maximum of {caps.max_vector_dims}", "dims")
    if field.engine is not None and field.engine not in caps.vector_engines:
        offered = ", ".join(caps.vector_engines) or "none (leave engine unset)"
        raise error(f"{caps.display_name} does not offer engine {field.engine!r}; engines: {offered}", "engine")
    offered_q = caps.quantizations(field.engine)
    if field.quantization not in offered_q:
        engine = f" with engine {field.engine or caps.default_vector_engine}" if caps.vector_engines else ""
        raise error(
            f"{caps.display_name}{engine} does not offer quantization {field.quantization!r}; "
            f"available: {', '.join(offered_q)}",
            "quantization",
        )
    if field.quantization == "bbq" and field.dims < _BBQ_MIN_DIMS:
        raise error(
            f"bbq quantization needs dims >= {_BBQ_MIN_DIMS}, got {field.dims}; use int8 or none", "quantization"
        )
    if field.quantization == "int4" and field.dims % 2:
        raise error(f"int4 quantization needs an even dims, got {field.dims}; use int8 or none", "quantization")


def _dense_vector(caps: Capabilities, field: VectorField) -> JsonDict:
    return {
        "type": "dense_vector",
        "dims": field.dims,
        # Before 8.11 ``index`` defaulted to false (no HNSW graph): always say it.
        "index": True,
        "similarity": caps.space_type(field.similarity),
        "index_options": {
            "type": _ES_INDEX_OPTIONS[field.quantization],
            "m": field.m,
            "ef_construction": field.ef_construction,
        },
    }


def _knn_vector(caps: Capabilities, field: VectorField) -> JsonDict:
    engine = field.engine or caps.default_vector_engine
    parameters: JsonDict = {"m": field.m, "ef_construction": field.ef_construction}
    if field.quantization == "int8":  # lucene scalar quantizer
        parameters["encoder"] = {"name": "sq"}
        if caps.at_least(3, 6):
            # 3.6 made ``bits`` mandatory (7: int8-like, 1: binary); earlier versions are always 7-bit.
            parameters["encoder"]["parameters"] = {"bits": 7}
    elif field.quantization == "fp16":  # faiss scalar quantizer
        parameters["encoder"] = {"name": "sq", "parameters": {"type": "fp16"}}
    body: JsonDict = {
        "type": "knn_vector",
        "dimension": field.dims,
        "method": {
            "name": "hnsw",
            "engine": engine,
            "space_type": caps.space_type(field.similarity),
            "parameters": parameters,
        },
    }
    if field.quantization == "binary":
        # On-disk mode: 1-bit vectors in memory, full precision rescoring from disk.
        body["mode"] = "on_disk"
        body["compression_level"] = "32x"
    return body


_DIALECTS: dict[str, Callable[[Capabilities, VectorField], JsonDict]] = {
    "dense_vector": _dense_vector,
    "knn_vector": _knn_vector,
}
