"""The search core's I/O operations and the trace every driver keeps of what it sent.

The core (:mod:`connector.search.core`) is a generator that yields these operations and receives their
results; a driver (:mod:`connector.search.drivers`) performs each one. An operation that reaches the cluster
names its request (method, path, body) once, here, so what a response's ``requests`` show is what was sent:
the driver records it from the operation itself, never from a hand-written copy.

:class:`Together` asks for several operations at once (the spelling suggestion and the query embedding, say):
the driver runs them concurrently and counts ONE sequential round trip for them; each result may be an
exception, which the core handles where it asked.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from connector.search.images import EmbedImage
from connector.search.models import ExecutedRequest
from connector.search.rerank import RerankConfig
from connector.search.rewrite import TimedRewriter

__all__ = [
    "ClusterMsearch",
    "ClusterRequest",
    "ClusterSearch",
    "Embed",
    "EmbedImage",
    "Flow",
    "GetMapping",
    "Op",
    "Rewrite",
    "Score",
    "Together",
    "Trace",
]


@dataclass(frozen=True)
class GetMapping:
    """``GET <index>/_mapping`` (read once per search object, not traced); result: the mapping response body."""

    index: str


@dataclass(frozen=True)
class Embed:
    """The query vector of ``text`` (cached, model checked once); result: ``list[float]``.

    ``guarded``: within the search's budget and breaker (a search); else as long as the embedder takes (the
    legs of an evaluation, which must not stand in a fallback for a vector).
    """

    text: str
    vector_meta: Mapping[str, Any] | None = None
    guarded: bool = True


@dataclass(frozen=True)
class ClusterSearch:
    """``GET <index>/_search``; result: the response body."""

    index: str
    body: Mapping[str, Any]
    params: Mapping[str, Any] | None = None
    note: str | None = None


@dataclass(frozen=True)
class ClusterMsearch:
    """``GET <index>/_msearch``; result: the list of responses, in order."""

    index: str
    searches: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]]
    note: str | None = None


@dataclass(frozen=True)
class ClusterRequest:
    """Any other cluster request; result: the response body."""

    method: str
    path: str
    body: Any = None
    params: Mapping[str, Any] | None = None
    note: str | None = None


@dataclass(frozen=True)
class Score:
    """Rerank scores of ``texts`` within the config's budget; result: ``list[float]``.

    A driver lets ``RerankError``/``ConfigError`` reach the core, which falls back to fused order.
    """

    config: RerankConfig
    query: str
    texts: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Rewrite:
    """The query rewriter's text within its budget; result: a ``RewriteOutcome`` (never raises)."""

    rewriter: TimedRewriter
    text: str


@dataclass(frozen=True)
class Together:
    """Several operations at once; result: a tuple with each one's result or exception, in order."""

    ops: tuple[Op, ...]


Op = GetMapping | Embed | ClusterSearch | ClusterMsearch | ClusterRequest | Score | Rewrite | EmbedImage | Together
T = TypeVar("T")
Flow = Generator[Op, Any, T]
CLUSTER_OPS = (ClusterSearch, ClusterMsearch, ClusterRequest)


@dataclass
class Trace:
    """What one search sent: the requests (as the console shows them) and its sequential cluster round trips."""

    requests: list[ExecutedRequest] = field(default_factory=list)
    round_trips: int = 0
    # Shards that failed in the searches' answers: a cluster answers 200 without a shard whose every copy is
    # gone (a node left and the shard had no replica), so the hits would be a partial answer.
    shards_failed: int = 0

    def before(self, op: Op) -> None:
        """Count ``op``'s round trip (a :class:`Together` with cluster requests counts once) and record them."""
        inner = op.ops if isinstance(op, Together) else (op,)
        sent = [o for o in inner if isinstance(o, CLUSTER_OPS)]
        if sent:
            self.round_trips += 1
        self.requests.extend(executed(o) for o in sent)

    def after(self, op: Op, result: Any) -> None:
        """Count the failed shards of ``op``'s answer (each answer of a :class:`Together` or an ``_msearch``)."""
        if isinstance(op, Together) and isinstance(result, tuple):
            for inner, answer in zip(op.ops, result):
                self.after(inner, answer)
        elif isinstance(op, CLUSTER_OPS):
            answers = result if isinstance(result, list) else [result]
            for answer in answers:
                shards = answer.get("_shards") if isinstance(answer, Mapping) else None
                if isinstance(shards, Mapping):
                    self.shards_failed += int(shards.get("failed") or 0)


def executed(op: ClusterSearch | ClusterMsearch | ClusterRequest) -> ExecutedRequest:
    """The request ``op`` sends, as the console prints it (the path without its leading slash)."""
    if isinstance(op, ClusterSearch):
        params = {k: str(v) for k, v in (op.params or {}).items()}
        return ExecutedRequest(
            method="GET", path=f"{op.index}/_search", params=params, body=dict(op.body), note=op.note
        )
    if isinstance(op, ClusterMsearch):
        lines = [dict(line) for pair in op.searches for line in pair]
        return ExecutedRequest(method="GET", path=f"{op.index}/_msearch", ndjson=lines, note=op.note)
    params = {k: str(v) for k, v in (op.params or {}).items()}
    body = op.body if isinstance(op.body, dict) else None
    return ExecutedRequest(method=op.method, path=op.path.lstrip("/"), params=params, body=body, note=op.note)
