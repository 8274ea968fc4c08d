"""Backfill in place: embed the documents of an index and write the vectors into it.

1. Read: a sliced point-in-time scan (``search_after`` on ``_shard_doc``), asking only
   for the source fields and ``eshybrid_meta.<field>``, with ``seq_no_primary_term``.
2. Decide per document: the text's sha256 and the model id equal the stored
   ``eshybrid_meta.<field>`` -> skip (incremental sync); unembeddable -> dead letter;
   otherwise embed.
3. Write: bulk partial updates of the vector and ``eshybrid_meta.<field>`` only, each
   conditional on ``if_seq_no``/``if_primary_term``: a document the application changed
   since it was read answers 409, is re-read and redone, never overwritten with stale data.
4. Catch up: documents written while the scan ran (new, or changed after their vector
   was written) are found by ``_seq_no`` above the high-water mark taken at the start,
   and processed again; repeated until a pass writes nothing. The job's own writes are in
   that window too; those still at the ``_seq_no`` the job's write got are not read again
   (:mod:`connector.jobs.own_writes`).

Checkpoints (one per slice, in ``eshybrid-jobs``) make ``--resume`` continue a killed job.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

from connector.cluster.bodies import mget_body
from connector.cluster.client import Cluster, JsonDict
from connector.cluster.detect import ClusterLike, as_cluster
from connector.errors import ConfigError
from connector.jobs.bulk import BulkAction, source_with_vector
from connector.jobs.common import (
    BOOKKEEPING,
    JobSummary,
    bookkeeping,
    cap_text_limit,
    concrete_index,
    describe_embedder,
    find_property,
    owned_embedder,
    record_model_variant,
    set_text,
    vector_dims_of,
    vector_is_current,
)
from connector.jobs.own_writes import OwnWrites
from connector.jobs.passages import PassagePolicy, PassageStep, Tokenizer
from connector.jobs.runner import JobRunner
from connector.jobs.settings import ClusterSpec, JobSettings
from connector.jobs.store import DeadLetter, JobCounts
from connector.jobs.work import DocWork, Embedder
from connector.texts import TextPolicy, UnembeddableDocument, build_text, text_hash
from mappings.passages import PASSAGE_VECTOR, record_passages_cut

__all__ = ["BackfillConfig", "BackfillJob", "InPlaceMode", "TextVersion", "run_backfill", "with_text_fields"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class BackfillConfig:
    """What to backfill.

    Attributes:
        index: the index (or an alias of one index) to fill in place.
        fields: source fields the text is built from (empty: those the index ``_meta`` records).
        template: optional ``{field}`` template (default: non-empty fields joined by newlines).
        vector_field: the vector field to fill (must be mapped: ``eshybrid migrate up`` first).
        slices: parallel slices of the scan.
        job_id: name the job (default: generated); with ``resume``, the job to continue.
        resume: continue the named job, or the latest unfinished one on this index/field.
        catch_up: after the scan, process documents written during it.
        ray_address: run the slices as Ray tasks on this cluster (needs ``embed_url``).
        embed_url: the embedding service (used when no embedder is passed, and by Ray tasks).
        show_progress: a progress bar (default: when stderr is a TTY).
    """

    index: str
    fields: tuple[str, ...]
    template: str | None = None
    vector_field: str = "embedding"
    slices: int = 1
    job_id: str | None = None
    resume: bool = False
    catch_up: bool = True
    ray_address: str | None = None
    embed_url: str | None = None
    show_progress: bool | None = None
    settings: JobSettings = field(default_factory=JobSettings)
    passages: PassagePolicy | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.slices <= 1024:
            raise ConfigError(f"slices must be within 1..1024, got {self.slices}", field="slices")
        if self.ray_address and not self.embed_url:
            raise ConfigError("--ray-address needs --embed-url (each Ray task opens its own client)", field="embed_url")

    @property
    def policy(self) -> TextPolicy:
        return TextPolicy(
            fields=tuple(self.fields), template=self.template, max_text_chars=self.settings.max_text_chars
        )

    def params(self, model_id: str) -> JsonDict:
        return {
            "fields": list(self.fields),
            "template": self.template,
            "vector_field": self.vector_field,
            "slices": self.slices,
            "model_id": model_id,
            "max_text_chars": self.settings.max_text_chars,
            "passages": asdict(self.passages) if self.passages is not None else None,
        }


def _excerpt(source: Mapping[str, Any], fields: Sequence[str], text: str | None) -> str:
    if text is not None:
        return text[:300]
    values = {f: source.get(f) for f in fields}
    return json.dumps(values, default=str)[:300]


class TextVersion(Protocol):
    """What the incremental check hashes in place of a document's text (an embedder's optional ``text_version``).

    The image job's: the image URL/path plus a validator of the bytes now behind it (ETag, mtime), so that a
    new image under an unchanged URL is embedded again. ``prepare`` looks a page's texts up at once (concurrently);
    ``__call__`` answers one, from what ``prepare`` found or by looking it up.
    """

    def prepare(self, texts: Sequence[str]) -> None: ...

    def __call__(self, text: str) -> str: ...


@dataclass
class InPlaceMode:
    """Partial updates of the vector + bookkeeping, conditional on the sequence number read."""

    cluster: Cluster
    job_id: str
    vector_field: str
    model_id: str
    policy: TextPolicy
    text_version: TextVersion | None = None

    @property
    def source_includes(self) -> list[str]:
        return [*self.policy.fields, f"{BOOKKEEPING}.{self.vector_field}"]

    def classify(self, hit: Mapping[str, Any]) -> DocWork:
        source = dict(hit.get("_source") or {})
        work = DocWork(
            doc_id=str(hit["_id"]),
            verdict="embed",
            index=str(hit["_index"]),
            routing=hit.get("_routing"),
            seq_no=hit.get("_seq_no"),
            primary_term=hit.get("_primary_term"),
            source=source,
        )
        embeddable = set_text(work, self.policy, self)
        if embeddable and self.text_version is not None and work.text is not None:
            work.text_hash = text_hash(self.text_version(work.text))
        if embeddable and vector_is_current(
            source, vector_field=self.vector_field, text_hash=work.text_hash, model_id=self.model_id
        ):
            work.verdict = "skip"
        return work

    def prepare_page(self, hits: Sequence[Mapping[str, Any]]) -> None:
        """Look up the text versions of a page at once, before :meth:`classify` takes its hits one by one."""
        if self.text_version is None:
            return
        texts = []
        for hit in hits:
            try:
                texts.append(build_text(dict(hit.get("_source") or {}), self.policy))
            except UnembeddableDocument:
                continue
        self.text_version.prepare(texts)

    def mark_unembeddable(self, work: DocWork, reason_code: str, reason: str) -> None:
        work.verdict = "dead"
        work.dead_letter = DeadLetter(
            job_id=self.job_id,
            index=work.index,
            doc_id=work.doc_id,
            reason_code=reason_code,
            reason=reason,
            vector_field=self.vector_field,
            text_excerpt=_excerpt(work.source, self.policy.fields, work.text),
        )

    def to_action(self, work: DocWork) -> BulkAction:
        meta: JsonDict = {
            "_index": work.index,
            "_id": work.doc_id,
            "if_seq_no": work.seq_no,
            "if_primary_term": work.primary_term,
        }
        if work.routing is not None:
            meta["routing"] = work.routing
        book = {BOOKKEEPING: {self.vector_field: bookkeeping(self.model_id, work.text_hash)}}
        if work.passages is not None:
            # The whole array is replaced: a document whose text shrank loses its old passages.
            return BulkAction("update", meta, {"doc": {**book, self.vector_field: work.passages}})
        assert work.vector is not None
        return BulkAction("update", meta, source_with_vector(book, self.vector_field, work.vector, wrap="doc"))

    def resolve_conflicts(self, works: list[DocWork]) -> list[DocWork]:
        """Re-read the documents (real-time GET) and classify them again."""
        body = mget_body([(w.index, w.doc_id, w.routing) for w in works])
        response = self.cluster.request(
            "POST", "/_mget", body=body, params={"_source_includes": ",".join(self.source_includes)}
        ).body
        again: list[DocWork] = []
        for old, found in zip(works, response["docs"]):
            if not found.get("found"):
                again.append(DocWork(doc_id=old.doc_id, verdict="vanished", index=old.index))
                continue
            work = self.classify(found)
            work.attempts = old.attempts + 1
            again.append(work)
        return again


class BackfillJob(JobRunner):
    """A backfill in place (see the module docstring)."""

    kind = "backfill"

    def __init__(
        self,
        cluster: Cluster,
        config: BackfillConfig,
        *,
        embedder: Embedder,
        model_id: str,
        dims: int | None,
        cluster_spec: ClusterSpec | None,
    ) -> None:
        super().__init__(
            cluster,
            settings=config.settings,
            label_index=config.index,
            vector_field=config.vector_field,
            slices=config.slices,
            job_id=config.job_id,
            resume=config.resume,
            catch_up=config.catch_up,
            show_progress=config.show_progress,
            embedder=embedder,
            dims=dims,
            ray_address=config.ray_address,
            embed_url=config.embed_url,
            cluster_spec=cluster_spec,
        )
        self.config = config
        self.model_id = model_id
        self.own_writes = OwnWrites()  # the catch-up skips what this job wrote itself

    def mode_factory(self) -> Callable[[Cluster], InPlaceMode]:
        return self._mode_factory(text_version=getattr(self.embedder, "text_version", None))

    def task_mode_factory(self) -> Callable[[Cluster], InPlaceMode]:
        """The mode of a Ray task: without the embedder's ``text_version`` (the task sets its own embedder's)."""
        return self._mode_factory(text_version=None)

    def _mode_factory(self, *, text_version: TextVersion | None) -> Callable[[Cluster], InPlaceMode]:
        return functools.partial(
            InPlaceMode,
            job_id=self.job_id,
            vector_field=self.config.vector_field,
            model_id=self.model_id,
            policy=self.config.policy,
            text_version=text_version,
        )

    def params(self) -> JsonDict:
        return self.config.params(self.model_id)

    def check_target(self, index: str) -> None:
        """The vector field is mapped, with the service's dims; the service's model matches ``_meta``."""
        mapping = self.cluster.get_mapping(index)
        vf = self.config.vector_field
        prop = find_property(mapping, vf)
        if self.config.passages is not None:
            self._check_passages_target(index, prop)
            return
        if prop is None or prop.get("type") not in ("dense_vector", "knn_vector"):
            raise ConfigError(
                f"index {index!r} has no vector field {vf!r}; add it first with "
                f"`eshybrid migrate up --index {self.config.index}` (or pick --vector-field)",
                index=index,
                field=vf,
            )
        mapped_dims = vector_dims_of(prop)
        if self.dims is not None and mapped_dims is not None and mapped_dims != self.dims:
            raise ConfigError(
                f"field {vf!r} holds {mapped_dims}-dim vectors but the embedding service returns {self.dims}; "
                "use the model the field was built for, or migrate to a new field",
                field=vf,
            )
        self.dims = self.dims or mapped_dims
        meta = ((mapping.get("_meta") or {}).get("eshybrid") or {}).get("vector_fields", {}).get(vf)
        check = getattr(self.embedder, "check_compatible", None)
        if meta and check is not None:
            check(meta)
        if meta:
            record_model_variant(self.cluster, index, vf, self.embedder)

    def _check_passages_target(self, index: str, prop: Mapping[str, Any] | None) -> None:
        vf = self.config.vector_field
        vector = ((prop or {}).get("properties") or {}).get(PASSAGE_VECTOR) or {}
        if (prop or {}).get("type") != "nested" or vector.get("type") not in ("dense_vector", "knn_vector"):
            raise ConfigError(
                f"index {index!r} has no passages field {vf!r} (nested, with a vector); add it first with "
                f"`eshybrid migrate up --index {self.config.index}` (revision 0006)",
                index=index,
                field=vf,
            )
        mapped_dims = vector_dims_of(vector)
        if self.dims is not None and mapped_dims is not None and mapped_dims != self.dims:
            raise ConfigError(
                f"passages field {vf!r} holds {mapped_dims}-dim vectors but the embedding service returns {self.dims}",
                field=vf,
            )

    def start(self) -> None:
        self.store.ensure_indices()
        existing = self.find_existing()
        if existing is not None:
            self.resume_from(existing)
            assert self.state is not None
            self.check_target(self.state.scan_index)
            return
        index = concrete_index(self.cluster, self.config.index)
        self.check_target(index)
        self.start_new(index, {"target_index": index, "model_id": self.model_id})

    def run_later_phases(self, main: JobCounts) -> None:
        self.save_state(counts=main.as_dict(), phase="catch_up")
        if self.config.catch_up:
            self.run_catch_up()

    def summarize(self, main: JobCounts, *, main_elapsed_s: float) -> JobSummary:
        assert self.state is not None
        summary = JobSummary(
            job_id=self.job_id,
            kind="backfill",
            index=self.config.index,
            status="completed",
            main=main,
            catch_up=self.catch_up_counts(),
            catch_up_passes=self.state.catch_up_pass,
            elapsed_s=time.monotonic() - self.started,
            main_elapsed_s=main_elapsed_s,
            target_index=self.state.scan_index,
            dead_letter_index=self.settings.dead_letter_index,
        )
        if not summary.reconciles:
            logger.error("backfill %s does not reconcile: %s", self.job_id, summary.as_dict())
        return summary


def run_backfill(
    cluster: ClusterLike,
    config: BackfillConfig,
    *,
    embedder: Embedder | None = None,
    model_id: str | None = None,
    dims: int | None = None,
    cluster_spec: ClusterSpec | None = None,
    task_embedder: Callable[[], Embedder] | None = None,
) -> JobSummary:
    """Embed the documents of ``config.index`` and write the vectors into it, in place.

    Args:
        cluster: the cluster holding the index (a :class:`Cluster` or the app's official client).
        config: what to backfill (see :class:`BackfillConfig`).
        embedder: the embedding client (default: ``EmbeddingClient(config.embed_url)``).
        model_id: the model id to record (default: the service's ``/info``).
        dims: the vector size (default: the service's ``/info``).
        cluster_spec: how Ray tasks reach the cluster (needed with ``config.ray_address``).
        task_embedder: what builds each Ray task's embedder (must pickle); default an ``EmbeddingClient`` of
            ``config.embed_url``.

    Returns:
        The :class:`JobSummary`; it reconciles (``read = updated + skipped + dead_lettered + vanished``).

    Raises:
        ConfigError: the vector field is not mapped, dims differ, a resumed job had other options.
        JobError: writing or embedding kept failing; the job can be resumed with ``resume=True``.
    """
    cluster = as_cluster(cluster)
    with owned_embedder(embedder, config.embed_url) as embedder:
        config = with_text_fields(cluster, config)
        info = describe_embedder(embedder, model_id=model_id, dims=dims)
        config = replace(config, settings=cap_text_limit(config.settings, info))
        # Passages: the cut is part of what a stored array was made with, so another cut re-embeds every document.
        model_id = info.model_id if config.passages is None else config.passages.identity(info.model_id)
        job = BackfillJob(
            cluster, config, embedder=embedder, model_id=model_id, dims=info.dims, cluster_spec=cluster_spec
        )
        job.task_embedder = task_embedder
        if config.passages is not None:
            job.passages = passage_step(cluster, config, embedder)
        summary = job.run()
    logger.info("backfill %s completed: %s", job.job_id, summary.total.as_dict())
    return summary


def with_text_fields(cluster: Cluster, config: BackfillConfig) -> BackfillConfig:
    """Without ``fields``: the source fields and template the index ``_meta`` records for the field."""
    if config.fields:
        return config
    meta = (cluster.get_mapping(config.index).get("_meta") or {}).get("eshybrid") or {}
    field_meta = (meta.get("vector_fields") or {}).get(config.vector_field) or {}
    if not field_meta.get("source_fields"):
        raise ConfigError(
            f"pass --fields: the _meta of {config.index!r} records no source fields for {config.vector_field!r}",
            field="fields",
        )
    return replace(
        config, fields=tuple(field_meta["source_fields"]), template=config.template or field_meta.get("template")
    )


def passage_step(cluster: Cluster, config: BackfillConfig, embedder: Embedder) -> PassageStep:
    """The passages step of a passage-mode job; records how passages are cut in the index ``_meta``."""
    assert config.passages is not None
    tokenize = getattr(embedder, "tokenize", None)
    info_fn = getattr(embedder, "info", None)
    if tokenize is None or info_fn is None:
        raise ConfigError("passages need the embedding service client (tokenize and /info)", field="passages")
    tokenizer: Tokenizer = embedder  # type: ignore[assignment]  # has tokenize(), checked above
    max_length = int(info_fn().max_length)
    step = PassageStep(config.passages, tokenizer, max_length, fields=tuple(config.fields))
    index = concrete_index(cluster, config.index)
    mapping = cluster.get_mapping(index)
    body = record_passages_cut(mapping, config.vector_field, config.passages.meta(max_length=max_length))
    cluster.request("PUT", f"/{index}/_mapping", body=body)
    return step
