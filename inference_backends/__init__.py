"""What the embedding and rerank services share to run a model on ONNX Runtime: the export cache beside the
model, onnxruntime's dynamic int8 quantizer with the options measured here, and the CPU session options.

Both services import this package (they may not import each other); it imports neither, nor ``connector``.
"""

from inference_backends.onnx import (
    CACHE_FOLDER,
    INT8_RECIPE,
    Quantization,
    cache_dir,
    cached_export,
    cpu_session,
    ffn_output_matmuls,
    folder_revision,
    quantize_int8,
    variant_key,
)

__all__ = [
    "CACHE_FOLDER",
    "INT8_RECIPE",
    "Quantization",
    "cache_dir",
    "cached_export",
    "cpu_session",
    "ffn_output_matmuls",
    "folder_revision",
    "quantize_int8",
    "variant_key",
]
