"""The relevance workbench in a real browser (Debian's chromium driven by Playwright) against real ES 9.

Search, compare, rate (keyboard and mouse), export; a document whose title holds ``<script>`` renders as text;
the exported BEIR folder gives back the grades and, through ``eval``'s own code, the nDCG@10 the page showed.
Screenshots go to ``tests/artifacts/workbench/`` (gitignored; ``docs/workbench.png`` is one of them).
Query vectors come from a table (as in test_hybrid_search.py); the cluster is real.
"""

from __future__ import annotations

import json
import re
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from pydantic import SecretStr

from connector.cluster.client import Cluster
from connector.cluster.detect import connect
from connector.quality import evaluate_search, read_beir
from connector.search import HybridSearch
from connector.workbench import WorkbenchServer, build_workbench, parse_side
from tests.integration.test_hybrid_search import QUERY_VECTORS, TableEmbedder, corpus, create_index

pytestmark = [pytest.mark.integration, pytest.mark.es9]

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts" / "workbench"
EVIL_TITLE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"> zapfire lantern'
SIDE_A = "mode:hybrid,fusion:linear,lw:0.7,vw:0.3,norm:min_max"
SIDE_B = "preset:bm25"
# The table's queries, and one that finds the document with the hostile title.
VECTORS = {**QUERY_VECTORS, "zapfire": [0.7, 0.7, 0.1, 0.0]}


def _chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail("the browser tests need Debian's chromium: run `make system-deps` (as root)")
    return path


@pytest.fixture(scope="module")
def es9(es9_url: str) -> Iterator[Cluster]:
    with connect(es9_url) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def shop(es9: Cluster, es9_url: str) -> Iterator[str]:
    import uuid

    name = f"test-i32-{uuid.uuid4().hex}"
    docs = corpus()
    docs.append(
        {
            "_id": "evil",
            "title": EVIL_TITLE,
            "text": "zapfire",
            "color": "red",
            "price": 1,
            "embedding": [0.7, 0.7, 0.1, 0.0],
        }
    )
    create_index(es9, name, docs)
    yield name
    for index in (name, f"{name}-judgments"):
        es9.delete_index(index)


def _searcher(es9: Cluster, index: str, form: Any = None) -> HybridSearch:
    return HybridSearch(es9, index, embedder=TableEmbedder(VECTORS), lexical_form=form)


@pytest.fixture(scope="module")
def server(es9: Cluster, shop: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkbenchServer]:
    workbench = build_workbench(
        es9,
        shop,
        make_search=lambda form: _searcher(es9, shop, form),
        export_dir=tmp_path_factory.mktemp("export") / "judgments",
        judgments_index=f"{shop}-judgments",
    )
    running = WorkbenchServer(workbench, port=0).start()
    yield running
    running.stop()


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
        yield launched
        launched.close()


def _url(server: WorkbenchServer, q: str) -> str:
    return f"{server.url}?{urlencode({'q': q, 'a': SIDE_A, 'b': SIDE_B})}"


def test_first_load_is_rendered_on_the_server_and_escapes_document_text(server: WorkbenchServer) -> None:
    with urllib.request.urlopen(_url(server, "camping gear"), timeout=30) as answer:
        page = answer.read().decode()
        csp = answer.headers["Content-Security-Policy"]
    assert page.count('<li class="hit"') == 20  # both lists, 10 hits each, without any script running
    with urllib.request.urlopen(_url(server, "zapfire"), timeout=30) as answer:
        page = answer.read().decode()
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in page
    assert "<script>window" not in page and "<img src=x" not in page
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp


def test_compare_rate_and_export_in_the_browser(browser: Any, server: WorkbenchServer, es9: Cluster, shop: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(_url(server, "waterproof tent"))
    a, b = page.locator('section[data-side="a"] li.hit'), page.locator('section[data-side="b"] li.hit')
    assert a.count() == 10 and b.count() == 6  # bm25: the 6 documents holding a query word
    assert page.locator('section[data-side="b"] li.hit').first.get_attribute("data-doc") == "d13"
    assert page.locator(".move-up, .move-down, .move-only").count() > 0  # the lists differ, and it shows
    assert page.locator('section[data-side="a"] svg.chart rect.sig-vector').count() > 0
    assert page.locator(".waterfall rect").count() >= 1

    page.fill("#rater", "alice")
    page.locator('section[data-side="a"] li.hit').first.focus()
    page.keyboard.press("3")  # rate the focused hit with the keyboard
    expect(page.locator('.ndcg[data-side="a"]')).not_to_have_text("\u2013")
    page.keyboard.press("j")
    page.keyboard.press("2")
    expect(page.locator("#status")).to_have_text(re.compile(r"^rated .* 2$"))
    page.locator('section[data-side="b"] li.hit').nth(2).locator("button.grade[data-grade='1']").click()
    expect(page.locator("#status")).to_have_text(re.compile(r"^rated .* 1$"))
    graded = {h.get_attribute("data-doc"): h for h in a.all()}
    first = a.first.get_attribute("data-doc")
    # the grade shows in both lists wherever the document is
    assert page.locator(f'li.hit[data-doc="{first}"] button.grade.on').first.inner_text() == "3"
    assert graded
    shown = {side: page.locator(f'.ndcg[data-side="{side}"]').inner_text() for side in ("a", "b")}
    page.screenshot(path=str(ARTIFACTS / "workbench.png"), full_page=True)

    page.click("#export")
    expect(page.locator("#status")).to_have_text(re.compile(r"^exported "))
    folder = Path(page.locator("#status").inner_text().split(" to ", 1)[1])
    dataset = read_beir(folder)
    (qid,) = dataset.queries
    assert dataset.queries[qid] == "waterproof tent"
    ids_a = a.evaluate_all("els => els.map(e => e.dataset.doc)")
    ids_b = b.evaluate_all("els => els.map(e => e.dataset.doc)")
    expected = {ids_a[0]: 3, ids_a[1]: 2, ids_b[2]: 1}
    assert dataset.qrels[qid] == expected

    # eval's own code on the export gives the figures the page showed
    search = _searcher(es9, shop)
    config = parse_side(SIDE_A, {})
    report_a = evaluate_search(search, dataset.queries, dataset.qrels, modes=("hybrid",), fusion=config.fusion())
    report_b = evaluate_search(search, dataset.queries, dataset.qrels, modes=("bm25",))
    assert f"{report_a.metrics['hybrid']['ndcg@10']:.4f}" == shown["a"]
    assert f"{report_b.metrics['bm25']['ndcg@10']:.4f}" == shown["b"]
    assert not dialogs
    page.close()


def test_a_script_in_a_title_never_runs(browser: Any, server: WorkbenchServer) -> None:
    page = browser.new_page()
    page.goto(_url(server, "zapfire"))
    evil = page.locator('li.hit[data-doc="evil"] .title').first
    assert evil.inner_text() == EVIL_TITLE
    assert page.evaluate("window.__pwned === undefined")
    page.screenshot(path=str(ARTIFACTS / "escaped-title.png"))
    page.close()


def test_disagreements_are_listed(browser: Any, server: WorkbenchServer) -> None:
    page = browser.new_page()
    page.goto(_url(server, "camping gear"))
    hit = page.locator('section[data-side="a"] li.hit').first
    for rater, grade in (("bob", "0"), ("carol", "3")):
        page.fill("#rater", rater)
        hit.locator(f"button.grade[data-grade='{grade}']").click()
        expect(page.locator("#status")).to_have_text(re.compile(rf"^rated .* {grade}$"))
    doc = hit.get_attribute("data-doc")
    assert page.locator("#disagreements li").first.inner_text() == f"{doc}: bob=0, carol=3"
    page.reload()  # the server renders them too
    assert page.locator("#disagreements li").first.inner_text() == f"{doc}: bob=0, carol=3"
    page.close()


def test_a_token_guards_the_workbench(es9: Cluster, shop: str) -> None:
    workbench = build_workbench(
        es9,
        shop,
        make_search=lambda form: _searcher(es9, shop, form),
        api_key=SecretStr("s3cret"),
        judgments_index=f"{shop}-judgments",
    )
    running = WorkbenchServer(workbench, port=0).start()
    try:
        request = urllib.request.Request(running.url.replace("/ui", "/ui/api/grades?q=x"))
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
        assert refused.value.code == 401
        request.add_header("Authorization", "Bearer s3cret")
        with urllib.request.urlopen(request, timeout=30) as answer:
            assert json.loads(answer.read())["grades"] == {}
    finally:
        running.stop()
