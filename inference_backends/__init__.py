"""What the embedding and rerank services share to run a model on ONNX Runtime: the export cache beside the
model, onnxruntime's dynamic int8 quantizer with the options measured here, and the CPU session options.

Both services import this package (they may not import each other); it imports neither, nor ``connector``.
The in-process query encoder (``connector.services.query_encoder``) reads the exports' ``encoder.json``
(:mod:`inference_backends.manifest`) and opens them with :func:`cpu_session`; so this package sits at the bottom
of the layers, and its heavy imports (onnx, onnxruntime, openvino, nncf) stay lazy. OpenVINO (fp32, or static
int8 calibrated on sample texts with NNCF) is :mod:`inference_backends.openvino`.
"""

from inference_backends.manifest import (
    MANIFEST_FILE,
    EncoderManifest,
    default_places,
    find_manifests,
    read_manifest,
    write_manifest,
)
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
    user_cache,
    variant_key,
)
from inference_backends.openvino import (
    cached_openvino,
    calibration_key,
    openvino_available,
    ov_compiled,
    ov_runtime_precisions,
)

__all__ = [
    "CACHE_FOLDER",
    "MANIFEST_FILE",
    "EncoderManifest",
    "default_places",
    "find_manifests",
    "read_manifest",
    "write_manifest",
    "user_cache",
    "INT8_RECIPE",
    "Quantization",
    "cache_dir",
    "cached_export",
    "cpu_session",
    "ffn_output_matmuls",
    "folder_revision",
    "quantize_int8",
    "variant_key",
    "calibration_key",
    "cached_openvino",
    "openvino_available",
    "ov_compiled",
    "ov_runtime_precisions",
]
