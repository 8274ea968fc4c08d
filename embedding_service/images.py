"""Image inputs of the image embedding service: the request shape, and reading one image within the limits.

``POST /v1/embeddings`` of the image service takes ``input`` as a list whose items are either a plain string
(a text, embedded by the text tower, as in the OpenAI shape) or an object with exactly one of::

    {"text": "red circle"}                       the text tower
    {"image": {"url": "https://.../1.jpg"}}       downloaded by the service (http/https)
    {"image": {"data": "<base64>"}}               the encoded file, base64 (a data: URL prefix is accepted)
    {"image": {"path": "/srv/images/1.jpg"}}      a file under one of the service's image_roots

Every bad image is an :class:`InvalidInputError` whose ``field`` names it (``input[3].image.url``): not an image,
an unsupported format, too many bytes (413), too many pixels (413), an unreachable URL, a path outside the roots.
No Ray and no torch here; Pillow and httpx only.
"""

from __future__ import annotations

import base64
import binascii
import io
from pathlib import Path
from typing import Annotated, Literal

import httpx
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field, model_validator

from embedding_service.errors import InvalidInputError
from embedding_service.image_settings import SUPPORTED_IMAGE_FORMATS

__all__ = [
    "ImageSource",
    "InputItem",
    "ImageEmbeddingRequest",
    "ImageTooLargeError",
    "decode_image",
    "read_image_source",
]


class ImageTooLargeError(InvalidInputError):
    """An image has more bytes or pixels than the service allows."""

    status = 413


class ImageSource(BaseModel):
    """Exactly one of ``url``, ``data`` (base64) or ``path``."""

    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(None, description="http(s) URL the service downloads.")
    data: str | None = Field(None, description="The encoded image file, base64 (optionally a data: URL).")
    path: str | None = Field(None, description="A file under one of the service's image_roots.")

    @model_validator(mode="after")
    def _exactly_one(self) -> ImageSource:
        given = [name for name in ("url", "data", "path") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of url, data, path (got {', '.join(given) or 'none'})")
        return self


class InputItem(BaseModel):
    """Exactly one of ``text`` or ``image``."""

    model_config = ConfigDict(extra="forbid")

    text: str | None = Field(None, description="A text for the text tower.")
    image: ImageSource | None = Field(None, description="An image for the image tower.")

    @model_validator(mode="after")
    def _exactly_one(self) -> InputItem:
        if (self.text is None) == (self.image is None):
            raise ValueError("give exactly one of text, image")
        return self


class ImageEmbeddingRequest(BaseModel):
    """``POST /v1/embeddings`` body of the image service (see the module docstring for the item shapes)."""

    model_config = ConfigDict(extra="forbid")

    input: str | Annotated[list[str | InputItem], Field(min_length=1)] = Field(
        description="One text, or a non-empty list of texts, {text} and {image: {url|data|path}} items."
    )
    model: str | None = Field(None, description="Must name the served model when given.")
    input_type: Literal["query", "document"] = Field("document", description="Accepted; CLIP has no prefixes.")
    encoding_format: Literal["float", "base64"] = Field("float", description="base64: little-endian float32.")
    dimensions: int | None = Field(None, ge=1, description="Must equal the model's dims when given.")
    user: str | None = Field(None, description="Accepted for OpenAI compatibility; ignored.")


def decode_image(raw: bytes, *, field: str, max_bytes: int, max_pixels: int) -> Image.Image:
    """Decode ``raw`` into an RGB image, checking bytes, format and pixels (before decoding the pixels).

    Raises:
        ImageTooLargeError: more than ``max_bytes`` bytes or ``max_pixels`` pixels.
        InvalidInputError: not an image, or a format outside :data:`SUPPORTED_IMAGE_FORMATS`.
    """
    if len(raw) > max_bytes:
        raise ImageTooLargeError(f"{field}: image has {len(raw)} bytes; at most {max_bytes}", field=field)
    try:
        image = Image.open(io.BytesIO(raw))
    except Image.DecompressionBombError as e:
        raise ImageTooLargeError(f"{field}: image is too large to decode ({e})", field=field) from e
    except UnidentifiedImageError as e:
        raise InvalidInputError(f"{field}: not an image (no known image format)", field=field) from e
    except (OSError, ValueError) as e:
        raise InvalidInputError(f"{field}: not an image ({e})", field=field) from e
    if image.format not in SUPPORTED_IMAGE_FORMATS:
        raise InvalidInputError(
            f"{field}: unsupported image format {image.format}; use one of {', '.join(SUPPORTED_IMAGE_FORMATS)}",
            field=field,
        )
    width, height = image.size
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"{field}: image is {width}x{height} = {width * height} pixels; at most {max_pixels}", field=field
        )
    try:
        return image.convert("RGB")
    except (OSError, ValueError, SyntaxError) as e:
        raise InvalidInputError(f"{field}: the {image.format} data is damaged ({e})", field=field) from e


def _b64(data: str, field: str) -> bytes:
    if data.startswith("data:"):
        data = data.split(",", 1)[-1]
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as e:
        raise InvalidInputError(f"{field}: data is not valid base64 ({e})", field=field) from e


def _read_path(path: str, field: str, *, roots: tuple[str, ...], max_bytes: int) -> bytes:
    if not roots:
        raise InvalidInputError(
            f"{field}: this service reads no files (image_roots is empty); send url or data", field=field
        )
    resolved = Path(path).resolve()
    if not any(resolved.is_relative_to(Path(root).resolve()) for root in roots):
        raise InvalidInputError(f"{field}: {path} is outside the service's image_roots", field=field)
    try:
        size = resolved.stat().st_size
        if size > max_bytes:
            raise ImageTooLargeError(f"{field}: file has {size} bytes; at most {max_bytes}", field=field)
        return resolved.read_bytes()
    except OSError as e:
        raise InvalidInputError(f"{field}: cannot read {path}: {e.strerror or e}", field=field) from e


def _download(url: str, field: str, *, client: httpx.Client, max_bytes: int) -> bytes:
    if not url.startswith(("http://", "https://")):
        raise InvalidInputError(f"{field}: only http(s) URLs are fetched, got {url[:100]!r}", field=field)
    try:
        with client.stream("GET", url) as response:
            if response.status_code != 200:
                raise InvalidInputError(f"{field}: {url} answered HTTP {response.status_code}", field=field)
            kind = response.headers.get("content-type", "")
            if kind and not kind.startswith(("image/", "application/octet-stream")):
                raise InvalidInputError(f"{field}: {url} is {kind}, not an image", field=field)
            declared = int(response.headers.get("content-length") or 0)
            if declared > max_bytes:
                raise ImageTooLargeError(f"{field}: {url} has {declared} bytes; at most {max_bytes}", field=field)
            chunks, total = [], 0
            for chunk in response.iter_bytes():
                total += len(chunk)
                if total > max_bytes:
                    raise ImageTooLargeError(f"{field}: {url} has more than {max_bytes} bytes", field=field)
                chunks.append(chunk)
            return b"".join(chunks)
    except httpx.HTTPError as e:
        raise InvalidInputError(f"{field}: cannot fetch {url}: {type(e).__name__}: {e}", field=field) from e


def read_image_source(
    source: ImageSource,
    *,
    field: str,
    client: httpx.Client,
    roots: tuple[str, ...],
    max_bytes: int,
    max_pixels: int,
) -> Image.Image:
    """Fetch, read or decode one image source and decode it within the limits.

    Args:
        field: the request field it came from (``input[2].image``); errors name ``<field>.url|data|path``.
        client: the HTTP client URLs are downloaded with (its timeout bounds each download).

    Raises:
        InvalidInputError / ImageTooLargeError: see :func:`decode_image`; also an unreachable URL or unreadable path.
    """
    if source.url is not None:
        sub = f"{field}.url"
        raw = _download(source.url, sub, client=client, max_bytes=max_bytes)
    elif source.data is not None:
        sub = f"{field}.data"
        raw = _b64(source.data, sub)
    else:
        sub = f"{field}.path"
        raw = _read_path(str(source.path), sub, roots=roots, max_bytes=max_bytes)
    return decode_image(raw, field=sub, max_bytes=max_bytes, max_pixels=max_pixels)
