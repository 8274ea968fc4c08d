"""Loading a reranker: the kind from the checkpoint's config, the device and dtype, torch or ONNX Runtime.

:func:`load_reranker` builds a :class:`~rerank.models.CrossEncoderReranker` or
:class:`~rerank.models.LLMReranker` from :class:`~rerank.settings.RerankSettings`;
:func:`load_in_process` does the same from keyword options, for the search path.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from pydantic import ValidationError

from rerank.errors import ModelLoadError, RerankConfigError
from rerank.models import CrossEncoderReranker, LLMReranker
from rerank.settings import RerankSettings

__all__ = ["choose_device", "choose_dtype", "detect_kind", "load_in_process", "load_reranker"]

logger = logging.getLogger(__name__)

_TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def detect_kind(config: Any) -> str:
    """``cross_encoder`` or ``llm`` from a config's ``architectures``.

    Raises:
        RerankConfigError: the architecture is neither; set ``kind`` explicitly.
    """
    architectures = list(getattr(config, "architectures", None) or [])
    if any(name.endswith("ForSequenceClassification") for name in architectures):
        return "cross_encoder"
    if any(name.endswith(("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")) for name in architectures):
        return "llm"
    raise RerankConfigError(
        f"cannot tell the reranker kind from architectures {architectures}; set kind=cross_encoder or kind=llm",
        field="kind",
        architectures=architectures,
    )


def choose_device(setting: str) -> str:
    """The device a ``device`` setting means here (auto: a GPU when one is visible); the rewriter shares it."""
    if setting == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if setting == "cuda" and not torch.cuda.is_available():
        raise RerankConfigError("device=cuda but no GPU is visible; use device=auto or cpu", field="device")
    return setting


def choose_dtype(setting: str, device: str) -> torch.dtype:
    """The torch dtype of a ``dtype`` setting on ``device`` (auto: bf16/fp16 on a GPU, fp32 on CPU)."""
    if setting == "auto":
        if device != "cuda":
            return torch.float32
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "cpu" and setting != "float32":
        raise RerankConfigError(f"dtype {setting} needs a GPU; use float32 on CPU", field="dtype")
    return _TORCH_DTYPES[setting]


def load_reranker(settings: RerankSettings) -> CrossEncoderReranker | LLMReranker:
    """Load the checkpoint named by ``settings.model`` as the right reranker.

    Raises:
        ModelLoadError: the checkpoint or tokenizer cannot be loaded.
        RerankConfigError: the settings do not fit the model.
    """
    from transformers import (  # noqa: PLC0415 - heavy import, only where a model is loaded
        AutoConfig,
        AutoModelForCausalLM,
        AutoModelForSequenceClassification,
        AutoTokenizer,
    )

    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    device = "cpu" if settings.backend == "onnx" else choose_device(settings.device)
    dtype = choose_dtype(settings.dtype, device)
    options: dict[str, Any] = {
        "revision": settings.revision,
        "trust_remote_code": settings.trust_remote_code,
        "local_files_only": settings.offline,
    }
    try:
        config = AutoConfig.from_pretrained(settings.model, **options)
        kind = settings.kind if settings.kind != "auto" else detect_kind(config)
        tokenizer = AutoTokenizer.from_pretrained(settings.model, **options)
        model: Any
        if settings.backend == "onnx":
            model = _load_onnx(settings, kind=kind, config=config, tokenizer=tokenizer, device=device)
        else:
            auto_class: Any = AutoModelForSequenceClassification if kind == "cross_encoder" else AutoModelForCausalLM
            model = auto_class.from_pretrained(settings.model, dtype=dtype, **options)
    except (OSError, ValueError, KeyError) as e:
        if isinstance(e, RerankConfigError):
            raise
        raise ModelLoadError(
            f"cannot load reranker {settings.model!r}: {e}. Pass a local checkpoint folder "
            "(offline machines cannot reach the hub).",
            model=settings.model,
        ) from e
    model.to(device)
    model.eval()
    cls = CrossEncoderReranker if kind == "cross_encoder" else LLMReranker
    reranker = cls(model=model, tokenizer=tokenizer, settings=settings, device=device, dtype=dtype)
    logger.info(
        "loaded %s reranker %s on %s (%s), backend=%s, quantization=%s, max_length=%s",
        kind,
        settings.reported_model_id,
        device,
        dtype,
        settings.backend,
        settings.quantize,
        reranker.max_length,
    )
    return reranker


def _load_onnx(settings: RerankSettings, *, kind: str, config: Any, tokenizer: Any, device: str) -> Any:
    """The cross-encoder on ONNX Runtime (exported and cached on first use; see :mod:`rerank.backends`)."""
    from pathlib import Path  # noqa: PLC0415

    from rerank.backends import OnnxSequenceClassifier, export_cross_encoder  # noqa: PLC0415 - onnxruntime

    if kind != "cross_encoder":
        raise RerankConfigError("backend onnx serves cross-encoders; LLM rerankers run on torch", field="backend")
    if device != "cpu":
        raise RerankConfigError("backend onnx runs on CPU only; on a GPU use backend torch", field="backend")
    input_names = [
        name for name in tokenizer.model_input_names if name in ("input_ids", "token_type_ids", "attention_mask")
    ]
    path = export_cross_encoder(
        Path(settings.model),
        input_names=input_names,
        quantization=settings.quantize,
        cache_root=Path(settings.backend_cache_dir) if settings.backend_cache_dir else None,
        trust_remote_code=settings.trust_remote_code,
    )
    threads = settings.torch_threads or torch.get_num_threads()
    return OnnxSequenceClassifier(path, threads=threads, config=config, input_names=input_names)


def load_in_process(model: str, **settings: Any) -> CrossEncoderReranker | LLMReranker:
    """A reranker to run in the caller's process (no Ray, no HTTP): ``model`` with ``RerankSettings`` options.

    The search path takes it as ``RerankConfig(model=..., loader=rerank.load_in_process)`` or, loaded,
    as ``RerankConfig(reranker=...)``: the object has ``score(query, documents) -> list[float]`` and ``model_id``.

    Args:
        model: checkpoint folder or hub id.
        settings: other :class:`~rerank.settings.RerankSettings` fields (``batch_size``, ``device``...);
            unset ones come from ``ESHYBRID_RERANK_*``, then the defaults.

    Raises:
        RerankConfigError: the settings are invalid or do not fit the model.
        ModelLoadError: the checkpoint or its tokenizer cannot be loaded.
    """
    try:
        validated = RerankSettings(model=model, **settings)
    except ValidationError as e:
        raise RerankConfigError(f"invalid rerank settings for {model!r}: {e}", field="model") from e
    return load_reranker(validated)
