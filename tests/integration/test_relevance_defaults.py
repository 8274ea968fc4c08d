"""The lexical forms, ``load --analyzer`` and ``tune`` writing ``_meta`` that ``HybridSearch`` uses, on the real servers."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector import connect
from connector.cli import main
from connector.quality.commands import tune_dataset
from connector.quality.load import load_corpus, plain_index_body, read_beir
from connector.search import HybridSearch
from connector.search.models import LEXICAL_FORMS, FusionConfig
from mappings import VectorField
from mappings.analysis import ENGLISH_FALLBACK
from tests.fixtures.clusters import FLAVOR_PARAMS, url_for
from tests.integration.test_eval import DOCS, QUERIES, write_beir
from tests.integration.test_hybrid_search import TableEmbedder

pytestmark = [pytest.mark.integration]

# Words of the query spread over title and text: the product that has both is the one expected.
SHOP = [
    {"_id": "boots", "title": "Hiking boots", "text": "Waterproof leather, for long trails"},
    {"_id": "jacket", "title": "Waterproof jacket", "text": "A light shell for rain"},
    {"_id": "socks", "title": "Hiking socks", "text": "Merino wool socks"},
    {"_id": "tent", "title": "Dome tent", "text": "Sleeps two, waterproof fly"},
]


def _load_shop(cluster: object, index: str, analyzer: str) -> None:
    body = plain_index_body(cluster.capabilities, analyzer=analyzer)  # type: ignore[attr-defined]
    report = load_corpus(cluster, index, SHOP, index_body=body)  # type: ignore[arg-type]
    assert report.docs == len(SHOP) and report.failed == 0


def test_every_lexical_form_runs_and_finds_the_product(cluster_url: str, index_name: str) -> None:
    with connect(cluster_url) as cluster:
        _load_shop(cluster, index_name, "english")
        caps = cluster.capabilities
        forms = [f for f in LEXICAL_FORMS if f != "combined_fields" or caps.supports_combined_fields]
        assert ("combined_fields" in forms) == (caps.flavor == "elasticsearch" or caps.at_least(3, 2))
        for form in forms:
            for fields in ({"title": 1.0, "text": 1.0}, {"title": 2.0, "text": 1.0}):
                search = HybridSearch(cluster, index_name, lexical_form=form, lexical_fields=fields)  # type: ignore[arg-type]
                response = search.search("waterproof hiking boots", mode="bm25", source=False)
                assert response.ids[0] == "boots", (form, fields, response.ids)
                assert set(response.ids) >= {"boots", "jacket", "socks", "tent"}
        default = HybridSearch(cluster, index_name)
        form, _ = default.lexical_form
        assert form == ("combined_fields" if caps.supports_combined_fields else "cross_fields")
        assert default.search("waterproof hiking boots", mode="bm25", source=False).ids[0] == "boots"
        # user text is analyzed, never parsed: query syntax is just words
        odd = default.search('boots AND title:(x OR "unbalanced', mode="bm25", source=False)
        assert odd.ids[0] == "boots"


def test_load_analyzer_english_stems_and_keeps_a_keyword_subfield(
    cluster_url: str, index_name: str, tmp_path: Path
) -> None:
    dataset = write_beir(tmp_path / "beir")
    assert main(["load", "--dataset", str(dataset), "--index", index_name, "--url", cluster_url]) == 0
    with connect(cluster_url) as cluster:
        mapping = cluster.get_mapping(index_name)
        title = mapping["properties"]["title"]
        expected = "english" if cluster.capabilities.language_analyzers else ENGLISH_FALLBACK
        assert title["analyzer"] == expected == mapping["properties"]["text"]["analyzer"]
        assert mapping["properties"]["brand"]["analyzer"] == expected  # other strings: the same analyzer
        assert title["fields"]["keyword"]["type"] == "keyword"
        assert cluster.search(index_name, {"query": {"term": {"title.keyword": "tent pegs"}}})["hits"]["hits"]
        search = HybridSearch(cluster, index_name)
        # stopwords go on every server; stemming ("tents" -> "tent") where the language analyzers exist
        the_only = search.search("the", mode="bm25", source=False)
        assert the_only.ids == []
        # correct="off": the analyzer alone (spelling correction would turn the absent "tents" into "tent")
        plural = search.search("tents", mode="bm25", source=False, correct="off").ids
        if cluster.capabilities.language_analyzers:
            assert set(plural) == {"p1", "p5"}
        else:
            assert plural == []
    assert main(["load", "--dataset", str(dataset), "--index", index_name, "--url", cluster_url,
                 "--analyzer", "standard", "--replace"]) == 0  # fmt: skip
    with connect(cluster_url) as cluster:
        assert cluster.get_mapping(index_name)["properties"]["title"]["analyzer"] == "standard"


@pytest.fixture(params=[p for p in FLAVOR_PARAMS if p.id in ("es9", "os3")])
def tune_url(request: pytest.FixtureRequest) -> str:
    return url_for(request, str(request.param))


def test_tune_writes_meta_that_hybrid_search_then_uses(tune_url: str, index_name: str, tmp_path: Path) -> None:
    dataset = read_beir(write_beir(tmp_path / "esci-mini"))
    embedder = TableEmbedder({text: vector for text, vector in QUERIES.values()})
    with connect(tune_url) as cluster:
        vector = VectorField(dims=3, model_id="test/hand-made")
        body = plain_index_body(cluster.capabilities, analyzer="english", vector_fields=[vector])
        load_corpus(cluster, index_name, dataset.corpus_path, index_body=body, vectors={d[0]: d[3] for d in DOCS})
        cluster.put_mapping(index_name, {"_meta": {**cluster.get_mapping(index_name)["_meta"], "owner": "shop"}})
        report = tune_dataset(HybridSearch(cluster, index_name, embedder=embedder), dataset, bootstrap=50, seed=3)
        assert report.written
        meta = cluster.get_mapping(index_name)["_meta"]
        assert meta["owner"] == "shop" and meta["eshybrid"]["vector_fields"]["embedding"]["dims"] == 3
        stored = meta["eshybrid"]["search_defaults"]
        assert stored["judgments"]["name"] == "esci-mini" and stored["judgments"]["queries"] == 4
        assert stored["judgments"]["date"] and stored["chosen_at"].endswith("Z")
        assert stored["fusion"] == report.fusion.best.fusion.model_dump()
        assert stored["lexical"] == report.lexical.chosen.model_dump()

        search = HybridSearch(cluster, index_name, embedder=embedder)
        assert search.fusion == report.fusion.best.fusion
        assert search.lexical_form[0] == report.lexical.chosen.form
        assert search.search("waterproof tent", size=3, source=False).fusion == report.fusion.best.fusion
        assert search.search("waterproof tent", size=3, source=False).ids
        # explicit arguments still win over the index's recommendation
        mine = FusionConfig(method="rrf", rank_constant=7)
        assert HybridSearch(cluster, index_name, embedder=embedder, fusion=mine).fusion == mine
        assert HybridSearch(cluster, index_name, lexical_form="cross_fields").lexical_form[0] == "cross_fields"
