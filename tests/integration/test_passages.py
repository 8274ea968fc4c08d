"""Passages on the real servers: a fact in the 4th passage of a long text is found by passage kNN only.

Every server (ES 9, ES 8, OpenSearch 3, OpenSearch 2) with the real embedding service: migration 0006
adds the nested field, a passage-mode backfill fills it (the service's tokenizer cuts the text), the
nested kNN leg finds the long product by its 4th passage with ``inner_hits`` naming that passage, the
whole-document vector (truncated at 256 tokens) does not; top-level filters pre-filter; a re-run is
incremental and a shortened text loses its old passages.
"""

from __future__ import annotations

from typing import Any

import pytest

from connector.cluster.client import Cluster, JsonDict
from connector.jobs.backfill import run_backfill
from connector.jobs.passages import PassagePolicy
from connector.search import HybridSearch
from connector.search.models import DEFAULT_FUSION
from connector.search.passages import best_passage, passage_knn_leg_body
from connector.search.query_builder import knn_leg_body, os_missing_policy, pick_server_form
from connector.services.embedding import EmbeddingClient
from mappings import VectorField
from mappings.passages import build_add_passages_field_body
from tests.integration._jobs_helpers import (  # noqa: F401 - embedder: a fixture
    TEMPLATE,
    TEXT_FIELDS,
    add_vector_field,
    backfill_config,
    bulk_index,
    create_products,
    embedder,
)

pytestmark = [pytest.mark.integration, pytest.mark.ray]

FACT_QUERY = "a lid carved from volcanic basalt quarried in Iceland"
_FILLER = [
    "This electric kettle boils a full litre of water in about three minutes on a standard outlet",
    "The brushed steel body stays cool to the touch thanks to a double wall with an air gap inside",
    "A blue light ring glows while the water heats and switches off with a soft click when done",
    "The cord wraps around the base, which turns freely so left and right handed people can pour",
    "An automatic shut off stops the element when the kettle runs dry or is lifted from the base",
    "The spout has a removable mesh filter that catches scale and rinses clean under the tap",
    "A window on the side shows the water level with marks for one cup and for the full litre",
    "The handle is wide enough for a gloved hand and does not get hot during a long boil",
    "The element is hidden under a flat steel plate that is easy to wipe after every use",
    "Two temperature presets suit green tea at eighty degrees and black tea or coffee at a full boil",
    "A keep warm mode holds the chosen temperature for half an hour before the kettle turns itself off",
    "Rubber feet under the base keep it from sliding on a wet counter or a smooth stone worktop",
    "A quiet boil setting slows the last minute of heating so the kettle hisses less in the early morning",
]
_FACT = "The lid is carved from volcanic basalt quarried in Iceland"
_TAIL = ["Each basalt lid is polished by hand and sealed with food safe oil"]
DECOYS: dict[str, JsonDict] = {
    "d1": {"title": "Basalt stone coaster set", "description": "Four coasters cut from dark stone"},
    "d2": {"title": "Volcanic lava rocks for gas grills", "description": "Porous rock spreads the heat"},
    "d3": {"title": "Icelandic wool blanket", "description": "Warm throw knitted from lopi wool"},
}
# Sentences of ~20 tokens, 4 per passage of <= 90 tokens (no overlap): the fact (token ~261 of the text) is in
# passage 4 only, past the 254 text tokens a whole-document vector reads (256 with [CLS] and [SEP]).
POLICY = PassagePolicy(max_tokens=90, overlap_sentences=0, max_passages=16)


def long_product() -> JsonDict:
    sentences = _FILLER + [_FACT] + _TAIL
    return {"title": "Nordic steel kettle", "description": ". ".join(sentences) + ".", "sku": "LONG"}


def _add_passages_field(cluster: Cluster, index: str, model_id: str) -> None:
    """What migration 0006 sends (the revision itself runs in test_migrations, after the revisions before it)."""
    field = VectorField("passages", dims=384, model_id=model_id, source_fields=TEXT_FIELDS, template=TEMPLATE)
    body = build_add_passages_field_body(
        cluster.capabilities,
        existing_mapping=cluster.get_mapping(index),
        field=field,
        index_settings=cluster.request("GET", f"/{index}/_settings").body[index]["settings"],
    )
    cluster.request("PUT", f"/{index}/_mapping", body=body)


def _search(cluster: Cluster, index: str, body: JsonDict) -> list[JsonDict]:
    return list(cluster.request("POST", f"/{index}/_search", body=body).body["hits"]["hits"])


def _passage_hits(cluster: Cluster, index: str, vector: list[float], **kw: Any) -> list[JsonDict]:
    caps = cluster.capabilities
    body = passage_knn_leg_body(vector, knn_shape=caps.knn_leg_shape, path="passages", k=3, num_candidates=50, **kw)
    return _search(cluster, index, body)


def test_fact_in_the_fourth_passage(cluster: Cluster, index_name: str, embedder: EmbeddingClient) -> None:
    create_products(cluster, index_name, 20, docs={"long": long_product(), **DECOYS})
    model_id = embedder.info().model_id
    add_vector_field(cluster, index_name, model_id)
    _add_passages_field(cluster, index_name, model_id)
    run_backfill(cluster, backfill_config(index_name), embedder=embedder)
    summary = run_backfill(
        cluster, backfill_config(index_name, vector_field="passages", passages=POLICY), embedder=embedder
    )
    assert summary.main.updated == 24 and summary.main.dead_lettered == 0
    cluster.refresh(index_name)

    vector = embedder.embed_query(FACT_QUERY)
    whole = _search(
        cluster,
        index_name,
        knn_leg_body(vector, knn_shape=cluster.capabilities.knn_leg_shape, field="embedding", k=3, num_candidates=50),
    )
    assert "long" not in [h["_id"] for h in whole]

    hits = _passage_hits(cluster, index_name, vector)
    assert hits[0]["_id"] == "long"
    assert len({h["_id"] for h in hits}) == len(hits)  # one hit per document
    match = best_passage(hits[0], "passages")
    assert match is not None and match.offset == 3 and match.text is not None and "basalt" in match.text
    text = long_product()["title"] + "\n" + long_product()["description"]
    assert match.start is not None and match.end is not None
    assert "The lid is carved" in text[match.start : match.end]
    assert match.score == pytest.approx(hits[0]["_score"])

    # The library: vector_field="passages" searches by best passage; explain names the passage.
    search = HybridSearch(cluster, index_name, embedder=embedder, vector_field="passages", max_depth=20)
    response = search.search(FACT_QUERY, mode="knn", explain=True, size=3)
    assert response.ids[0] == "long"
    passage = response.hits[0].explanation.passage  # type: ignore[union-attr]
    assert passage is not None and passage.offset == 3
    caps = cluster.capabilities
    for strategy in ("client", "server"):
        if (
            strategy == "server"
            and pick_server_form(caps, DEFAULT_FUSION, os_missing_policy=os_missing_policy(caps)) is None
        ):
            continue  # no one-request form computes the default fusion on this server
        hybrid = search.search(FACT_QUERY, mode="hybrid", explain=True, size=20, strategy=strategy)  # type: ignore[arg-type]
        assert "long" in hybrid.ids and len(set(hybrid.ids)) == len(hybrid.ids)
        long_hit = hybrid.hits[hybrid.ids.index("long")]
        # OpenSearch 2.19's hybrid query returns no inner_hits (3.x does): no passage there, server-side.
        with_inner_hits = hybrid.server_form == "es_query_knn" or (
            hybrid.server_form == "os_hybrid_query" and caps.at_least(3, 0)
        )
        if strategy == "client" or with_inner_hits:
            assert long_hit.explanation is not None and long_hit.explanation.passage is not None

    # A top-level filter filters the parents: k hits still come back (pre-filter), none of them the long product.
    filtered = _passage_hits(cluster, index_name, vector, filters=[{"bool": {"must_not": {"term": {"sku": "LONG"}}}}])
    assert "long" not in [h["_id"] for h in filtered]
    # OpenSearch 2.19 post-filters a must_not (see connector.search.passages): fewer than k may come back.
    assert len(filtered) == 3 or (caps.flavor == "opensearch" and not caps.at_least(3, 0))

    # Incremental: nothing changed, nothing embedded; a shortened text loses its old passages.
    again = run_backfill(
        cluster, backfill_config(index_name, vector_field="passages", passages=POLICY), embedder=embedder
    )
    assert again.main.skipped == 24 and again.main.updated == 0
    bulk_index(cluster, index_name, {"long": {**long_product(), "description": _FILLER[0] + "."}})
    run_backfill(cluster, backfill_config(index_name, vector_field="passages", passages=POLICY), embedder=embedder)
    cluster.refresh(index_name)
    source = cluster.request("GET", f"/{index_name}/_doc/long").body["_source"]
    assert [p["start"] for p in source["passages"]] == [0]
    meta = cluster.get_mapping(index_name)["_meta"]["eshybrid"]["passage_fields"]["passages"]["cut"]
    assert meta["max_tokens"] == 90 and meta["model_max_length"] == embedder.info().max_length
