"""The model itself: loading, tokenizing, length-sorted forward passes, pooling.

Nothing here knows about Ray; the deployment decides when to call what, and the
benchmark uses :class:`Embedder` directly as the in-process baseline.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F

from embedding_service.errors import ModelLoadError
from embedding_service.model_spec import ModelSpec
from embedding_service.settings import Backend, Device, DType, Pooling, Quantization

__all__ = ["Embedder", "resolve_precision", "plan_batches", "pool", "ResolvedDevice", "ResolvedDType"]

logger = logging.getLogger(__name__)

ResolvedDevice = Literal["cpu", "cuda"]
ResolvedDType = Literal["float32", "float16", "bfloat16"]

_TORCH_DTYPES: dict[ResolvedDType, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}
# Tokenizers without a real limit report a huge model_max_length.
_UNBOUNDED_LENGTH = 1_000_000


def resolve_precision(
    device: Device, dtype: DType, *, cuda_available: bool, bf16_supported: bool
) -> tuple[ResolvedDevice, ResolvedDType]:
    """Pick the device and dtype: ``auto`` takes a GPU when present, half precision on GPU, fp32 on CPU.

    Raises:
        ModelLoadError: ``cuda`` was asked for but this process has no GPU.
    """
    if device == "cuda" and not cuda_available:
        raise ModelLoadError(
            "device cuda was requested but torch sees no GPU in this replica; "
            "use device auto/cpu or give the replica num_gpus",
            device=device,
        )
    chosen: ResolvedDevice = "cuda" if device == "cuda" or (device == "auto" and cuda_available) else "cpu"
    if dtype != "auto":
        return chosen, dtype
    if chosen == "cuda":
        return chosen, "bfloat16" if bf16_supported else "float16"
    return chosen, "float32"


def plan_batches(lengths: Sequence[int], *, max_rows: int, max_batch_tokens: int) -> list[list[int]]:
    """Group row indices into forward passes of similar length.

    Rows are sorted longest first and cut greedily so that ``rows x longest row`` stays within
    ``max_batch_tokens`` (a row longer than the budget gets a pass of its own) and at most
    ``max_rows`` rows go into one pass. Padding, and so wasted compute, stays small.

    Returns:
        Lists of indices into ``lengths``; every index appears exactly once.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        # The first row of a pass is its longest, so it fixes the padded width.
        width = lengths[current[0]] if current else lengths[i]
        if current and (len(current) >= max_rows or (len(current) + 1) * max(width, 1) > max_batch_tokens):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, mode: Pooling) -> torch.Tensor:
    """Pool token vectors ``[rows, tokens, dims]`` into one vector per row, ignoring padding.

    Works for right- and left-padded rows (``cls`` takes the first real token, ``lasttoken`` the last).
    """
    mask = attention_mask.to(hidden.dtype).unsqueeze(-1)
    if mode in ("mean", "mean_sqrt_len"):
        summed = (hidden * mask).sum(dim=1)
        counts = mask.sum(dim=1).clamp(min=1e-9)
        return summed / (counts if mode == "mean" else counts.sqrt())
    if mode == "max":
        return hidden.masked_fill(mask == 0, torch.finfo(hidden.dtype).min).max(dim=1).values
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    if mode == "cls":
        first = attention_mask.int().argmax(dim=1)
        return hidden[rows, first]
    if mode == "lasttoken":
        width = attention_mask.shape[1]
        last = width - 1 - attention_mask.int().flip(dims=[1]).argmax(dim=1)
        return hidden[rows, last]
    raise ValueError(f"unknown pooling {mode!r}")


@dataclass(frozen=True)
class _Tokenizer:
    pad_token_id: int
    padding_side: str
    max_length: int


class Embedder:
    """One loaded model: ``tokenize`` texts, then ``forward`` groups of token rows.

    Use :meth:`load`; ``encode`` does both for in-process callers.
    """

    def __init__(
        self,
        *,
        spec: ModelSpec,
        tokenizer: object,
        model: Any,
        device: ResolvedDevice,
        dtype: ResolvedDType,
        meta: _Tokenizer,
        backend: Backend = "torch",
        quantization: Quantization = "none",
    ) -> None:
        self.spec = spec
        self.device = device
        self.dtype = dtype
        self.backend: Backend = backend
        self.quantization: Quantization = quantization
        self._tokenizer = tokenizer
        self._model = model
        self._meta = meta
        self.max_length = meta.max_length
        self._query_tokenizer: Any = None
        self.dims = int(self.forward([self.tokenize(["warm up"])[0]]).shape[1])

    @classmethod
    def load(
        cls,
        spec: ModelSpec,
        *,
        device: Device = "auto",
        dtype: DType = "auto",
        trust_remote_code: bool = False,
        backend: Backend = "torch",
        quantization: Quantization = "none",
        threads: int | None = None,
        cache_root: Path | None = None,
        calibration: Sequence[str] | None = None,
    ) -> Embedder:
        """Load tokenizer and model from ``spec.transformer_path`` onto the chosen device.

        Args:
            backend / quantization: torch (full precision), or onnx fp32 / int8 (CPU; exported and cached
                by :func:`embedding_service.backends.export_onnx` on first use).
            threads: ONNX Runtime / OpenVINO threads (torch's are set by the caller); None = torch's count.
            calibration: texts the openvino backend's static int8 is calibrated on (default: bundled samples).

        Raises:
            ModelLoadError: the folder cannot be loaded, cuda is asked for without a GPU, int8 with torch.
        """
        from transformers import AutoConfig, AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        if backend == "torch" and quantization != "none":
            raise ModelLoadError("quantization int8 needs backend onnx or openvino", backend=backend)
        cuda = torch.cuda.is_available() and backend == "torch"
        resolved_device, resolved_dtype = resolve_precision(
            device, dtype, cuda_available=cuda, bf16_supported=cuda and torch.cuda.is_bf16_supported()
        )
        path = str(spec.transformer_path)
        model: Any
        try:
            tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
            if backend == "onnx":
                from embedding_service.backends import OnnxModel, export_onnx

                onnx_path = export_onnx(
                    spec, quantization=quantization, cache_root=cache_root, trust_remote_code=trust_remote_code
                )
                config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
                model = OnnxModel(onnx_path, threads=threads or torch.get_num_threads(), config=config)
            elif backend == "openvino":
                model = _load_openvino(
                    spec,
                    tokenizer,
                    quantization=quantization,
                    calibration=calibration,
                    threads=threads or torch.get_num_threads(),
                    cache_root=cache_root,
                    trust_remote_code=trust_remote_code,
                )
            else:
                model = AutoModel.from_pretrained(
                    path, dtype=_TORCH_DTYPES[resolved_dtype], trust_remote_code=trust_remote_code
                )
        except (OSError, ValueError, KeyError) as e:
            raise ModelLoadError(f"cannot load model from {path}: {e}", path=path) from e
        model.to(resolved_device).eval()
        meta = _tokenizer_meta(tokenizer, model, spec.max_length)
        logger.info(
            "loaded %s (%s) on %s as %s, backend=%s, quantization=%s, max_length=%s, pooling=%s",
            spec.model_id,
            spec.revision,
            resolved_device,
            resolved_dtype,
            backend,
            quantization,
            meta.max_length,
            spec.pooling,
        )
        return cls(
            spec=spec,
            tokenizer=tokenizer,
            model=model,
            device=resolved_device,
            dtype=resolved_dtype,
            meta=meta,
            backend=backend,
            quantization=quantization,
        )

    @property
    def fast_tokenizer(self) -> Any:
        """The ``tokenizers.Tokenizer`` under the transformers tokenizer (None for a slow, Python one)."""
        return getattr(self._tokenizer, "backend_tokenizer", None)

    @property
    def onnx_path(self) -> Path | None:
        """The exported graph this embedder runs (None for the torch backend)."""
        path = getattr(self._model, "path", None)
        return path if isinstance(path, Path) else None

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per text (special tokens included), truncated at ``max_length``."""
        return _token_rows(self._tokenizer, texts, lower=self.spec.do_lower_case, max_length=self.max_length)

    def tokenize_query(self, text: str) -> list[int] | None:
        """:meth:`tokenize` of one text on a tokenizer of its own (None without a fast tokenizer).

        The service's lean query path tokenizes on its event loop while the tokenizer thread may be busy with a
        document batch; a transformers tokenizer changes its truncation state per call, so it must not be shared
        across threads. The copy has the same vocabulary, normalizer and special tokens, with fixed truncation.
        """
        if self._query_tokenizer is None:
            fast = self.fast_tokenizer
            if fast is None:
                return None
            from tokenizers import Tokenizer

            copy = Tokenizer.from_str(fast.to_str())
            copy.no_padding()
            copy.enable_truncation(max_length=self.max_length)
            self._query_tokenizer = copy
        return list(self._query_tokenizer.encode(text.lower() if self.spec.do_lower_case else text).ids)

    def token_spans(self, texts: Sequence[str], *, prefix: str = "") -> list[tuple[int, list[tuple[int, int]]]]:
        """Per text: the token count the model would see untruncated (``prefix``, special tokens included),
        and the character spans of the text's own tokens (the prefix's and the special tokens left out).

        What a client needs to cut a long text into passages that fit ``max_length`` (``POST /v1/tokenize``).
        """
        full = [prefix + (t.lower() if self.spec.do_lower_case else t) for t in texts]
        encoded = self._tokenizer(  # type: ignore[operator]
            full, truncation=False, padding=False, return_offsets_mapping=True, return_attention_mask=False
        )
        shift = len(prefix)
        out: list[tuple[int, list[tuple[int, int]]]] = []
        for ids, offsets in zip(encoded["input_ids"], encoded["offset_mapping"]):
            spans = [(s - shift, e - shift) for s, e in offsets if e > s and s >= shift]
            out.append((len(ids), spans))
        return out

    def forward(self, rows: Sequence[Sequence[int]]) -> np.ndarray:
        """Embed token rows in one forward pass; returns float32 ``[len(rows), dims]``."""
        width = max(len(r) for r in rows)
        ids = np.full((len(rows), width), self._meta.pad_token_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        left = self._meta.padding_side == "left"
        for i, row in enumerate(rows):
            span = slice(width - len(row), width) if left else slice(0, len(row))
            ids[i, span] = row
            mask[i, span] = 1
        with torch.inference_mode():
            input_ids = torch.from_numpy(ids).to(self.device)
            attention_mask = torch.from_numpy(mask).to(self.device)
            output = self._model(input_ids=input_ids, attention_mask=attention_mask)
            hidden = output.last_hidden_state if hasattr(output, "last_hidden_state") else output[0]
            # Pool and normalize in fp32 so half precision loses nothing more than the forward did.
            vectors = pool(hidden.float(), attention_mask, self.spec.pooling)
            if self.spec.normalized:
                vectors = F.normalize(vectors, p=2.0, dim=1)
            return vectors.cpu().numpy().astype(np.float32, copy=False)

    def encode(self, texts: Sequence[str], *, max_rows: int = 64, max_batch_tokens: int = 4096) -> np.ndarray:
        """Tokenize, run length-sorted forward passes, and return vectors in input order."""
        if not texts:
            return np.zeros((0, self.dims), dtype=np.float32)
        rows = self.tokenize(texts)
        out = np.empty((len(rows), self.dims), dtype=np.float32)
        for group in plan_batches([len(r) for r in rows], max_rows=max_rows, max_batch_tokens=max_batch_tokens):
            out[group] = self.forward([rows[i] for i in group])
        return out


def _token_rows(tokenizer: Any, texts: Sequence[str], *, lower: bool, max_length: int) -> list[list[int]]:
    """Token ids per text (special tokens included), truncated at ``max_length`` (what ``Embedder.tokenize`` does)."""
    encoded = tokenizer(
        [t.lower() for t in texts] if lower else list(texts),
        truncation=True,
        max_length=max_length,
        padding=False,
        return_attention_mask=False,
        return_token_type_ids=False,
    )
    return [list(ids) for ids in encoded["input_ids"]]


def _load_openvino(
    spec: ModelSpec,
    tokenizer: Any,
    *,
    quantization: Quantization,
    calibration: Sequence[str] | None,
    threads: int,
    cache_root: Path | None,
    trust_remote_code: bool,
) -> Any:
    """The OpenVINO model of ``spec`` (converted, and int8-calibrated, on first use; see ``export_openvino``)."""
    from transformers import AutoConfig

    from embedding_service.backends import AUTO_SAMPLE_TEXTS, OpenVinoModel, export_openvino

    config = AutoConfig.from_pretrained(str(spec.transformer_path), trust_remote_code=trust_remote_code)
    meta = _tokenizer_meta(tokenizer, config, spec.max_length)

    path = export_openvino(
        spec,
        quantization=quantization,
        texts=list(calibration) if calibration else list(AUTO_SAMPLE_TEXTS),
        tokenize=lambda texts: _token_rows(tokenizer, texts, lower=spec.do_lower_case, max_length=meta.max_length),
        cache_root=cache_root,
        trust_remote_code=trust_remote_code,
    )
    return OpenVinoModel(path, threads=threads, config=config)


def _tokenizer_meta(tokenizer: object, model: Any, wanted: int | None) -> _Tokenizer:
    """Pad token, side and length limit; ``model`` is a loaded model (its ``config`` is read) or a config."""
    config = getattr(model, "config", model)
    limits = [
        int(v)
        for v in (getattr(tokenizer, "model_max_length", None), getattr(config, "max_position_embeddings", None))
        if isinstance(v, int) and 0 < v < _UNBOUNDED_LENGTH
    ]
    model_limit = min(limits) if limits else 512
    max_length = min(wanted, model_limit) if wanted else model_limit
    pad = getattr(tokenizer, "pad_token_id", None)
    if pad is None:
        # Decoder-only tokenizers often have no pad token; padded positions are masked anyway.
        pad = getattr(tokenizer, "eos_token_id", None) or 0
    return _Tokenizer(
        pad_token_id=int(pad), padding_side=str(getattr(tokenizer, "padding_side", "right")), max_length=max_length
    )
