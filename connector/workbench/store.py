"""Judgments made in the workbench: one document per (index, query, document, rater) in ``eshybrid-judgments``.

The index sits beside the search log (``eshybrid-search-log``) and is created on first write with
:func:`mappings.system.judgments_index_body`. A rater who grades a hit again overwrites their grade (the
document ``_id`` is derived from the four keys). Writes wait for a refresh, so the next read sees them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from connector.errors import ClusterApiError, SearchRequestError
from connector.quality.load import write_beir
from connector.workbench.compare import aggregate_grade, disagreements
from mappings.system import judgments_index_body

__all__ = [
    "DEFAULT_JUDGMENTS_INDEX",
    "GRADES",
    "JudgmentStore",
    "QueryGrades",
    "check_judgment",
    "query_id",
    "query_key",
]

DEFAULT_JUDGMENTS_INDEX: Final = "eshybrid-judgments"
GRADES: Final = (0, 1, 2, 3)
_SPACES = re.compile(r"\s+")
_RATER = re.compile(r"^[\w.@+-]{1,64}$")
# More judgments than one query ever gets in a workbench; the export pages through the index.
_PAGE: Final = 1000


def query_key(text: str) -> str:
    """The form a query's judgments are kept under: spaces collapsed (case kept: the search sees it)."""
    return _SPACES.sub(" ", text.strip())


def query_id(index: str, text: str) -> str:
    """A stable BEIR query id for a query of an index."""
    return "wb-" + hashlib.sha256(f"{index}\0{query_key(text)}".encode()).hexdigest()[:16]


def _doc_id(index: str, query: str, doc: str, rater: str) -> str:
    return hashlib.sha256("\0".join((index, query, doc, rater)).encode()).hexdigest()


def check_judgment(query: str, doc: str, grade: int, *, rater: str) -> str:
    """Validate one judgment; returns the query's key (:func:`query_key`).

    Raises:
        SearchRequestError: a grade outside 0-3, an empty query or document, a rater id that is not
            1-64 letters, digits or ``._@+-``.
    """
    key = query_key(query)
    if grade not in GRADES or isinstance(grade, bool):
        raise SearchRequestError(f"grade must be one of 0, 1, 2, 3, got {grade!r}", field="grade")
    if not key or not doc:
        raise SearchRequestError("a judgment needs the query and the document id", field="doc")
    if not _RATER.match(rater):
        raise SearchRequestError(
            "rater must be 1-64 letters, digits or ._@+- (e.g. your name or mail address)", field="rater"
        )
    return key


@dataclass(frozen=True)
class QueryGrades:
    """The grades of one query: per document and rater, and the one grade per document (the module rule)."""

    by_rater: dict[str, dict[str, int]]

    @property
    def grades(self) -> dict[str, int]:
        return {doc: aggregate_grade(list(raters.values())) for doc, raters in self.by_rater.items()}

    @property
    def disagreements(self) -> dict[str, dict[str, int]]:
        return disagreements(self.by_rater)

    def to_json(self) -> dict[str, Any]:
        return {"grades": self.grades, "by_rater": self.by_rater, "disagreements": self.disagreements}


class JudgmentStore:
    """Read and write the judgments of one product index."""

    def __init__(self, cluster: Any, index: str, *, judgments_index: str = DEFAULT_JUDGMENTS_INDEX) -> None:
        self.cluster = cluster
        self.index = index
        self.judgments_index = judgments_index
        self._ready = False

    def _ensure_index(self) -> None:
        if self._ready or self.cluster.index_exists(self.judgments_index):
            self._ready = True
            return
        try:
            self.cluster.create_index(self.judgments_index, judgments_index_body())
        except ClusterApiError as e:
            if e.error_type != "resource_already_exists_exception":
                raise
        self._ready = True

    def rate(
        self, query: str, doc: str, grade: int, *, rater: str, config: Mapping[str, Any] | None = None
    ) -> QueryGrades:
        """Store ``rater``'s grade (0-3) of ``doc`` for ``query``; returns the query's grades after it.

        Raises:
            SearchRequestError: a grade outside 0-3, an empty query or document, a rater id that is not
                1-64 letters, digits or ``._@+-``.
        """
        key = check_judgment(query, doc, grade, rater=rater)
        self._ensure_index()
        body = {
            "index": self.index,
            "query": key,
            "doc_id": doc,
            "grade": grade,
            "rater": rater,
            "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "config": dict(config or {}),
        }
        path = f"/{self.judgments_index}/_doc/{_doc_id(self.index, key, doc, rater)}"
        self.cluster.request("PUT", path, body=body, params={"refresh": "wait_for"})
        return self.grades(key)

    def _hits(self, query: Mapping[str, Any]) -> list[dict[str, Any]]:
        # Once the index exists it stays (one round trip less on every page load).
        if not self._ready and not self.cluster.index_exists(self.judgments_index):
            return []
        self._ready = True
        out: list[dict[str, Any]] = []
        sort = [{"query": "asc"}, {"doc_id": "asc"}, {"rater": "asc"}]
        after: list[Any] | None = None
        while True:
            body: dict[str, Any] = {"query": query, "size": _PAGE, "sort": sort}
            if after is not None:
                body["search_after"] = after
            hits = self.cluster.search(self.judgments_index, body)["hits"]["hits"]
            out.extend(hit["_source"] for hit in hits)
            if len(hits) < _PAGE:
                return out
            after = hits[-1]["sort"]

    def grades(self, query: str) -> QueryGrades:
        """Every rater's grades of one query."""
        filters = [{"term": {"index": self.index}}, {"term": {"query": query_key(query)}}]
        by_rater: dict[str, dict[str, int]] = {}
        for row in self._hits({"bool": {"filter": filters}}):
            by_rater.setdefault(row["doc_id"], {})[row["rater"]] = int(row["grade"])
        return QueryGrades(by_rater)

    def all_grades(self, *, rater: str | None = None) -> dict[str, QueryGrades]:
        """``{query: QueryGrades}`` of this index (only ``rater``'s grades when given)."""
        filters: list[dict[str, Any]] = [{"term": {"index": self.index}}]
        if rater:
            filters.append({"term": {"rater": rater}})
        by_query: dict[str, dict[str, dict[str, int]]] = {}
        for row in self._hits({"bool": {"filter": filters}}):
            by_query.setdefault(row["query"], {}).setdefault(row["doc_id"], {})[row["rater"]] = int(row["grade"])
        return {query: QueryGrades(docs) for query, docs in by_query.items()}

    def export_beir(self, out: str | Path, *, rater: str | None = None) -> tuple[Path, int, int]:
        """Write the judgments as a BEIR folder (``queries.jsonl``, ``qrels/test.tsv``) for ``eval``/``tune``.

        Returns:
            ``(folder, queries, judged pairs)``.
        """
        all_grades = self.all_grades(rater=rater)
        queries = {query_id(self.index, query): query for query in all_grades}
        qrels = {query_id(self.index, query): grades.grades for query, grades in all_grades.items()}
        folder = write_beir(out, queries=queries, qrels=qrels)
        return folder, len(queries), sum(len(docs) for docs in qrels.values())
