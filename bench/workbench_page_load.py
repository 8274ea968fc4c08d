"""Workbench page load: a 10-hit comparison in the browser vs the two searches' own time, one run.

The index is the BEIR data set's corpus with its cached embeddings (as in bench/hybrid_quality.py). The
workbench serves it in this process (``eshybrid workbench``'s server); Chromium (Debian's, through Playwright) loads
``/ui?q=<query>&a=preset:default&b=preset:bm25`` (hybrid with the library default fusion vs bm25, 10 hits a
side). Page load = the browser's navigation timing, ``loadEventEnd - startTime`` (request, server-side
searches and rendering, the script and style sheet, layout).

The rule, written before any run: per query, the page load and the same two searches called directly
(``HybridSearch.search`` with the sides' options, one after the other, wall time of both) are measured in a
seeded random order after one warm-up round over every query (so query vectors are cached for both, and
neither pays a first embedding); the figure is ``ratio = median(page_ms) / median(searches_ms)``.
Goal: ratio <= 1.5. The searches' time is the server's own cost of the two lists; the page adds the grades
read, rendering, transfer and the browser's work (and saves by running the two sides at once).

The floor, for reading the figure (not the goal): a navigation of the same browser to a small page of the
same server with the same style sheet and no search (``/ui/login``), measured in the same seeded order:
``floor_p50`` is what any page load costs here before the workbench does anything;
``over_floor_ratio = (median(page) - median(floor)) / median(searches)``.

    .venv/bin/python bench/workbench_page_load.py [--queries 30] [--embed-url URL]
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hybrid_quality as hq  # noqa: E402

from bench._servers import cluster as bench_cluster  # noqa: E402
from bench._servers import cluster_args  # noqa: E402
from connector.quality.load import read_beir  # noqa: E402
from connector.workbench import WorkbenchServer, build_workbench, parse_side  # noqa: E402

SIDES = {"a": "preset:default", "b": "preset:bm25"}


def _page_ms(page: Any, url: str) -> float:
    page.goto(url, wait_until="load")
    timing = page.evaluate(
        "() => { const n = performance.getEntriesByType('navigation')[0]; return n.loadEventEnd - n.startTime; }"
    )
    return float(timing)


def _searches_ms(server: WorkbenchServer, text: str) -> float:
    workbench = server.workbench
    started = time.perf_counter()
    for spec in SIDES.values():
        side = parse_side(spec, workbench.presets)
        search = workbench.search_for(side.lexical_form)  # the page's own instances (same caches)
        request = side.request(text, size=workbench.size)
        search.search(request.text, **request.options())
    return (time.perf_counter() - started) * 1000


def measure(server: WorkbenchServer, queries: list[str], *, seed: int) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("needs Debian's chromium (make system-deps)")
    rng = random.Random(seed)
    page_ms: list[float] = []
    searches_ms: list[float] = []
    floor_ms: list[float] = []
    floor_url = server.url + "/login"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page()
        urls = {text: f"{server.url}?{urlencode({'q': text, **SIDES})}" for text in queries}
        for text in queries:  # warm-up: query vectors cached, connections open, static files cached
            _page_ms(page, urls[text])
            _searches_ms(server, text)
        for text in queries:
            order = ["page", "searches", "floor"]
            rng.shuffle(order)
            for what in order:
                if what == "page":
                    page_ms.append(_page_ms(page, urls[text]))
                elif what == "floor":
                    floor_ms.append(_page_ms(page, floor_url))
                else:
                    searches_ms.append(_searches_ms(server, text))
        browser.close()
    page_p50, searches_p50 = statistics.median(page_ms), statistics.median(searches_ms)
    floor_p50 = statistics.median(floor_ms)
    return {
        "page_p50": page_p50,
        "searches_p50": searches_p50,
        "ratio": page_p50 / searches_p50,
        "floor_p50": floor_p50,
        "over_floor_ratio": (page_p50 - floor_p50) / searches_p50,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, default=hq.DEFAULT_DATASET)
    cluster_args(parser, ("es9",))
    parser.add_argument("--embed-url", default=os.environ.get("ESHYBRID_TEST_EMBED_URL"))
    parser.add_argument("--queries", type=int, default=30, help="queries measured (a seeded sample)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with bench_cluster("es9", args.es9_url, label="bench-workbench") as url:
        return run(args, url)


def run(args: argparse.Namespace, url: str) -> int:
    """The bench on the ES 9 at ``url`` (given or started by :mod:`bench._servers`)."""
    embedder = hq.make_embedder(args.embed_url)
    vectors = hq.corpus_embeddings(args.dataset, embedder, source=args.embed_url or "in-process sentence-transformers")
    cluster = hq.bench_connect(url)
    index = hq.load_index(cluster, args.dataset, vectors, prefix="bench-workbench", analyzer="english")
    judgments = f"{index}-judgments"
    try:
        texts = sorted(read_beir(args.dataset).queries.values())
        queries = random.Random(args.seed).sample(texts, min(args.queries, len(texts)))
        workbench = build_workbench(cluster, index, embedder=embedder, judgments_index=judgments, export_dir="/tmp")
        server = WorkbenchServer(workbench, port=0).start()
        try:
            stats = measure(server, queries, seed=args.seed)
        finally:
            server.stop()
    finally:
        cluster.delete_index(index)
        cluster.delete_index(judgments)
    load = os.getloadavg()
    print(
        f"# {len(queries)} queries: page p50 {stats['page_p50']:.1f} ms, two searches p50 {stats['searches_p50']:.1f} ms, "
        f"browser floor p50 {stats['floor_p50']:.1f} ms"
    )
    print(f"load average: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(
        f"RESULT workbench_page_p50_ms={stats['page_p50']:.2f} workbench_searches_p50_ms={stats['searches_p50']:.2f} "
        f"workbench_page_vs_searches_ratio={stats['ratio']:.3f} workbench_floor_p50_ms={stats['floor_p50']:.2f} "
        f"workbench_over_floor_ratio={stats['over_floor_ratio']:.3f} queries={len(queries)} load1={load[0]:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
