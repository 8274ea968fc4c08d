"""The model id a job records per vector carries the service's quantization (an int8 variant is its own id)."""

from __future__ import annotations

from connector.jobs.common import describe_embedder
from connector.services.wire import EmbeddingServiceInfo

_INFO = {
    "model_id": "sentence-transformers/all-MiniLM-L6-v2",
    "revision": "r1",
    "dims": 384,
    "max_length": 256,
    "pooling": "mean",
    "normalized": True,
    "device": "cpu",
    "dtype": "float32",
    "query_prefix": "",
    "document_prefix": "",
    "max_items_per_request": 2048,
    "max_chars_per_item": 100_000,
}


class _Service:
    def __init__(self, **extra: object) -> None:
        self._info = EmbeddingServiceInfo.model_validate({**_INFO, **extra})

    def info(self) -> EmbeddingServiceInfo:
        return self._info


def test_full_precision_keeps_the_plain_model_id() -> None:
    info = describe_embedder(_Service(backend="onnx", quantization="none"), model_id=None, dims=None)  # type: ignore[arg-type]
    assert (info.model_id, info.dims) == (_INFO["model_id"], 384)


def test_int8_records_its_own_id_so_a_switch_re_embeds() -> None:
    info = describe_embedder(_Service(backend="onnx", quantization="int8"), model_id=None, dims=None)  # type: ignore[arg-type]
    assert info.model_id == f"{_INFO['model_id']}+int8"
