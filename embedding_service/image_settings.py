"""Settings of the image embedding service (a deployable of its own): env prefix ``ESHYBRID_IMAGE_``."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from embedding_service.settings import Device, DType, niceness_field

__all__ = ["ImageEmbeddingSettings", "SUPPORTED_IMAGE_FORMATS"]

# Pillow format names the service decodes; anything else is a 422 naming the field.
SUPPORTED_IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP")


class ImageEmbeddingSettings(BaseSettings):
    """A CLIP-style dual encoder served on ``POST /v1/embeddings``: images through the image tower, texts
    through the text tower, into one vector space. Every field can come from the environment
    (``ESHYBRID_IMAGE_MAX_IMAGE_BYTES=...``).
    """

    model_config = SettingsConfigDict(
        env_prefix="ESHYBRID_IMAGE_", extra="forbid", frozen=True, protected_namespaces=()
    )

    # --- model ---
    model: str = Field(
        description="Local folder of a transformers CLIPModel (config, weights, tokenizer, preprocessor_config.json)."
    )
    model_id: str | None = Field(None, description="Name reported by /info and recorded per vector; default: folder.")
    device: Device = Field("auto", description="auto takes a GPU when the replica has one.")
    dtype: DType = Field("auto", description="auto: bfloat16 (or float16) on GPU, float32 on CPU.")
    torch_threads: int | None = Field(
        None, ge=1, le=256, description="intra-op threads per replica on CPU; None = max(1, num_cpus_per_replica)."
    )

    # --- batching ---
    max_batch_size: int = Field(64, ge=1, le=4096, description="Images (or texts) per @serve.batch call.")
    batch_wait_timeout_s: float = Field(0.005, ge=0.0, le=1.0, description="How long a batch waits to fill.")

    # --- input limits ---
    max_items_per_request: int = Field(256, ge=1, le=100_000, description="Inputs per request.")
    max_chars_per_item: int = Field(10_000, ge=1, le=10_000_000, description="Characters per text input.")
    max_image_bytes: int = Field(
        10 * 1024 * 1024, ge=1024, le=1024**3, description="Bytes of one encoded image (data, file or download)."
    )
    max_image_pixels: int = Field(
        40_000_000, ge=1, le=1_000_000_000, description="width x height of one image, checked before decoding."
    )
    fetch_timeout_s: float = Field(10.0, gt=0.0, le=300.0, description="Time to download one image URL.")
    image_roots: tuple[str, ...] = Field(
        (), description="Folders whose files `path` inputs may name; empty = path inputs are refused."
    )
    max_ongoing_requests: int = Field(32, ge=1, le=10_000, description="Requests one replica works on at once.")
    max_queued_requests: int = Field(128, ge=1, le=1_000_000, description="Requests queued before 429.")
    retry_after_s: float = Field(1.0, ge=0.0, le=3600.0, description="Retry-After sent with 429.")
    api_key: SecretStr | None = Field(None, description="Bearer token required on /v1/embeddings and /info.")

    # --- scaling ---
    replicas: int = Field(1, ge=1, le=1024, description="Replica count.")
    num_cpus_per_replica: float = Field(1.0, ge=0.0, le=1024.0, description="Ray CPUs reserved per replica.")
    num_gpus_per_replica: float = Field(1.0, gt=0.0, le=16.0, description="Ray GPUs per replica when it runs on GPU.")
    niceness: int | None = niceness_field()

    # --- HTTP ---
    app_name: str = Field("image", min_length=1, max_length=100, description="Ray Serve application name.")
    route_prefix: str = Field("/image", pattern=r"^/[A-Za-z0-9_\-/]*$", description="HTTP route prefix of the app.")
    host: str = Field("127.0.0.1", description="HTTP bind address of the Serve proxy.")
    port: int = Field(8000, ge=1, le=65535, description="HTTP port of the Serve proxy.")
