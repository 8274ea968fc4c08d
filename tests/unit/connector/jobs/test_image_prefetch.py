"""The image backfill's prefetch: a budget of images and bytes held ahead, the backlog, take order; and the
embedder streaming a page a request at a time (fake downloads and a fake service, no network)."""

from __future__ import annotations

import base64
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future

import httpx
import pytest

from connector.errors import ConfigError
from connector.jobs.image_prefetch import ImagePrefetch
from connector.jobs.images import ImageEmbedder, ImageFetcher, ImageFetchSettings, ImageRejected


class _Downloads:
    """``submit`` as the fetcher's: records the order, leaves each future for the test to finish."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.futures: dict[str, Future[bytes | ImageRejected]] = {}

    def submit(self, ref: str) -> Future[bytes | ImageRejected]:
        self.started.append(ref)
        future: Future[bytes | ImageRejected] = Future()
        self.futures[ref] = future
        return future

    def finish(self, ref: str, size: int) -> None:
        self.futures[ref].set_result(b"x" * size)


def test_prefetch_holds_one_budget_of_images_and_fills_from_the_backlog() -> None:
    downloads = _Downloads()
    prefetch = ImagePrefetch(downloads.submit, max_images=2, max_bytes=10_000)
    prefetch.prefetch(["a", "b", "c"])
    prefetch.prefetch(["d", "b"])  # b is already held: not twice
    assert downloads.started == ["a", "b"] and prefetch.held == (2, 0)
    downloads.finish("a", 100)
    assert prefetch.held == (2, 100)

    # The page of a and x: a handed over, x started at once (before the backlog), then the backlog's c.
    futures = prefetch.take(["a", "x"])
    assert futures[0] is downloads.futures["a"] and futures[1] is downloads.futures["x"]
    assert downloads.started == ["a", "b", "x", "c"] and prefetch.held == (2, 0)

    # d is taken before its turn: started once by the take, dropped from the backlog.
    prefetch.take(["d"])
    prefetch.take(["b", "c"])
    assert downloads.started == ["a", "b", "x", "c", "d"] and prefetch.held == (0, 0)


def test_prefetch_stops_at_the_byte_budget_and_off_at_zero() -> None:
    downloads = _Downloads()
    prefetch = ImagePrefetch(downloads.submit, max_images=10, max_bytes=150)
    prefetch.prefetch(["a"])
    downloads.finish("a", 200)  # over the bytes: nothing more starts
    prefetch.prefetch(["b", "c"])
    assert downloads.started == ["a"] and prefetch.held == (1, 200)
    prefetch.take(["a"])
    assert downloads.started == ["a", "b", "c"]

    off = _Downloads()
    ImagePrefetch(off.submit, max_images=0, max_bytes=150).prefetch(["a", "b"])
    assert off.started == []


def test_a_download_done_before_it_is_held_counts_once() -> None:
    def done_at_once(ref: str) -> Future[bytes | ImageRejected]:
        future: Future[bytes | ImageRejected] = Future()
        future.set_result(b"12345")
        return future

    prefetch = ImagePrefetch(done_at_once, max_images=3, max_bytes=1000)
    prefetch.prefetch(["a", "b"])
    assert prefetch.held == (2, 10)
    assert [f.result() for f in prefetch.take(["b", "a"])] == [b"12345", b"12345"] and prefetch.held == (0, 0)


class _Service:
    batch_size = 2
    max_concurrency = 2

    def __init__(self) -> None:
        self.requests: list[list[bytes]] = []
        self._lock = threading.Lock()

    def embed_images(self, images: Sequence[Mapping[str, str]]) -> list[list[float]]:
        raws = [base64.b64decode(i["data"]) for i in images]
        with self._lock:
            self.requests.append(raws)
        return [[float(len(raw))] for raw in raws]


def test_embedder_sends_a_page_in_requests_and_takes_what_was_prefetched() -> None:
    calls: dict[str, int] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        name = request.url.path.strip("/")
        calls[name] = calls.get(name, 0) + 1
        if name == "gone":
            return httpx.Response(404)
        return httpx.Response(200, headers={"content-type": "image/png"}, content=name.encode())

    fetcher = ImageFetcher(ImageFetchSettings(max_retries=0), transport=httpx.MockTransport(handler))
    service = _Service()
    embedder = ImageEmbedder(service, fetcher, prefetch_images=3)  # type: ignore[arg-type]
    page = ["http://i/a", "http://i/bb", "http://i/ccc", "http://i/dddd", "http://i/eeeee"]
    embedder.prefetch(page)
    assert embedder.embed_documents(page) == [[1.0], [2.0], [3.0], [4.0], [5.0]]
    assert sorted(len(r) for r in service.requests) == [1, 2, 2], "requests of the client's batch_size"
    assert all(n == 1 for n in calls.values()) and len(calls) == 5, "prefetched images are not fetched again"
    assert embedder._prefetch.held == (0, 0)  # noqa: SLF001 - the budget is free again
    try:
        embedder.embed_documents(["http://i/gone", "http://i/a"])
    except ImageRejected as e:
        assert e.reason_code == "image_unreachable"
    else:
        raise AssertionError("a failed download is the page's ImageRejected")
    embedder.close()


def test_fetch_settings_refuse_a_negative_prefetch() -> None:

    assert ImageFetchSettings(prefetch_images=0).prefetch_images == 0
    for bad in ({"prefetch_images": -1}, {"prefetch_bytes": -1}):
        with pytest.raises(ConfigError, match="prefetch"):
            ImageFetchSettings(**bad)  # type: ignore[arg-type]
