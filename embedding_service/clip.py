"""A CLIP-style dual encoder: images through the image tower, texts through the text tower, one space.

Nothing here knows about Ray; the image deployment decides when to call what, and the image bench uses
:class:`ClipEmbedder` directly as the in-process baseline. Vectors are the projected features,
L2-normalised (cosine = dot product, as the index fields are mapped).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from embedding_service.errors import ModelLoadError
from embedding_service.model import ResolvedDevice, ResolvedDType, resolve_precision
from embedding_service.model_spec import local_revision
from embedding_service.settings import Device, DType

__all__ = ["ClipEmbedder"]

logger = logging.getLogger(__name__)

_TORCH_DTYPES: dict[ResolvedDType, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
}


class ClipEmbedder:
    """One loaded dual encoder (transformers ``CLIPModel`` or any model with ``get_image_features`` and
    ``get_text_features``). Use :meth:`load`.
    """

    def __init__(
        self,
        *,
        model: Any,
        tokenizer: Any,
        processor: Any,
        model_id: str,
        revision: str,
        device: ResolvedDevice,
        dtype: ResolvedDType,
    ) -> None:
        self._model = model
        self._tokenizer = tokenizer
        self._processor = processor
        self.model_id = model_id
        self.revision = revision
        self.device: ResolvedDevice = device
        self.dtype: ResolvedDType = dtype
        limit = getattr(model.config, "text_config", model.config)
        self.max_length = int(min(getattr(tokenizer, "model_max_length", 77), limit.max_position_embeddings))
        self.dims = int(self.encode_texts(["warm up"]).shape[1])

    @classmethod
    def load(
        cls, folder: str | Path, *, model_id: str | None = None, device: Device = "auto", dtype: DType = "auto"
    ) -> ClipEmbedder:
        """Load model, tokenizer and image processor from a local folder.

        Raises:
            ModelLoadError: the folder is missing or is not a dual encoder; cuda without a GPU.
        """
        from transformers import AutoImageProcessor, AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        path = Path(folder).expanduser()
        if not path.is_dir():
            raise ModelLoadError(f"image model folder {path} does not exist", path=str(path))
        cuda = torch.cuda.is_available()
        resolved_device, resolved_dtype = resolve_precision(
            device, dtype, cuda_available=cuda, bf16_supported=cuda and torch.cuda.is_bf16_supported()
        )
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(path))
            processor = AutoImageProcessor.from_pretrained(str(path))
            model = AutoModel.from_pretrained(str(path), dtype=_TORCH_DTYPES[resolved_dtype])
        except (OSError, ValueError, KeyError) as e:
            raise ModelLoadError(f"cannot load image model from {path}: {e}", path=str(path)) from e
        if not (hasattr(model, "get_image_features") and hasattr(model, "get_text_features")):
            raise ModelLoadError(
                f"{path} holds a {type(model).__name__}, not a dual encoder with image and text towers",
                path=str(path),
            )
        model.to(resolved_device).eval()
        logger.info("loaded image model %s on %s as %s", path, resolved_device, resolved_dtype)
        return cls(
            model=model,
            tokenizer=tokenizer,
            processor=processor,
            model_id=model_id or path.resolve().name,
            revision=local_revision(path),
            device=resolved_device,
            dtype=resolved_dtype,
        )

    def preprocess(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Resize, crop and normalise as the model was trained (``pixel_values``, float32, on CPU)."""
        return self._processor(images=list(images), return_tensors="pt")["pixel_values"]  # type: ignore[no-any-return]

    def forward_pixels(self, pixels: torch.Tensor) -> np.ndarray:
        """Image vectors for preprocessed ``pixel_values``; float32 ``[rows, dims]``, normalised."""
        with torch.inference_mode():
            out = self._model.get_image_features(pixel_values=pixels.to(self.device, _TORCH_DTYPES[self.dtype]))
            return _normalised(out)

    def preprocess_row(self, image: Image.Image) -> np.ndarray:
        """:meth:`preprocess` of one image as a numpy row ``[3, H, W]``: no torch call, so a thread other than the
        model's can run it without starting a torch thread pool of its own."""
        return self._processor(images=[image], return_tensors="np")["pixel_values"][0]  # type: ignore[no-any-return]

    def forward_pixel_rows(self, rows: Sequence[np.ndarray]) -> np.ndarray:
        """Image vectors for rows of :meth:`preprocess_row`, in order."""
        return self.forward_pixels(torch.from_numpy(np.stack(rows)))

    def encode_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        """Image vectors, in input order."""
        if not images:
            return np.zeros((0, self.dims), dtype=np.float32)
        return self.forward_pixels(self.preprocess(images))

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Text-tower vectors, in input order (truncated at ``max_length`` tokens)."""
        if not texts:
            return np.zeros((0, self.dims), dtype=np.float32)
        tokens = self._tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        tokens.pop("token_type_ids", None)
        with torch.inference_mode():
            out = self._model.get_text_features(**{k: v.to(self.device) for k, v in tokens.items()})
            return _normalised(out)


def _normalised(out: Any) -> np.ndarray:
    # transformers >= 5 returns a model output with the projection in pooler_output; older ones a tensor.
    features = out.pooler_output if hasattr(out, "pooler_output") else out
    return F.normalize(features.float(), p=2.0, dim=-1).cpu().numpy().astype(np.float32, copy=False)
