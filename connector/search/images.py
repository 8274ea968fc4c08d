"""The image signal of a hybrid search: kNN over an image vector field, fused as a third signal.

The query reaches the image space through a CLIP-style image service (``embedding_service.image_deployment``):
the search text through its text tower (text-to-image), or an example image through its image tower
(search by image). The leg is the same kNN body as the text-vector leg (same pre-filters), over the image field;
it is fused with the lexical and text-vector legs by N-signal fusion under the name ``image``, with its own
weight (``FusionConfig.weights["image"]``, else :attr:`ImageSignal.weight`), and shows in explain per signal.
"""

from __future__ import annotations

import base64
import dataclasses
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from connector.errors import ConfigError, SearchRequestError
from connector.search.models import FusionConfig

__all__ = [
    "DEFAULT_IMAGE_WEIGHT",
    "IMAGE_SIGNAL",
    "MAX_QUERY_IMAGE_BYTES",
    "EmbedImage",
    "check_query_image",
    "ImageQueryEmbedder",
    "ImageSignal",
    "with_image_weight",
]

IMAGE_SIGNAL = "image"
# No shop image data is at hand to tune on (the dev data, ESCI, has no images), so the image signal weighs what
# the text-vector leg weighs by default (DEFAULT_FUSION's vector share); pass a weight of your own after `tune`.
DEFAULT_IMAGE_WEIGHT = 0.3
# Bytes of an example image a search accepts (the service has its own limit too).
MAX_QUERY_IMAGE_BYTES = 10 * 1024 * 1024


class ImageQueryEmbedder(Protocol):
    """What the image signal needs of the image service client (an ``EmbeddingClient`` pointed at it)."""

    def embed_query(self, text: str) -> list[float]: ...

    def embed_images(self, images: Sequence[Mapping[str, str]]) -> list[list[float]]: ...


@dataclass(frozen=True)
class EmbedImage:
    """A search operation: the image-space vector of ``text`` (text tower) or of ``image`` (image tower, bytes of
    an encoded file); result: ``list[float]``."""

    text: str | None = None
    image: bytes | None = None


@dataclass(kw_only=True)
class ImageSignal:
    """A third search signal over an image vector field.

    Attributes:
        embedder: the image service client (text tower for the search text, image tower for an example image).
        field: the image vector field (``mappings.images``: ``image_embedding`` by default).
        weight: its fusion weight when the search's ``FusionConfig.weights`` names none.
        cache_size: example-image vectors kept (text vectors are cached by the client).
    """

    embedder: ImageQueryEmbedder
    field: str = "image_embedding"
    weight: float = DEFAULT_IMAGE_WEIGHT
    cache_size: int = 64
    _cache: OrderedDict[bytes, list[float]] = dataclasses.field(default_factory=OrderedDict, init=False, repr=False)
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.weight <= 1000.0:
            raise ConfigError(f"image weight must be within 0..1000, got {self.weight}", field="image_weight")

    def vector(self, op: EmbedImage) -> list[float]:
        """Perform :class:`EmbedImage` (sync; the async driver runs it in a thread)."""
        if op.image is None:
            return list(self.embedder.embed_query(op.text or ""))
        key = bytes(op.image)
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None:
            return list(cached)
        data = base64.b64encode(key).decode("ascii")
        vector = list(self.embedder.embed_images([{"data": data}])[0])
        with self._lock:
            self._cache[key] = vector
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return vector


def check_query_image(image: Any) -> bytes:
    """The example image of a search as bytes.

    Raises:
        SearchRequestError: (``field="image"``) not bytes, empty or too large.
    """
    if not isinstance(image, bytes | bytearray) or not image:
        raise SearchRequestError("image must be the non-empty bytes of an image file", field="image")
    if len(image) > MAX_QUERY_IMAGE_BYTES:
        raise SearchRequestError(f"image has {len(image)} bytes; at most {MAX_QUERY_IMAGE_BYTES}", field="image")
    return bytes(image)


def with_image_weight(fusion: FusionConfig, signal: ImageSignal) -> FusionConfig:
    """``fusion`` with the image weight: its own ``weights["image"]`` when given, else ``signal.weight``."""
    if IMAGE_SIGNAL in fusion.weights:
        return fusion
    return fusion.with_weights({IMAGE_SIGNAL: signal.weight})
