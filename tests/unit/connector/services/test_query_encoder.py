"""The in-process query encoder's pure parts: pooling, the _meta check, the manifest, the factory's choices."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from connector.errors import ModelMismatchError
from connector.services.query_encoder import (
    QueryEncoder,
    QueryEncoderSettings,
    compatibility_problems,
    local_query_encoder,
    pool_tokens,
)
from inference_backends import EncoderManifest, find_manifests, read_manifest, write_manifest


@pytest.fixture(autouse=True)
def _encoder_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    """tests/conftest.py turns the in-process encoder off for the suite; its default (on) is tested here."""
    monkeypatch.setenv("ESHYBRID_QUERY_ENCODER_ENABLED", "true")


MANIFEST = EncoderManifest(
    model_id="sentence-transformers/all-MiniLM-L6-v2",
    revision="local-abc",
    dims=4,
    max_length=16,
    pooling="mean",
    normalized=True,
    query_prefix="query: ",
    document_prefix="passage: ",
    do_lower_case=True,
    quantization="none",
)
META = {"model_id": MANIFEST.model_id, "dims": 4, "pooling": "mean", "normalized": True, "similarity": "cosine"}


@pytest.mark.parametrize("mode", ["mean", "mean_sqrt_len", "max", "cls", "lasttoken"])
def test_numpy_pooling_equals_the_services_torch_pooling(mode: str) -> None:
    torch = pytest.importorskip("torch")
    from embedding_service.model import pool

    rng = np.random.default_rng(7)
    hidden = rng.normal(size=(3, 5, 4)).astype(np.float32)
    mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0]], dtype=np.int64)
    expected = pool(torch.from_numpy(hidden), torch.from_numpy(mask), mode).numpy()  # type: ignore[arg-type]
    np.testing.assert_allclose(pool_tokens(hidden, mask, mode), expected, rtol=1e-6, atol=1e-6)


def test_a_matching_field_has_no_problems_and_an_absent_quantization_means_none() -> None:
    assert compatibility_problems(MANIFEST, META) == []
    assert compatibility_problems(MANIFEST, {**META, "model_quantization": "none", "model_backend": "torch"}) == []


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"model_id": "intfloat/e5-small-v2"}, "model_id"),
        ({"dims": 768}, "dims"),
        ({"pooling": "cls"}, "pooling"),
        ({"normalized": False}, "normalized"),
        ({"model_quantization": "int8"}, "model_quantization"),
    ],
)
def test_each_difference_is_named(change: dict[str, Any], needle: str) -> None:
    problems = compatibility_problems(MANIFEST, {**META, **change})
    assert len(problems) == 1 and problems[0].startswith(needle)


def test_an_int8_export_is_not_another_backends_int8() -> None:
    """An index embedded by OpenVINO's static int8 is not an onnx dynamic-int8 export's; the same backend is."""
    int8 = dataclasses.replace(MANIFEST, quantization="int8")
    meta = {**META, "model_quantization": "int8"}
    assert compatibility_problems(int8, {**meta, "model_backend": int8.backend}) == []
    assert compatibility_problems(int8, meta) == []  # an index that records no backend: as before
    (problem,) = compatibility_problems(int8, {**meta, "model_backend": "openvino"})
    assert problem.startswith("model_backend") and "openvino" in problem


def test_a_field_without_model_id_cannot_be_checked() -> None:
    assert "no model_id/dims" in compatibility_problems(MANIFEST, {"pooling": "mean"})[0]


def test_manifest_round_trips_and_refuses_another_format(tmp_path: Path) -> None:
    write_manifest(tmp_path, MANIFEST)
    assert read_manifest(tmp_path) == MANIFEST
    body = json.loads((tmp_path / "encoder.json").read_text())
    with pytest.raises(ValueError, match="format"):
        EncoderManifest.from_mapping({**body, "format": 99})
    with pytest.raises(ValueError, match="pooling"):
        EncoderManifest.from_mapping({**body, "pooling": "weightedmean"})
    with pytest.raises(ValueError, match="incomplete"):
        EncoderManifest.from_mapping({"format": 1, "model_id": "x"})


def test_find_manifests_looks_in_a_folder_its_export_cache_and_a_cache_root(tmp_path: Path) -> None:
    direct, in_model, in_root = tmp_path / "direct", tmp_path / "model" / ".eshybrid" / "onnx-none-r", tmp_path / "root"
    for folder in (direct, in_model, in_root / "onnx-int8-r"):
        folder.mkdir(parents=True)
        write_manifest(folder, MANIFEST)
    assert find_manifests([direct]) == [direct]
    assert find_manifests([tmp_path / "model"]) == [in_model]
    assert find_manifests([in_root]) == [in_root / "onnx-int8-r"]
    assert find_manifests([tmp_path / "absent"]) == []


def test_factory_is_off_when_disabled_and_none_without_exports(tmp_path: Path) -> None:
    assert local_query_encoder(META, settings=QueryEncoderSettings(enabled=False)) is None
    assert local_query_encoder(META, model_dir=tmp_path) is None


def test_factory_refuses_an_explicit_folder_of_another_model(tmp_path: Path) -> None:
    write_manifest(tmp_path, dataclasses.replace(MANIFEST, model_id="intfloat/e5-small-v2"))
    with pytest.raises(ModelMismatchError, match="export-query-encoder"):
        local_query_encoder(META, model_dir=tmp_path)


class _Encoding:
    def __init__(self, ids: list[int]) -> None:
        self.ids = ids


class _Tokenizer:
    """Records what it was asked to encode; one id per character (stands in for tokenizers.Tokenizer)."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def encode(self, text: str) -> _Encoding:
        self.seen.append(text)
        return _Encoding([1 + (ord(c) % 7) for c in text])


class _Session:
    """Token vectors = [id, 1, 0, 0] per token (stands in for an ONNX Runtime session)."""

    def run(self, _: Any, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        ids = feeds["input_ids"].astype(np.float32)
        hidden = np.zeros((*ids.shape, 4), dtype=np.float32)
        hidden[..., 0], hidden[..., 1] = ids, 1.0
        return [hidden]


def test_embed_query_adds_the_prefix_lowercases_pools_and_normalizes() -> None:
    tokenizer = _Tokenizer()
    encoder = QueryEncoder(Path("."), MANIFEST, session=_Session(), tokenizer=tokenizer)
    vector = encoder.embed_query("Red Shoes")
    assert tokenizer.seen == ["query: red shoes"]
    ids = [1 + (ord(c) % 7) for c in "query: red shoes"]
    expected = np.array([np.mean(ids), 1.0, 0.0, 0.0])
    np.testing.assert_allclose(vector, expected / np.linalg.norm(expected), rtol=1e-6)
    batch = encoder.embed_queries(["Red Shoes", "a"])
    np.testing.assert_allclose(batch[0], vector, rtol=1e-6)  # padding does not change a vector
    assert encoder.caches_query_vectors is False


def test_check_compatible_refuses_another_model_with_what_to_do() -> None:
    encoder = QueryEncoder(Path("/x"), MANIFEST, session=_Session(), tokenizer=_Tokenizer())
    encoder.check_compatible(META)
    with pytest.raises(ModelMismatchError, match="ESHYBRID_QUERY_ENCODER_ENABLED=false"):
        encoder.check_compatible({**META, "model_id": "BAAI/bge-small-en-v1.5"})


def test_the_encoder_is_a_search_embedder_and_awaits_in_a_thread() -> None:
    import asyncio

    from connector.search.query_vectors import Embedder, QueryVectors

    encoder = QueryEncoder(Path("."), MANIFEST, session=_Session(), tokenizer=_Tokenizer())
    assert isinstance(encoder, Embedder)
    vectors = QueryVectors(encoder, cache_size=8)
    assert vectors.cache is not None  # the encoder keeps no cache: the search's LRU does
    assert asyncio.run(encoder.aembed_query("Red Shoes")) == encoder.embed_query("Red Shoes")
    with pytest.raises(ModelMismatchError):
        vectors.vector("red shoes", vector_meta={**META, "dims": 8})


def test_export_command_is_registered() -> None:
    from connector.cli.main import build_parser

    args = build_parser().parse_args(["export-query-encoder", "--quantize", "int8", "--cache-dir", "/tmp/x"])
    assert (args.quantize, args.cache_dir, args.model) == ("int8", "/tmp/x", None)


def test_without_onnxruntime_the_factory_says_none_and_the_search_uses_the_service(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import sys

    from connector.services import query_encoder

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # an import of it now raises ImportError
    monkeypatch.setattr(query_encoder, "_logged_reasons", set())
    with caplog.at_level("INFO", logger="connector.services.query_encoder"):
        assert local_query_encoder(META) is None
        assert local_query_encoder(META) is None
    assert caplog.text.count("eshybrid[query]") == 1  # the reason is logged once
