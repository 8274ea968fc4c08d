"""The image embedding service (tiny CLIP) on a real Ray Serve: vectors equal the model's own, bad inputs get a 4xx
naming the field."""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from connector.services.embedding import EmbeddingClient
from tests.fixtures.embedding import free_port
from tests.fixtures.images import TINY_CLIP, ImageServer, shape_png

pytestmark = [pytest.mark.integration, pytest.mark.ray]


@pytest.fixture(scope="module")
def clip() -> Any:
    import torch

    from embedding_service.clip import ClipEmbedder

    torch.set_num_threads(1)
    return ClipEmbedder.load(TINY_CLIP, model_id="tiny-clip", device="cpu", dtype="float32")


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _post(image_url: str, inputs: list[Any]) -> httpx.Response:
    return httpx.post(f"{image_url}/v1/embeddings", json={"input": inputs}, timeout=60)


def test_vectors_equal_direct_computation(
    image_url: str, image_root: Path, image_server: ImageServer, clip: Any
) -> None:
    """Data, path and URL inputs and texts, mixed in one request: each vector is the model's own, in order."""
    raws = [
        shape_png(c, s, seed=i)
        for i, (c, s) in enumerate([("red", "circle"), ("blue", "square"), ("green", "triangle")])
    ]
    (image_root / "blue.png").write_bytes(raws[1])
    image_server.add({"/green.png": (200, "image/png", raws[2])})
    inputs = [
        {"image": {"data": _b64(raws[0])}},
        "red circle",
        {"image": {"path": str(image_root / "blue.png")}},
        {"text": "blue square"},
        {"image": {"url": f"{image_server.base}/green.png"}},
    ]
    response = _post(image_url, inputs)
    assert response.status_code == 200, response.text
    got = np.array([item["embedding"] for item in response.json()["data"]], dtype=np.float32)
    images = clip.encode_images([Image.open(io.BytesIO(raw)).convert("RGB") for raw in raws])
    texts = clip.encode_texts(["red circle", "blue square"])
    expected = np.stack([images[0], texts[0], images[1], texts[1], images[2]])
    np.testing.assert_allclose(got, expected, atol=1e-5)

    with EmbeddingClient(image_url) as client:
        info = client.info()
        assert info.model_id == "tiny-clip" and info.dims == clip.dims
        np.testing.assert_allclose(client.embed_query("red circle"), texts[0], atol=1e-5)
        np.testing.assert_allclose(client.embed_images([{"data": _b64(raws[0])}])[0], images[0], atol=1e-5)


def _tiff() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (8, 8), (255, 0, 0)).save(out, format="TIFF")
    return out.getvalue()


def _noise_png(side: int) -> bytes:
    rng = np.random.default_rng(0)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(out, format="PNG")
    return out.getvalue()


def _big_flat_png() -> bytes:  # 1000x1000 pixels, a few KB: over the pixel limit, under the byte limit
    out = io.BytesIO()
    Image.new("RGB", (1000, 1000), (0, 0, 255)).save(out, format="PNG")
    return out.getvalue()


def test_bad_inputs_are_4xx_naming_the_field(image_url: str, image_server: ImageServer, tmp_path: Path) -> None:
    image_server.add({"/page.html": (200, "text/html", b"<html></html>")})
    ok = {"image": {"data": _b64(shape_png("red", "circle", seed=1))}}
    dead_url = f"http://127.0.0.1:{free_port()}/x.png"
    outside = tmp_path / "x.png"
    outside.write_bytes(shape_png("red", "circle", seed=1))
    cases: list[tuple[dict[str, Any], int, str, str]] = [
        ({"image": {"data": _b64(b"this is not an image")}}, 422, "input[1].image.data", "not an image"),
        ({"image": {"data": "%%% not base64"}}, 422, "input[1].image.data", "base64"),
        ({"image": {"data": _b64(_tiff())}}, 422, "input[1].image.data", "unsupported image format TIFF"),
        ({"image": {"data": _b64(_noise_png(256))}}, 413, "input[1].image.data", "bytes"),
        ({"image": {"data": _b64(_big_flat_png())}}, 413, "input[1].image.data", "pixels"),
        ({"image": {"url": dead_url}}, 422, "input[1].image.url", "cannot fetch"),
        ({"image": {"url": f"{image_server.base}/missing.png"}}, 422, "input[1].image.url", "HTTP 404"),
        ({"image": {"url": f"{image_server.base}/page.html"}}, 422, "input[1].image.url", "not an image"),
        ({"image": {"path": str(outside)}}, 422, "input[1].image.path", "outside"),
        ({"image": {"url": "http://x", "data": "eA=="}}, 422, "input[1].image", "exactly one"),
    ]
    for item, status, param, words in cases:
        response = _post(image_url, [ok, item])
        assert response.status_code == status, (item, response.text)
        error = response.json()["error"]
        assert error["param"] == param and words in error["message"], (item, error)
