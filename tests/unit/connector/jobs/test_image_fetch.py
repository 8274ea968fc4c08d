"""Image fetching for an image backfill (httpx MockTransport, no network) and the page-splitting embedder."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from connector.errors import EmbeddingRequestError
from connector.jobs.images import ImageEmbedder, ImageFetcher, ImageFetchSettings, ImageRejected

PNG = b"\x89PNG fake bytes"


def _fetcher(routes: Mapping[str, Any], calls: dict[str, int], **options: Any) -> ImageFetcher:
    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        calls[path] = calls.get(path, 0) + 1
        answer = routes.get(path, httpx.Response(404))
        if callable(answer):
            return answer(calls[path])  # type: ignore[no-any-return]
        return answer  # type: ignore[no-any-return]

    settings = ImageFetchSettings(max_bytes=1000, max_retries=2, max_backoff_s=0.01, **options)
    return ImageFetcher(settings, transport=httpx.MockTransport(handler))


def _image(status: int = 200, body: bytes = PNG, kind: str = "image/png") -> httpx.Response:
    return httpx.Response(status, headers={"content-type": kind}, content=body)


def test_fetch_retries_5xx_and_timeouts_not_4xx() -> None:
    def timeout_once(n: int) -> httpx.Response:
        if n == 1:
            raise httpx.ReadTimeout("slow")
        return _image()

    routes = {
        "/ok.png": _image(),
        "/flaky.png": lambda n: _image(503) if n == 1 else _image(),
        "/slow.png": timeout_once,
        "/down.png": _image(500),
        "/page": _image(kind="text/html"),
        "/big": _image(body=b"\0" * 5000),
    }
    calls: dict[str, int] = {}
    fetcher = _fetcher(routes, calls)
    got = fetcher.fetch_many(
        [f"http://img/{p}" for p in ("ok.png", "flaky.png", "slow.png", "down.png", "missing", "page", "big")]
    )
    fetcher.close()
    assert got[:3] == [PNG, PNG, PNG]
    codes = [r.reason_code for r in got[3:] if isinstance(r, ImageRejected)]
    assert codes == ["image_unreachable", "image_unreachable", "image_not_an_image", "image_too_large"]
    assert calls["/down.png"] == 3 and calls["/missing"] == 1 and calls["/flaky.png"] == 2


def test_fetch_paths(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(PNG)
    fetcher = _fetcher({}, {}, path_root=str(tmp_path))
    assert fetcher.fetch("a.png") == PNG and fetcher.fetch(str(tmp_path / "a.png")) == PNG
    with pytest.raises(ImageRejected, match="cannot read") as info:
        fetcher.fetch("nope.png")
    assert info.value.reason_code == "image_unreachable"
    fetcher.close()


class _FakeImageService:
    """Stands in for EmbeddingClient.embed_images: refuses the bytes b'bad' like the service's 422."""

    def __init__(self) -> None:
        self.requests: list[int] = []

    def embed_images(self, images: Sequence[Mapping[str, str]]) -> list[list[float]]:
        self.requests.append(len(images))
        raws = [base64.b64decode(i["data"]) for i in images]
        if b"bad" in raws:
            raise EmbeddingRequestError("input[0].image.data: not an image", status=422)
        return [[float(len(raw)), 0.0] for raw in raws]


def test_image_embedder_splits_a_page_without_refetching() -> None:
    routes = {"/a": _image(body=b"aa"), "/b": _image(body=b"bad"), "/c": _image(body=b"cccc")}
    calls: dict[str, int] = {}
    service = _FakeImageService()
    embedder = ImageEmbedder(service, _fetcher(routes, calls))  # type: ignore[arg-type]
    refs = ["http://i/a", "http://i/b", "http://i/c", "http://i/missing"]
    with pytest.raises(ImageRejected):
        embedder.embed_documents(refs)
    # The pipeline splits the page; every half is answered from what the first call learnt.
    assert embedder.embed_documents(refs[:1]) == [[2.0, 0.0]]
    with pytest.raises(ImageRejected) as bad:
        embedder.embed_documents(refs[1:2])
    assert bad.value.reason_code == "image_not_an_image"
    assert embedder.embed_documents(refs[2:3]) == [[4.0, 0.0]]
    with pytest.raises(ImageRejected) as missing:
        embedder.embed_documents(refs[3:])
    assert missing.value.reason_code == "image_unreachable" and "HTTP 404" in str(missing.value)
    assert calls == {"/a": 1, "/b": 1, "/c": 1, "/missing": 1}
    assert embedder.embed_documents(refs[:1]) == [[2.0, 0.0]]  # handed out, then forgotten: fetched again
    assert calls["/a"] == 2
    embedder.close()
