"""The cross-encoder on ONNX Runtime (fp32 and dynamic int8) against torch, on a tiny seeded model; the
settings that go with it and the default thread layout."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("onnxruntime")

from rerank.deployment import default_threads  # noqa: E402
from rerank.errors import RerankConfigError  # noqa: E402
from rerank.loading import load_reranker  # noqa: E402
from rerank.models import CrossEncoderReranker  # noqa: E402
from rerank.settings import RerankSettings  # noqa: E402
from tests.fixtures.rerank import CORPUS  # noqa: E402

QUERY = "waterproof case for running"


def _load(path: Path, cache: Path, **settings: object) -> CrossEncoderReranker:
    reranker = load_reranker(
        RerankSettings(model=str(path), device="cpu", batch_size=3, backend_cache_dir=str(cache), **settings)  # type: ignore[arg-type]
    )
    assert isinstance(reranker, CrossEncoderReranker)
    return reranker


def test_onnx_scores_match_torch_and_int8_stays_close(cross_encoder_path: Path, tmp_path: Path) -> None:
    reference = _load(cross_encoder_path, tmp_path).score(QUERY, CORPUS)
    onnx = _load(cross_encoder_path, tmp_path, backend="onnx")
    assert onnx.score(QUERY, CORPUS) == pytest.approx(reference, abs=1e-4)
    assert onnx.info()["backend"] == "onnx" and onnx.info()["quantization"] == "none"
    int8 = _load(cross_encoder_path, tmp_path, backend="onnx", quantize="int8")
    scores = int8.score(QUERY, CORPUS)
    assert int8.info()["quantization"] == "int8"
    spread = max(reference) - min(reference)
    assert max(abs(a - b) for a, b in zip(scores, reference, strict=True)) < 0.1 * spread + 1e-3
    # Exported once per revision and quantization, beside each other in the cache.
    assert sorted(p.name.split("-local-")[0] for p in tmp_path.iterdir()) == [
        "rerank-onnx-int8-ffnfp32",
        "rerank-onnx-none",
    ]
    again = _load(cross_encoder_path, tmp_path, backend="onnx", quantize="int8")
    assert again.score(QUERY, CORPUS) == pytest.approx(scores, abs=1e-6)


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"quantize": "int8"}, "quantize"),
        ({"backend": "onnx", "device": "cuda"}, "backend"),
        ({"backend": "onnx", "kind": "llm"}, "backend"),
        ({"backend": "onnx", "dtype": "bfloat16"}, "dtype"),
    ],
)
def test_onnx_settings_that_cannot_work_are_refused(settings: dict[str, str], field: str) -> None:
    with pytest.raises((RerankConfigError, ValueError), match=field):
        RerankSettings(model="m", **settings)  # type: ignore[arg-type]


def test_default_threads_use_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    # One replica (the default) gets every CPU of the cluster; more replicas share them; a setting wins.
    assert default_threads(RerankSettings(model="m", device="cpu"), cluster_cpus=8, cluster_gpus=0) == 8
    assert default_threads(RerankSettings(model="m", device="cpu"), cluster_cpus=64, cluster_gpus=0) == 8  # one node
    assert default_threads(RerankSettings(model="m", replicas=2), cluster_cpus=8, cluster_gpus=0) == 4
    assert default_threads(RerankSettings(model="m", replicas=4), cluster_cpus=2, cluster_gpus=0) == 1
    assert default_threads(RerankSettings(model="m", torch_threads=3), cluster_cpus=8, cluster_gpus=0) == 3
    # On a GPU the threads only feed the device: the CPUs reserved per replica.
    assert default_threads(RerankSettings(model="m"), cluster_cpus=8, cluster_gpus=1) == 1
