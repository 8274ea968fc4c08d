"""Reindex with an alias swap: copy into ``<alias>-v<k>`` with the hybrid mapping, embed, swap.

Phases (each recorded in the job document, so ``--resume`` continues where it stopped):

1. ``main``: create ``<alias>-v<k>`` (the source's mapping and analysis + the vector
   field, bookkeeping and ``_meta``; refresh off while copying), copy every document
   through a sliced point in time, embedding its text; a vector whose text hash and
   model match is reused instead of re-embedded. Copies carry the source ``_version``
   with ``version_type=external``, so an older copy never overwrites a newer one and a
   resumed job rewrites nothing.
2. ``catch_up``: copy again what the application wrote to the source meanwhile, by
   ``_seq_no`` windows per shard, until a pass finds nothing new.
3. ``deletes``: when the counts differ, ids in the new index that the source no longer
   has are deleted (a deleted document leaves no ``_seq_no`` to find).
4. ``swap``: one ``POST /_aliases`` (remove + add). When the alias name is a concrete
   index, the classic trick: add the alias to the new index and ``remove_index`` the
   old one in the same request. In both modes writes to the source are blocked during
   the last catch-up, the delete reconciliation and the swap (seconds; they get a 403),
   so none is lost and no deleted document comes back. Reads go on, except that searches
   in flight at the instant the old index is deleted fail with 503 (measured: under
   0.5 s on the dev clusters); retried, they reach the alias. Alias-to-alias swaps (every
   later reindex) have no such window. Phases 2 to 4 at the end of a job are
   :mod:`connector.jobs.alias_swap`.
5. ``post_swap``: alias mode only, a last catch-up from the old index for writes that
   landed there before the swap; ``--delete-old`` then deletes the old index.

How a document is copied is :class:`~connector.jobs.copy_mode.CopyMode` (re-exported here).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from connector.cluster.client import Cluster, JsonDict
from connector.cluster.detect import ClusterLike, as_cluster
from connector.errors import ConfigError
from connector.jobs.alias_swap import copy_rest_and_swap
from connector.jobs.common import (
    JobSummary,
    cap_text_limit,
    concrete_index,
    describe_embedder,
    find_property,
    owned_embedder,
    record_model_variant,
    vector_dims_of,
)
from connector.jobs.copy_mode import CopyMode
from connector.jobs.runner import JobRunner
from connector.jobs.settings import ClusterSpec, JobSettings
from connector.jobs.store import JobCounts
from connector.jobs.versioned import AliasKind, alias_actions, target_index_body
from connector.jobs.work import Embedder
from connector.texts import TextPolicy, default_template
from mappings import VectorField, build_add_vector_field_body

__all__ = ["CopyMode", "ReindexConfig", "ReindexJob", "alias_actions", "run_reindex", "target_index_body"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class ReindexConfig:
    """What to reindex.

    Attributes:
        alias: the name the application queries; ends up an alias of ``<alias>-v<k>``.
        source: the index to copy (default: what ``alias`` names now).
        fields / template: the text to embed (empty ``fields``: copy only, no embedding).
        vector_field: the vector field of the new index.
        similarity / quantization / engine: vector options of the new mapping.
        dims / model_id: of the vector field (default: the embedding service's ``/info``).
        delete_old: delete the old index after the swap (alias mode).
        copy_only: copy without embedding (what the versioned-index migration does).
        ray_address: run the slices of the copy as Ray tasks on this cluster (needs ``embed_url``
            unless ``copy_only``, and a cluster spec passed to :func:`run_reindex`).
        embed_url: the embedding service (used when no embedder is passed, and by Ray tasks).
    """

    alias: str
    source: str | None = None
    fields: tuple[str, ...] = ()
    template: str | None = None
    vector_field: str = "embedding"
    similarity: str = "cosine"
    quantization: str = "none"
    engine: str | None = None
    dims: int | None = None
    model_id: str | None = None
    delete_old: bool = False
    copy_only: bool = False
    slices: int = 1
    job_id: str | None = None
    resume: bool = False
    ray_address: str | None = None
    embed_url: str | None = None
    show_progress: bool | None = None
    settings: JobSettings = field(default_factory=JobSettings)

    def __post_init__(self) -> None:
        if not self.copy_only and not self.fields:
            raise ConfigError("give --fields to embed (or copy_only=True to copy without embedding)", field="fields")
        if not 1 <= self.slices <= 1024:
            raise ConfigError(f"slices must be within 1..1024, got {self.slices}", field="slices")
        if self.ray_address and not self.copy_only and not self.embed_url:
            raise ConfigError("--ray-address needs --embed-url (each Ray task opens its own client)", field="embed_url")

    @property
    def policy(self) -> TextPolicy | None:
        if self.copy_only:
            return None
        return TextPolicy(
            fields=tuple(self.fields), template=self.template, max_text_chars=self.settings.max_text_chars
        )


class ReindexJob(JobRunner):
    """A copy into ``<alias>-v<k>`` with embedding, catch-up and an atomic alias swap."""

    kind = "reindex"

    def __init__(
        self,
        cluster: Cluster,
        config: ReindexConfig,
        *,
        embedder: Embedder | None,
        model_id: str | None,
        dims: int | None,
        cluster_spec: ClusterSpec | None = None,
    ) -> None:
        super().__init__(
            cluster,
            settings=config.settings,
            label_index=config.alias,
            vector_field=config.vector_field,
            slices=config.slices,
            job_id=config.job_id,
            resume=config.resume,
            catch_up=True,
            show_progress=config.show_progress,
            embedder=embedder,
            dims=dims,
            ray_address=config.ray_address,
            embed_url=config.embed_url,
            cluster_spec=cluster_spec,
        )
        self.config = config
        self.model_id = model_id

    @property
    def target(self) -> str:
        assert self.state is not None
        return str(self.state.extra["target"])

    @property
    def alias_kind(self) -> AliasKind:
        assert self.state is not None
        kind: AliasKind = self.state.extra["alias_kind"]
        return kind

    def mode_factory(self) -> Callable[[Cluster], CopyMode]:
        return functools.partial(
            CopyMode,
            job_id=self.job_id,
            target_index=self.target,
            vector_field=self.config.vector_field,
            model_id=self.model_id,
            policy=self.config.policy,
        )

    def params(self) -> JsonDict:
        c = self.config
        return {
            "alias": c.alias,
            "source": c.source,
            "fields": list(c.fields),
            "template": c.template,
            "vector_field": c.vector_field,
            "model_id": self.model_id,
            "copy_only": c.copy_only,
            "slices": c.slices,
        }

    # -- set-up -----------------------------------------------------------------------
    def current_aliases(self) -> dict[str, JsonDict]:
        """Index -> the alias definition (filter, routing...) of every index the alias names now."""
        alias = self.config.alias
        found = self.cluster.request("GET", f"/_alias/{alias}", ignore=(404,))
        return {
            idx: dict(v["aliases"][alias])
            for idx, v in (found.body or {}).items()
            if found.status == 200 and alias in (v.get("aliases") or {})
        }

    def resolve_source(self) -> tuple[str, AliasKind, dict[str, JsonDict]]:
        """The index to copy, what the alias name is now, and the alias's current definitions."""
        alias = self.config.alias
        current = self.current_aliases()
        if current:
            if self.config.source is not None:
                return concrete_index(self.cluster, self.config.source), "alias", current
            if len(current) != 1:
                raise ConfigError(
                    f"alias {alias!r} points to {len(current)} indices; name the one to copy with --source",
                    field="source",
                )
            return next(iter(current)), "alias", current
        if self.cluster.index_exists(alias):
            if self.config.source not in (None, alias):
                raise ConfigError(
                    f"{alias!r} is an index, not an alias; it is the source (drop --source)", field="source"
                )
            return alias, "concrete", {}
        if self.config.source is None:
            raise ConfigError(f"nothing is named {alias!r}: give --source, the index to copy", field="source")
        return concrete_index(self.cluster, self.config.source), "new", {}

    def next_version_name(self) -> str:
        alias = self.config.alias
        found = self.cluster.request("GET", f"/{alias}-v*/_settings/index.uuid", ignore=(404,))
        pattern = re.compile(rf"^{re.escape(alias)}-v(\d+)$")
        versions = [int(m.group(1)) for name in (found.body or {}) if (m := pattern.match(name))]
        return f"{alias}-v{max(versions, default=0) + 1}"

    def create_target(self, source: str, target: str, settings: Mapping[str, Any]) -> None:
        """Create ``target`` from the mapping and (index) ``settings`` of ``source``, plus the vector field."""
        caps = self.cluster.capabilities
        mapping = self.cluster.get_mapping(source)
        add_body = None
        if self.config.policy is not None or self.dims is not None:
            if self.dims is None or self.model_id is None:
                raise ConfigError("the vector field needs dims and a model id", field="dims")
            existing = find_property(mapping, self.config.vector_field)
            if existing is not None and vector_dims_of(existing) not in (None, self.dims):
                raise ConfigError(
                    f"{source!r} maps {self.config.vector_field!r} with {vector_dims_of(existing)} dims, the model "
                    f"gives {self.dims}; pick another --vector-field",
                    field="vector_field",
                )
            fields = tuple(self.config.fields) or ("title",)
            vector = VectorField(
                self.config.vector_field,
                dims=self.dims,
                model_id=self.model_id,
                similarity=self.config.similarity,  # type: ignore[arg-type]
                quantization=self.config.quantization,  # type: ignore[arg-type]
                engine=self.config.engine,  # type: ignore[arg-type]
                source_fields=fields,
                template=self.config.template or default_template(fields),
            )
            add_body = build_add_vector_field_body(caps, existing_mapping=mapping, vector_field=vector)
        body = target_index_body(
            source_mapping=mapping,
            source_settings=settings,
            add_vector_body=add_body,
            knn_setting=bool(caps.requires_knn_index_setting),
        )
        self.cluster.create_index(target, body)
        if add_body is not None:
            record_model_variant(self.cluster, target, self.config.vector_field, self.embedder)
        logger.info("created %s from the mapping of %s", target, source)

    def start(self) -> None:
        self.store.ensure_indices()
        existing = self.find_existing()
        if existing is not None:
            self.resume_from(existing)
            return
        source, kind, current = self.resolve_source()
        target = self.next_version_name()
        settings = self.cluster.request("GET", f"/{source}/_settings").body[source]["settings"]
        self.create_target(source, target, settings)
        refresh = (settings.get("index") or {}).get("refresh_interval")
        self.start_new(
            source,
            {"target_index": target, "alias": self.config.alias, "model_id": self.model_id},
            extra={
                "target": target,
                "alias_kind": kind,
                "source": source,
                "stage": "copying",
                "old_aliases": current,
                "refresh_interval": refresh,
            },
        )

    def run_later_phases(self, main: JobCounts) -> None:
        assert self.state is not None
        if self.state.extra.get("stage") != "swapped":
            copy_rest_and_swap(self)
        if self.alias_kind != "concrete":
            self.run_catch_up()  # post-swap: writes that reached the old index before the swap
        if self.config.delete_old and self.alias_kind == "alias":
            self.cluster.delete_index(self.state.scan_index)

    def summarize(self, main: JobCounts, *, main_elapsed_s: float) -> JobSummary:
        assert self.state is not None
        return JobSummary(
            job_id=self.job_id,
            kind="reindex",
            index=self.state.scan_index,
            status="completed",
            main=main,
            catch_up=self.catch_up_counts(),
            catch_up_passes=self.state.catch_up_pass,
            elapsed_s=time.monotonic() - self.started,
            main_elapsed_s=main_elapsed_s,
            target_index=self.target,
            alias=self.config.alias,
            dead_letter_index=self.settings.dead_letter_index,
            deleted_in_target=int(self.state.extra.get("deleted", 0)),
        )


def run_reindex(
    cluster: ClusterLike,
    config: ReindexConfig,
    *,
    embedder: Embedder | None = None,
    model_id: str | None = None,
    dims: int | None = None,
    cluster_spec: ClusterSpec | None = None,
) -> JobSummary:
    """Copy ``config.alias``'s index into ``<alias>-v<k>`` with the hybrid mapping, then swap the alias.

    Args:
        cluster: the cluster holding the index (a :class:`Cluster` or the app's official client).
        config: what to reindex (see :class:`ReindexConfig`).
        embedder: the embedding client (default: ``EmbeddingClient(config.embed_url)``; none for ``copy_only``).
        model_id / dims: of the vector field (default: the service's ``/info``, or ``config``).
        cluster_spec: how Ray tasks reach the cluster (needed with ``config.ray_address``).

    Returns:
        The :class:`JobSummary` (``target_index`` is the new index).

    Raises:
        ConfigError: nothing to copy, a source/alias mix-up, or a vector field clash.
        JobError: writing or embedding kept failing (resume with ``resume=True``), or the
            counts differ before a concrete index would be replaced.
    """
    cluster = as_cluster(cluster)
    # A copy-only job needs no embedding service (it uses an embedder only when one is passed).
    opened: contextlib.AbstractContextManager[Embedder | None] = (
        contextlib.nullcontext(embedder) if config.copy_only else owned_embedder(embedder, config.embed_url)
    )
    with opened as used:
        if used is not None:
            info = describe_embedder(used, model_id=model_id or config.model_id, dims=dims or config.dims)
            model_id, dims = info.model_id, info.dims
            config = replace(config, settings=cap_text_limit(config.settings, info))
        else:
            model_id, dims = model_id or config.model_id, dims or config.dims
        job = ReindexJob(cluster, config, embedder=used, model_id=model_id, dims=dims, cluster_spec=cluster_spec)
        summary = job.run()
    logger.info("reindex %s completed: %s -> %s (alias %s)", job.job_id, summary.index, job.target, job.config.alias)
    return summary
