"""Image inputs of the image service: decoding within the limits, sources, the request shape (no Ray, no torch)."""

from __future__ import annotations

import base64
import io
import random
from pathlib import Path

import httpx
import pytest
from PIL import Image
from pydantic import ValidationError

from embedding_service.errors import InvalidInputError
from embedding_service.images import (
    ImageEmbeddingRequest,
    ImageSource,
    ImageTooLargeError,
    decode_image,
    read_image_source,
)

LIMITS = {"max_bytes": 10_000, "max_pixels": 64 * 64}


def _encoded(fmt: str = "PNG", size: tuple[int, int] = (16, 16)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 10, 10)).save(out, format=fmt)
    return out.getvalue()


def _noise_png() -> bytes:
    out = io.BytesIO()
    Image.frombytes("RGB", (32, 32), random.Random(0).randbytes(32 * 32 * 3)).save(out, format="PNG")
    return out.getvalue()


def test_decode_ok_gives_rgb() -> None:
    image = decode_image(_encoded("PNG"), field="input[0].image.data", **LIMITS)
    assert image.mode == "RGB" and image.size == (16, 16)
    assert decode_image(_encoded("JPEG"), field="f", **LIMITS).size == (16, 16)


@pytest.mark.parametrize(
    ("raw", "error", "words"),
    [
        (b"plain text", InvalidInputError, "not an image"),
        (_encoded("TIFF"), InvalidInputError, "unsupported image format TIFF"),
        (_encoded("PNG", (100, 100)), ImageTooLargeError, "pixels"),
        (b"\x89PNG" + b"\0" * 20_000, ImageTooLargeError, "bytes"),
        (_noise_png()[:1500], InvalidInputError, "damaged"),
    ],
)
def test_decode_refusals_name_the_field(raw: bytes, error: type[Exception], words: str) -> None:
    with pytest.raises(error, match=words) as info:
        decode_image(raw, field="input[2].image.data", **LIMITS)
    assert info.value.field == "input[2].image.data"
    assert info.value.status == (413 if error is ImageTooLargeError else 422)


def _client(handler: object) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(handler))  # type: ignore[arg-type]


def test_url_sources() -> None:
    png = _encoded()

    def handler(request: httpx.Request) -> httpx.Response:
        return {
            "/ok.png": httpx.Response(200, headers={"content-type": "image/png"}, content=png),
            "/page": httpx.Response(200, headers={"content-type": "text/html"}, content=b"<html>"),
            "/big": httpx.Response(200, headers={"content-type": "image/png"}, content=b"\0" * 20_000),
        }.get(request.url.path, httpx.Response(404))

    with _client(handler) as client:
        read = lambda url: read_image_source(  # noqa: E731
            ImageSource(url=url), field="input[0].image", client=client, roots=(), **LIMITS
        )
        assert read("http://shop/ok.png").size == (16, 16)
        for url, words in [
            ("http://shop/missing", "HTTP 404"),
            ("http://shop/page", "not an image"),
            ("http://shop/big", "bytes"),
            ("ftp://shop/x.png", "only http"),
        ]:
            with pytest.raises(InvalidInputError, match=words) as info:
                read(url)
            assert info.value.field == "input[0].image.url"


def test_path_and_data_sources(tmp_path: Path) -> None:
    png = _encoded()
    (tmp_path / "a.png").write_bytes(png)
    with httpx.Client() as client:
        kwargs = {"field": "input[1].image", "client": client, **LIMITS}
        assert read_image_source(ImageSource(path=str(tmp_path / "a.png")), roots=(str(tmp_path),), **kwargs)
        data = "data:image/png;base64," + base64.b64encode(png).decode()
        assert read_image_source(ImageSource(data=data), roots=(), **kwargs).size == (16, 16)
        with pytest.raises(InvalidInputError, match="image_roots is empty"):
            read_image_source(ImageSource(path=str(tmp_path / "a.png")), roots=(), **kwargs)
        with pytest.raises(InvalidInputError, match="outside"):
            read_image_source(ImageSource(path="/etc/passwd"), roots=(str(tmp_path),), **kwargs)
        with pytest.raises(InvalidInputError, match="cannot read") as info:
            read_image_source(ImageSource(path=str(tmp_path / "no.png")), roots=(str(tmp_path),), **kwargs)
        assert info.value.field == "input[1].image.path"


def test_request_shape() -> None:
    body = ImageEmbeddingRequest.model_validate(
        {"input": ["red circle", {"text": "blue"}, {"image": {"url": "http://x/1.png"}}]}
    )
    assert isinstance(body.input, list) and len(body.input) == 3
    for bad in (
        {"input": [{"image": {"url": "http://x", "data": "eA=="}}]},
        {"input": [{"text": "a", "image": {"url": "http://x"}}]},
        {"input": [{"image": {}}]},
        {"input": []},
    ):
        with pytest.raises(ValidationError):
            ImageEmbeddingRequest.model_validate(bad)
