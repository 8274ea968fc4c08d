"""The cross-encoder on ONNX Runtime (fp32 or dynamic int8), exported once from the local checkpoint folder.

The export is torch's own ONNX exporter (TorchScript-based, eager attention) over the
``AutoModelForSequenceClassification`` the torch backend loads; int8 is onnxruntime's dynamic quantizer
(per-channel int8 MatMul weights, no calibration texts). The cache, quantizer options and session options are
the embedding service's (:mod:`inference_backends`): ``<model folder>/.eshybrid/rerank-onnx-<q>-<revision>/``.
LLM rerankers stay on torch.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from inference_backends import Quantization, cache_dir, cached_export, cpu_session, folder_revision, variant_key
from rerank.errors import ModelLoadError

__all__ = ["OnnxSequenceClassifier", "export_cross_encoder"]

_EXPORT_OPSET = 17


def export_cross_encoder(
    folder: Path,
    *,
    input_names: list[str],
    quantization: Quantization,
    cache_root: Path | None = None,
    trust_remote_code: bool = False,
) -> Path:
    """The ONNX file of the cross-encoder in ``folder`` (logits out), exported and quantized on first use.

    Raises:
        ModelLoadError: the folder is not local, or the export or quantization failed.
    """
    if not folder.is_dir():
        raise ModelLoadError(
            f"backend onnx exports from a local checkpoint folder; {str(folder)!r} is not one", model=str(folder)
        )
    key = f"rerank-onnx-{variant_key(quantization)}-{folder_revision(folder)}"
    try:
        target = cache_dir(folder, key, cache_root)
        return cached_export(
            target,
            export_fp32=lambda path: _export_fp32(folder, path, input_names, trust_remote_code=trust_remote_code),
            quantization=quantization,
            label=str(folder),
        )
    except Exception as e:  # the exporter and quantizer raise many types; all mean "no ONNX model"
        raise ModelLoadError(f"exporting {folder} to ONNX ({quantization}) failed: {e}", model=str(folder)) from e


def _export_fp32(folder: Path, path: Path, input_names: list[str], *, trust_remote_code: bool) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(
        str(folder), trust_remote_code=trust_remote_code, attn_implementation="eager"
    ).eval()

    class _Logits(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            return self.inner(**dict(zip(input_names, tensors, strict=True))).logits

    example = []
    for name in input_names:
        tensor = torch.ones((2, 8), dtype=torch.int64)
        if name == "attention_mask":
            tensor[1, 5:] = 0  # a padded row, so the mask path is traced as it runs
        if name == "token_type_ids":
            tensor[:, :4] = 0
        example.append(tensor)
    axes = {0: "batch", 1: "tokens"}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer warnings
        torch.onnx.export(
            _Logits(model),
            tuple(example),
            str(path),
            input_names=input_names,
            output_names=["logits"],
            dynamic_axes={**{name: axes for name in input_names}, "logits": {0: "batch"}},
            opset_version=_EXPORT_OPSET,
            dynamo=False,
        )


class OnnxSequenceClassifier:
    """An ONNX Runtime session called like the torch model: ``model(**tensors).logits`` (a torch tensor)."""

    def __init__(self, path: Path, *, threads: int, config: Any, input_names: list[str]) -> None:
        self.path = path
        self.config = config  # read for num_labels, pad token and the position limit
        self.input_names = input_names
        self._session = cpu_session(path, threads=threads)

    def __call__(self, **tensors: Any) -> Any:
        import torch

        feed = {name: tensors[name].cpu().numpy() for name in self.input_names}
        return SimpleNamespace(logits=torch.from_numpy(self._session.run(None, feed)[0]))

    def to(self, device: str) -> OnnxSequenceClassifier:
        if device != "cpu":
            raise ModelLoadError("the onnx backend runs on CPU only; use backend torch on a GPU", model=str(self.path))
        return self

    def eval(self) -> OnnxSequenceClassifier:
        return self
