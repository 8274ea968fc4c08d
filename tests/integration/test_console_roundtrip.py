"""Dev Tools round trip: the text `eshybrid search --console` prints, parsed the way Kibana's /
Dashboards' console parses it and sent to the real cluster, gives the same hits as the search.

The index is the demo catalogue (examples/catalogue) with vectors from the real embedding
service (Ray Serve, CPU), on Elasticsearch 9 and OpenSearch 3.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from connector import connect
from connector.cli import main
from connector.cluster.client import Cluster
from connector.kibana import demo_index_body
from connector.search.correction import correction_from, evidence_of
from connector.search.fusion import LegHit, fuse, rank_leg
from connector.search.models import DEFAULT_FUSION, FusionConfig
from connector.services.embedding import EmbeddingClient

pytestmark = [pytest.mark.integration, pytest.mark.ray]

REPO = Path(__file__).resolve().parents[2]
CATALOGUE = REPO / "examples" / "catalogue" / "corpus.jsonl"
SIZE = 5
_REQUEST_LINE = re.compile(r"^(GET|POST|PUT|DELETE|HEAD|PATCH)\s+(\S+)\s*$", re.IGNORECASE)


# -- the console, as Kibana reads it ---------------------------------------------------


@dataclass
class ConsoleRequest:
    method: str
    path: str  # with its query string, no leading slash
    documents: list[Any] = field(default_factory=list)  # one: a JSON body; several: ndjson lines


def parse_console(text: str) -> list[ConsoleRequest]:
    """Split console text into requests: a ``METHOD path`` line, then the JSON documents under it
    (a pretty-printed body or one document per line); ``#`` and ``//`` lines are comments."""
    requests: list[ConsoleRequest] = []
    body_lines: list[str] = []

    def close() -> None:
        if requests:
            requests[-1].documents = _json_documents("\n".join(body_lines))
        body_lines.clear()

    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(("#", "//")):
            continue
        match = _REQUEST_LINE.match(stripped)
        if match:
            close()
            requests.append(ConsoleRequest(method=match.group(1).upper(), path=match.group(2).lstrip("/")))
        elif stripped:
            assert requests, f"console text has a body line before any request: {line!r}"
            body_lines.append(line)
    close()
    return requests


def _json_documents(text: str) -> list[Any]:
    decoder, documents, pos = json.JSONDecoder(), [], 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos >= len(text):
            return documents
        document, pos = decoder.raw_decode(text, pos)
        documents.append(document)


def send(cluster: Cluster, request: ConsoleRequest) -> Any:
    """What the console does on Ctrl+Enter: one JSON body, or ndjson for several documents."""
    ndjson = len(request.documents) > 1
    body = request.documents if ndjson else (request.documents[0] if request.documents else None)
    return cluster.request(request.method, "/" + request.path, body=body, ndjson=ndjson).body


# -- fixtures ----------------------------------------------------------------------------


@pytest.fixture(params=[pytest.param("es9", marks=pytest.mark.es9), pytest.param("os3", marks=pytest.mark.os3)])
def url(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture
def catalogue_index(url: str, index_name: str, embed_url: str) -> Iterator[tuple[Cluster, str]]:
    """The demo catalogue indexed with BM25 text and vectors from the real embedding service."""
    docs = [json.loads(line) for line in CATALOGUE.read_text(encoding="utf-8").splitlines() if line.strip()]
    with connect(url) as cluster, EmbeddingClient(embed_url) as embedder:
        cluster.create_index(index_name, demo_index_body(cluster.capabilities))
        vectors = embedder.embed_documents([f"{d['title']}\n{d['text']}" for d in docs])
        model_id = embedder.info().model_id
        lines: list[dict[str, Any]] = []
        for doc, vector in zip(docs, vectors, strict=True):
            source = {k: v for k, v in doc.items() if k != "_id"}
            source["embedding"] = vector
            source["eshybrid_meta"] = {"embedding": {"model_id": model_id}}
            lines += [{"index": {"_index": index_name, "_id": doc["_id"]}}, source]
        result = cluster.bulk(lines, refresh=True)
        assert not result["errors"], result
        yield cluster, index_name


# -- the round trip --------------------------------------------------------------------------


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    capsys.readouterr()
    assert main(list(args)) == 0
    return capsys.readouterr().out


def _replayed_ids(cluster: Cluster, requests: list[ConsoleRequest], fusion: FusionConfig, text: str) -> list[str]:
    """Send every request; return the page's ids as the cluster's own answers give them (the adaptive fusion's
    evidence, the query's word counts, read from the replayed spelling-correction answer)."""
    answers = [send(cluster, r) for r in requests]
    last, answer = requests[-1], answers[-1]
    endpoint = last.path.split("?")[0].rsplit("/", 1)[-1]
    # Client-side: the legs (each fetching max_depth candidates, with their sources) come last, or an _mget.
    if endpoint in ("_mget", "_msearch") or last.documents[-1].get("size") != SIZE:
        # The legs are fused again here and must give the page that was answered.
        legs: dict[str, list[LegHit]] = {}
        sources: dict[str, Any] = {}
        evidence = None
        for request, response in zip(requests, answers):
            endpoint = request.path.split("?")[0].rsplit("/", 1)[-1]
            if endpoint not in ("_search", "_msearch"):
                continue
            bodies = request.documents[1::2] if endpoint == "_msearch" else request.documents
            results = response["responses"] if "responses" in response else [response]
            for body, result in zip(bodies, results):
                if "suggest" in body:
                    correction = correction_from(text, result, mode="auto", suggester="term")
                    evidence = evidence_of(text, correction)
                    continue
                leg = "vector" if '"knn"' in json.dumps(body) else "lexical"
                sources.update({h["_id"]: h.get("_source") for h in result["hits"]["hits"] if h.get("_source")})
                if body.get("_source") is not False and "suggest" not in body:
                    continue  # a leg's top hits again, with their sources (not the leg)
                legs[leg] = [LegHit(id=h["_id"], score=float(h["_score"] or 0.0), index=h["_index"])
                             for h in result["hits"]["hits"]]  # fmt: skip
        if len(legs) > 1:
            fused = [d.id for d in fuse(legs, fusion, evidence=evidence)]
        else:  # one leg: its own order (score, then _id)
            fused = [h.id for h in rank_leg(next(iter(legs.values())))]
        if "docs" in answer:
            sources = {d["_id"]: d["_source"] for d in answer["docs"] if d.get("found")}
        assert all(sources.get(i) for i in fused[:SIZE]), "the page's sources are not in what the console shows"
        return fused[:SIZE]
    return [h["_id"] for h in answer["hits"]["hits"]]


@pytest.mark.parametrize(
    "mode, options",
    [
        ("bm25", []),
        ("knn", []),
        ("hybrid", ["--strategy", "client"]),
        ("hybrid", ["--strategy", "auto", "--fusion", "linear", "--normalizer", "min_max"]),
    ],
    ids=["bm25", "knn", "hybrid-client", "hybrid-auto-linear"],
)
def test_console_text_replays_to_the_same_hits(
    catalogue_index: tuple[Cluster, str], url: str, embed_url: str, capsys: pytest.CaptureFixture[str],
    mode: str, options: list[str],
) -> None:  # fmt: skip
    cluster, index = catalogue_index
    common = ["search", "warm tent for winter camping", "--index", index, "--mode", mode, "--size", str(SIZE),
              "--url", url, "--embed-url", embed_url, *options]  # fmt: skip
    console = _cli(capsys, *common, "--console")
    expected = [hit["id"] for hit in json.loads(_cli(capsys, *common, "--json"))["hits"]]
    assert len(expected) == SIZE

    requests = parse_console(console)
    assert requests, console
    for request in requests:
        assert request.method in ("GET", "POST", "PUT"), request
    # no fusion flag: the library default (the catalogue index has no tune recommendation)
    fusion = FusionConfig(method="linear", normalizer="min_max") if "linear" in options else DEFAULT_FUSION
    assert _replayed_ids(cluster, requests, fusion, "warm tent for winter camping") == expected


def test_parse_console_reads_bodies_and_ndjson() -> None:
    text = (
        '# eshybrid search: mode=hybrid\n\nGET idx/_msearch\n{"index":"idx"}\n{"size":2}\n\n'
        '// a comment\nPOST /idx/_search?search_pipeline=p\n{\n  "query": {"match_all": {}},\n'
        '  "knn": [1.0,2.0]\n}\n\nPUT _search/pipeline/p\n{}\n'
    )
    requests = parse_console(text)
    assert [(r.method, r.path) for r in requests] == [
        ("GET", "idx/_msearch"), ("POST", "idx/_search?search_pipeline=p"), ("PUT", "_search/pipeline/p")
    ]  # fmt: skip
    assert requests[0].documents == [{"index": "idx"}, {"size": 2}]
    assert requests[1].documents == [{"query": {"match_all": {}}, "knn": [1.0, 2.0]}]
    assert requests[2].documents == [{}]
