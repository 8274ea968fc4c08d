"""Image fetching for an image backfill (httpx MockTransport, no network) and the page-splitting embedder."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from connector.errors import EmbeddingRequestError
from connector.jobs.backfill import InPlaceMode
from connector.jobs.images import (
    ImageEmbedder,
    ImageFetcher,
    ImageFetchSettings,
    ImageRejected,
    ImageVersions,
    http_validator,
    versioned_ref,
)
from connector.texts import TextPolicy, text_hash
from mappings import BOOKKEEPING_FIELD

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

    batch_size = 64
    max_concurrency = 2

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


def test_http_validator_prefers_etag_then_last_modified() -> None:
    assert http_validator({"ETag": 'W/"abc"', "Last-Modified": "Tue"}) == 'etag:W/"abc"'
    lm = http_validator({"last-modified": "Tue, 01 Dec 2026 10:00:00 GMT", "content-length": "12"})
    assert lm == "last-modified:Tue, 01 Dec 2026 10:00:00 GMT;length:12"
    assert http_validator({"content-length": "12", "content-type": "image/png"}) is None
    assert versioned_ref("http://img/1.png", "etag:x") != versioned_ref("http://img/1.png", "etag:y")


def test_validator_of_urls_heads_then_hashes_bytes_when_no_validator() -> None:
    def etag(tag: str) -> httpx.Response:
        return httpx.Response(200, headers={"content-type": "image/png", "etag": tag}, content=PNG)

    def no_head(n: int) -> httpx.Response:  # HEAD refused, the GET that follows answers the bytes
        return httpx.Response(405) if n == 1 else _image()

    routes = {"/a.png": etag('"v1"'), "/plain.png": _image(), "/nohead.png": no_head, "/gone.png": _image(404)}
    calls: dict[str, int] = {}
    fetcher = _fetcher(routes, calls)
    got = fetcher.validators([f"http://img/{p}" for p in ("a.png", "plain.png", "nohead.png", "gone.png")])
    fetcher.close()
    digest = "sha256:" + hashlib.sha256(PNG).hexdigest()
    assert got == ['etag:"v1"', digest, digest, "unavailable:HTTP 404"]
    assert calls["/a.png"] == 1  # the HEAD alone: no download when the server names a validator


def test_validator_of_paths_follows_mtime_and_size(tmp_path: Path) -> None:
    image = tmp_path / "1.png"
    image.write_bytes(PNG)
    os.utime(image, ns=(1_000_000_000, 1_000_000_000))
    fetcher = ImageFetcher(ImageFetchSettings(path_root=str(tmp_path)))
    versions = ImageVersions(fetcher)
    versions.prepare(["1.png", "missing.png"])
    before = versions("1.png")
    assert before == versioned_ref("1.png", "file:mtime_ns=1000000000;size=15")
    assert versions("missing.png") == versioned_ref("missing.png", "unavailable:FileNotFoundError")
    image.write_bytes(PNG + b"new")
    versions.prepare(["1.png"])
    assert versions("1.png") != before
    fetcher.close()


def test_image_versions_memo_keeps_the_newest_refs() -> None:
    class Counting(ImageFetcher):
        def __init__(self) -> None:
            super().__init__(ImageFetchSettings())
            self.looked_up: list[str] = []

        def validator(self, ref: str) -> str:
            self.looked_up.append(ref)
            return f"v-{ref}"

    fetcher = Counting()
    versions = ImageVersions(fetcher, memo_size=2)
    versions.prepare(["a", "b", "a"])
    versions.prepare(["c"])
    assert [versions("a"), versions("c")] == [versioned_ref("a", "v-a"), versioned_ref("c", "v-c")]
    assert fetcher.looked_up == ["a", "b", "c", "a"]  # "a" fell out of the memo of 2, "c" did not
    fetcher.close()


def test_in_place_mode_hashes_the_text_version() -> None:
    class Version:
        def __init__(self) -> None:
            self.tag = "v1"
            self.prepared: list[str] = []

        def prepare(self, texts: Sequence[str]) -> None:
            self.prepared.extend(texts)

        def __call__(self, text: str) -> str:
            return versioned_ref(text, self.tag)

    version = Version()
    mode = InPlaceMode(
        cluster=None,  # type: ignore[arg-type]  # classify does not touch the cluster
        job_id="j",
        vector_field="image_embedding",
        model_id="m",
        policy=TextPolicy(fields=("image_url",)),
        text_version=version,
    )
    stored = {"model_id": "m", "text_hash": text_hash(versioned_ref("http://img/1.png", "v1"))}
    hit = {
        "_id": "1",
        "_index": "i",
        "_source": {"image_url": "http://img/1.png", BOOKKEEPING_FIELD: {"image_embedding": stored}},
    }
    mode.prepare_page([hit, {"_id": "2", "_index": "i", "_source": {}}])
    assert version.prepared == ["http://img/1.png"]
    assert mode.classify(hit).verdict == "skip"
    version.tag = "v2"  # new bytes under the same URL
    work = mode.classify(hit)
    assert work.verdict == "embed" and work.text == "http://img/1.png"
    assert work.text_hash == text_hash(versioned_ref("http://img/1.png", "v2"))
