"""BEIR-layout data sets: reading them, and loading a corpus into a plain BM25 index.

A BEIR folder holds ``corpus.jsonl`` (``_id``, ``title``, ``text`` and any extra
keys), ``queries.jsonl`` (``_id``, ``text``) and ``qrels/<split>.tsv``
(``query-id  corpus-id  score``, with a header, graded scores).

``eshybrid load`` creates the "existing shop" starting point: an index with
``title`` and ``text`` as BM25 text fields (English analyzer by default, as a real
shop configures it), every other key kept (strings mapped as text with the same analyzer), bulk-loaded through the jobs' streaming bulk helper (chunks bounded by
count and bytes; only the items that got 429 are resent).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from connector.cluster.client import Cluster
from connector.cluster.detect import ClusterLike, as_cluster
from connector.errors import BulkError, ConfigError
from connector.jobs.bulk import BulkAction, BulkItemResult, streaming_bulk
from mappings import TextField, VectorField, build_index_body
from mappings.analysis import shop_analysis, string_dynamic_template

__all__ = [
    "BeirDataset",
    "LoadReport",
    "read_beir",
    "write_beir",
    "read_queries",
    "read_qrels",
    "iter_corpus",
    "plain_index_body",
    "load_corpus",
]

logger = logging.getLogger(__name__)

_MAX_CHUNK_BYTES = 5 * 1024 * 1024
# Resends of a busy chunk / of its 429 items, and the longest wait between them.
_MAX_RETRIES = 4
_MAX_BACKOFF_S = 8.0


@dataclass(frozen=True)
class BeirDataset:
    """Queries and graded judgments of a BEIR folder (the corpus is streamed with :func:`iter_corpus`)."""

    path: Path
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]

    @property
    def corpus_path(self) -> Path:
        return self.path / "corpus.jsonl"

    def judged_queries(self) -> dict[str, str]:
        """The queries with at least one relevant (grade > 0) judgment."""
        return {
            qid: text
            for qid, text in self.queries.items()
            if any(grade > 0 for grade in self.qrels.get(qid, {}).values())
        }


def _need(path: Path, what: str) -> Path:
    if not path.is_file():
        raise ConfigError(
            f"{what} not found at {path}: expected a BEIR folder (corpus.jsonl, queries.jsonl, qrels/test.tsv)",
            field="dataset",
            path=str(path),
        )
    return path


def read_queries(path: str | Path) -> dict[str, str]:
    """``queries.jsonl`` -> ``{query_id: text}``."""
    queries: dict[str, str] = {}
    with _need(Path(path), "queries file").open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if line.strip():
                try:
                    row = json.loads(line)
                    queries[str(row["_id"])] = str(row["text"])
                except (ValueError, KeyError) as e:
                    raise ConfigError(f"{path}:{number}: a query needs _id and text ({e})", field="queries") from e
    return queries


def read_qrels(path: str | Path) -> dict[str, dict[str, int]]:
    """``qrels/*.tsv`` -> ``{query_id: {doc_id: grade}}`` (a header line is skipped)."""
    qrels: dict[str, dict[str, int]] = {}
    with _need(Path(path), "qrels file").open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            parts = line.rstrip("\n").split("\t")
            if not line.strip() or (number == 1 and not parts[-1].strip().lstrip("-").isdigit()):
                continue
            if len(parts) < 3:
                raise ConfigError(f"{path}:{number}: expected 'query-id<TAB>corpus-id<TAB>score'", field="qrels")
            qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    return qrels


def read_beir(
    path: str | Path, *, queries: str | Path | None = None, qrels: str | Path | None = None, split: str = "test"
) -> BeirDataset:
    """Read a BEIR folder; ``queries``/``qrels`` override the folder's own files."""
    root = Path(path)
    return BeirDataset(
        path=root,
        queries=read_queries(queries or root / "queries.jsonl"),
        qrels=read_qrels(qrels or root / "qrels" / f"{split}.tsv"),
    )


def write_beir(out: str | Path, *, queries: Mapping[str, str], qrels: Mapping[str, Mapping[str, int]]) -> Path:
    """Write ``queries.jsonl`` and ``qrels/test.tsv`` under ``out`` (the folder :func:`read_beir` reads).

    ``eshybrid eval`` and ``tune`` take the folder with ``--dataset`` (the corpus is the index itself).
    Rows are sorted, so the same judgments always give the same files.

    Raises:
        ConfigError: an id holds a tab or a line break (the qrels file could not be read back).
    """
    bad = [i for i in (*qrels, *(d for docs in qrels.values() for d in docs)) if any(c in i for c in "\t\r\n")]
    if bad:
        raise ConfigError(f"ids with a tab or line break cannot go in a qrels file: {bad[:3]}", field="qrels")
    root = Path(out)
    (root / "qrels").mkdir(parents=True, exist_ok=True)
    with (root / "queries.jsonl").open("w", encoding="utf-8") as f:
        for qid, text in sorted(queries.items()):
            f.write(json.dumps({"_id": qid, "text": text}, ensure_ascii=False) + "\n")
    with (root / "qrels" / "test.tsv").open("w", encoding="utf-8") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        for qid in sorted(qrels):
            for doc, grade in sorted(qrels[qid].items()):
                f.write(f"{qid}\t{doc}\t{int(grade)}\n")
    return root


def iter_corpus(path: str | Path) -> Iterator[dict[str, Any]]:
    """Stream ``corpus.jsonl`` rows (each has ``_id``; ``title``/``text`` default to ``""``)."""
    file = Path(path)
    if file.is_dir():
        file = file / "corpus.jsonl"
    with _need(file, "corpus").open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            row = json.loads(line)
            if "_id" not in row:
                raise ConfigError(f"{file}:{number}: a document needs an _id", field="corpus")
            row["_id"] = str(row["_id"])
            row.setdefault("title", "")
            row.setdefault("text", "")
            yield row


def plain_index_body(
    caps: Any,
    *,
    shards: int = 1,
    replicas: int = 0,
    analyzer: str = "english",
    vector_fields: Sequence[VectorField] = (),
) -> dict[str, Any]:
    """The "existing shop" index: ``title`` and ``text`` as text fields, other string keys text too.

    Every text field is analyzed with ``analyzer`` (see :func:`mappings.analysis.shop_analysis`:
    ``english`` by default, the analyzer a real English shop configures; ``standard`` for none)
    and has a ``keyword`` subfield (``text``, a long description, has none); other keys are
    mapped dynamically, strings with the same analyzer.

    Args:
        caps: the target server's capabilities.
        shards, replicas: index settings.
        analyzer: ``english`` | ``standard``.
        vector_fields: vector fields to map as well (benches load vectors with the corpus).
    """
    name, analysis = shop_analysis(caps, analyzer)
    body = build_index_body(
        caps,
        text_fields=[TextField("title", analyzer=name, keyword_subfield=True), TextField("text", analyzer=name)],
        vector_fields=vector_fields,
        analysis=analysis,
        number_of_shards=shards,
        number_of_replicas=replicas,
    )
    body["mappings"]["dynamic_templates"] = [string_dynamic_template(name)]
    return body


@dataclass
class LoadReport:
    """What a load did."""

    index: str
    docs: int = 0
    failed: int = 0
    chunks: int = 0
    took_s: float = 0.0
    failures: list[dict[str, Any]] = field(default_factory=list)


def _failure(result: BulkItemResult) -> dict[str, Any]:
    """A refused document as the report lists it (``error`` shaped like the cluster's error object)."""
    return {
        "_id": result.action.meta.get("_id"),
        "status": result.status,
        "error": {"type": result.error_type, "reason": result.reason},
    }


def _create_index(cluster: Cluster, index: str, body: Mapping[str, Any] | None, *, replace: bool) -> None:
    if cluster.index_exists(index):
        if not replace:
            raise ConfigError(
                f"index {index!r} already exists; pass replace=True (--replace) to recreate it",
                field="index",
                index=index,
            )
        cluster.delete_index(index)
    cluster.create_index(index, body or plain_index_body(cluster.capabilities))


def _index_actions(
    rows: Iterator[Mapping[str, Any]],
    index: str,
    *,
    vectors: Mapping[str, Sequence[float]] | None,
    vector_field: str,
) -> Iterator[BulkAction]:
    for row in rows:
        doc = {k: v for k, v in row.items() if k != "_id"}
        if vectors is not None and row["_id"] in vectors:
            doc[vector_field] = [float(x) for x in vectors[row["_id"]]]
        yield BulkAction("index", {"_index": index, "_id": str(row["_id"])}, doc)


def load_corpus(
    cluster: ClusterLike,
    index: str,
    corpus: str | Path | Iterable[Mapping[str, Any]],
    *,
    index_body: Mapping[str, Any] | None = None,
    vectors: Mapping[str, Sequence[float]] | None = None,
    vector_field: str = "embedding",
    chunk_size: int = 500,
    replace: bool = False,
    raise_on_error: bool = True,
) -> LoadReport:
    """Create ``index`` and bulk-load a BEIR corpus into it (then refresh).

    Args:
        cluster: a :class:`connector.cluster.client.Cluster` (or the app's official client).
        index: the index to create.
        corpus: a BEIR folder / ``corpus.jsonl`` path, or rows with ``_id``.
        index_body: the ``PUT`` body (default: :func:`plain_index_body`, a BM25 index).
        vectors: optional ``{doc_id: vector}`` written into ``vector_field`` (benches).
        vector_field: where ``vectors`` go.
        chunk_size: documents per ``_bulk`` (chunks are also capped at 5 MB).
        replace: delete an existing index of that name first (else it is an error).
        raise_on_error: raise :class:`BulkError` (after the whole load) when items failed.

    Returns:
        A :class:`LoadReport`.

    Raises:
        ConfigError: the index exists and ``replace`` is false, or the corpus is malformed.
        BulkError: some documents were refused (``items`` holds the failures), or a ``_bulk``
            request kept failing (429/5xx/unreachable) after the retries.
    """
    if chunk_size < 1:
        raise ConfigError("chunk_size must be >= 1", field="chunk_size")
    cluster = as_cluster(cluster)
    started = time.perf_counter()
    _create_index(cluster, index, index_body, replace=replace)
    rows = iter_corpus(corpus) if isinstance(corpus, (str, Path)) else iter(corpus)
    report = LoadReport(index=index)

    def chunk_sent(size: int) -> None:
        report.chunks += 1

    for result in streaming_bulk(
        cluster,
        _index_actions(rows, index, vectors=vectors, vector_field=vector_field),
        max_docs=chunk_size,
        max_bytes=_MAX_CHUNK_BYTES,
        max_retries=_MAX_RETRIES,
        max_backoff_s=_MAX_BACKOFF_S,
        on_chunk=chunk_sent,
    ):
        if result.ok:
            report.docs += 1
            continue
        report.failed += 1
        if len(report.failures) < 100:
            report.failures.append(_failure(result))
    cluster.refresh(index)
    report.took_s = round(time.perf_counter() - started, 3)
    logger.info("loaded %s docs into %s in %s chunks (%s failed)", report.docs, index, report.chunks, report.failed)
    if report.failed and raise_on_error:
        raise BulkError(
            f"{report.failed} documents were refused while loading {index}", items=report.failures, index=index
        )
    return report
