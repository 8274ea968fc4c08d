"""What a revision's ``upgrade(ctx)`` / ``downgrade(ctx)`` gets: the cluster, the target, parameters.

Parameters come from CLI flags / settings (``--dims``, ``--model-id``, ``--param key=value``);
revisions never hard-code field names, dims or models. Helpers here keep revisions short:
typed parameter access, the index's mapping and ``_meta``, clearing a field's values.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from connector.cluster.capabilities import Capabilities
from connector.cluster.client import Cluster, JsonDict
from connector.errors import ConfigError, MigrationError
from connector.jobs.bulk import BulkAction, streaming_bulk
from connector.jobs.common import concrete_index
from connector.jobs.dialect import PitDialect, dialect_for, pit_search_body
from connector.texts import default_template
from mappings import VectorField

__all__ = ["MigrationContext", "PARAM_HELP"]

logger = logging.getLogger(__name__)

_MISSING = object()

# Parameters the shipped revisions understand, with the CLI flag that sets each.
PARAM_HELP: dict[str, str] = {
    "vector_field": "--vector-field: the vector field (default embedding)",
    "dims": "--dims: vector dimension (or --embed-url to read it from the service)",
    "model_id": "--model-id: the embedding model (or --embed-url)",
    "similarity": "--similarity: cosine | dot_product | l2_norm | max_inner_product",
    "source_fields": "--source-fields: fields the embedded text is built from, e.g. title,description",
    "template": "--template: text template, e.g. {title}\\n{description}",
    "new_vector_field": "--new-vector-field: the field of the new model",
    "new_dims": "--new-dims: dimension of the new model",
    "new_model_id": "--new-model-id: the new model",
    "drop_vector_field": "--param drop_vector_field=NAME: the old field 0005 drops (named to confirm)",
    "clear_values": "--param clear_values=true|false: also remove the values of a dropped field",
    "force": "--param force=true: switch even if the new field is not fully backfilled",
}


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in ("1", "true", "yes", "on")


@dataclass
class MigrationContext:
    """The context a revision runs in.

    Attributes:
        cluster: the cluster.
        index: the target as the user named it (an index or an alias).
        params: parameters for this revision.
        revision: the revision running.
        log: where progress lines go (the CLI prints them).
    """

    cluster: Cluster
    index: str
    params: Mapping[str, Any]
    revision: str = ""
    log: Callable[[str], None] = field(default=lambda line: logger.info("%s", line))
    used: set[str] = field(default_factory=set)

    # -- parameters ---------------------------------------------------------------------
    def param(self, name: str, default: Any = _MISSING) -> Any:
        """A parameter, or ``default``; raises :class:`ConfigError` naming the flag when required."""
        self.used.add(name)
        value = self.params.get(name)
        if value is None or value == "":
            if default is _MISSING:
                hint = PARAM_HELP.get(name, f"--param {name}=VALUE")
                raise ConfigError(f"revision {self.revision} needs parameter {name!r} ({hint})", field=name)
            return default
        return value

    def int_param(self, name: str, default: Any = _MISSING) -> int:
        value = self.param(name, default)
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"parameter {name!r} must be an integer, got {value!r}", field=name) from None

    def bool_param(self, name: str, default: bool) -> bool:
        return _as_bool(self.param(name, default))

    def list_param(self, name: str, default: Any = _MISSING) -> tuple[str, ...]:
        value = self.param(name, default)
        if isinstance(value, str):
            return tuple(v.strip() for v in value.split(",") if v.strip())
        return tuple(str(v) for v in value)

    # -- the target index ---------------------------------------------------------------
    @property
    def caps(self) -> Capabilities:
        return self.cluster.capabilities

    def concrete_index(self) -> str:
        return concrete_index(self.cluster, self.index)

    def is_alias(self) -> bool:
        found = self.cluster.request("GET", f"/_alias/{self.index}", ignore=(404,))
        return found.status == 200 and bool(found.body)

    def mapping(self) -> JsonDict:
        return self.cluster.get_mapping(self.concrete_index())

    def settings(self) -> JsonDict:
        index = self.concrete_index()
        settings: JsonDict = self.cluster.request("GET", f"/{index}/_settings").body[index]["settings"]
        return settings

    def put_mapping(self, body: Mapping[str, Any]) -> None:
        self.cluster.put_mapping(self.concrete_index(), body)

    def eshybrid_meta(self) -> JsonDict:
        """A copy of the index ``_meta.eshybrid`` block (empty when absent)."""
        meta = self.mapping().get("_meta") or {}
        return copy.deepcopy(dict(meta.get("eshybrid") or {}))

    def write_eshybrid_meta(self, ours: Mapping[str, Any]) -> None:
        """Replace ``_meta.eshybrid``, keeping every other ``_meta`` key (``PUT _mapping`` replaces ``_meta``)."""
        meta = copy.deepcopy(dict(self.mapping().get("_meta") or {}))
        meta["eshybrid"] = dict(ours)
        self.put_mapping({"_meta": meta})

    def vector_field_spec(self, *, prefix: str = "") -> VectorField:
        """A :class:`mappings.VectorField` from the parameters (``new_`` prefix for a model change)."""
        name = self.param(f"{prefix}vector_field", "embedding" if not prefix else _MISSING)
        fields = self.list_param("source_fields", ("title", "text"))
        template = self.param("template", default_template(fields))
        return VectorField(
            name,
            dims=self.int_param(f"{prefix}dims"),
            model_id=str(self.param(f"{prefix}model_id")),
            similarity=self.param(f"{prefix}similarity", self.param("similarity", "cosine")),
            source_fields=fields,
            template=template,
            quantization=self.param("quantization", "none"),
            engine=self.param("engine", None),
            pooling=self.param("pooling", "mean"),
            normalized=self.bool_param("normalized", True),
        )

    # -- data ---------------------------------------------------------------------------
    def count(self, query: Mapping[str, Any] | None = None) -> int:
        return self.cluster.count(self.index, query)

    def clear_field_values(self, vector_field: str, *, max_rounds: int = 5) -> int:
        """Remove a vector field and its bookkeeping from every document's ``_source``.

        A field cannot be removed from a mapping; clearing its values frees the space (after
        merges) and leaves the field empty. Each document holding it is rewritten without it,
        conditionally on the ``_seq_no`` read (a document the application changed meanwhile
        answers 409 and is handled in the next round). Plain bulk writes rather than
        ``_update_by_query``: no scripting or reindex module is needed on the server.

        Returns:
            Documents rewritten.
        """
        query = {
            "bool": {
                "should": [
                    {"exists": {"field": vector_field}},
                    {"exists": {"field": f"eshybrid_meta.{vector_field}.text_hash"}},
                ]
            }
        }
        index = self.concrete_index()
        dialect = dialect_for(self.cluster)
        cleared = 0
        for _ in range(max_rounds):
            self.cluster.refresh(index)
            if self.cluster.count(index, query) == 0:
                self.log(f"  cleared {vector_field} from {cleared} documents")
                return cleared
            pit_id = dialect.open_pit(self.cluster, index, keep_alive="5m")
            try:
                cleared += self._clear_round(dialect, pit_id, query, vector_field)
            finally:
                dialect.close_pit(self.cluster, pit_id)
        raise MigrationError(
            f"documents keep getting {vector_field!r} back; stop the writer and run again", field=vector_field
        )

    def _clear_round(self, dialect: PitDialect, pit_id: str, query: JsonDict, vector_field: str) -> int:
        cleared, cursor = 0, None
        while True:
            body = pit_search_body(
                pit_id=pit_id,
                keep_alive="5m",
                size=500,
                source=dialect.source_filter(None),
                search_after=cursor,
                sort=dialect.pit_sort,
                query=query,
            )
            hits = dialect.search(self.cluster, body)["hits"]["hits"]
            if not hits:
                return cleared
            cursor = hits[-1]["sort"]
            actions = [
                BulkAction("index", _conditional_meta(hit), _without_field(hit["_source"], vector_field))
                for hit in hits
            ]
            for result in streaming_bulk(self.cluster, actions):
                if result.ok:
                    cleared += 1
                elif result.status not in (404, 409):
                    raise MigrationError(
                        f"could not clear {vector_field!r} from document "
                        f"{result.action.meta['_id']}: {result.error_type}: {result.reason}"
                    )


def _conditional_meta(hit: Mapping[str, Any]) -> JsonDict:
    meta: JsonDict = {
        "_index": hit["_index"],
        "_id": hit["_id"],
        "if_seq_no": hit["_seq_no"],
        "if_primary_term": hit["_primary_term"],
    }
    if hit.get("_routing") is not None:
        meta["routing"] = hit["_routing"]
    return meta


def _without_field(source: Mapping[str, Any], vector_field: str) -> JsonDict:
    copy_ = {k: v for k, v in source.items() if k != vector_field}
    book = copy_.get("eshybrid_meta")
    if isinstance(book, Mapping):
        copy_["eshybrid_meta"] = {k: v for k, v in book.items() if k != vector_field}
    return copy_
