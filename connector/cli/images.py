"""Flags of the image signal (``eshybrid search``) and of an image backfill (``eshybrid backfill --images``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["add_image_search_arguments", "image_signal_from_args", "query_image_from_args"]


def add_image_search_arguments(parser: argparse.ArgumentParser, *, example: bool = True) -> None:
    """``--image-url``, ``--image-field``, ``--image-weight`` and (``example``) ``--image PATH``."""
    group = parser.add_argument_group("image signal (a CLIP-style image service: `eshybrid serve image`)")
    group.add_argument("--image-url", help="image service base URL; adds the text-to-image signal")
    group.add_argument("--image-field", default="image_embedding", help="image vector field (default image_embedding)")
    group.add_argument("--image-weight", type=float, help="fusion weight of the image signal (default 0.3)")
    if example:
        group.add_argument("--image", metavar="PATH", help="search by this example image (with --image-url)")


def image_signal_from_args(args: argparse.Namespace, settings: Any) -> Any:
    """The :class:`~connector.search.images.ImageSignal` the flags ask for, or None."""
    url = getattr(args, "image_url", None)
    if not url:
        if getattr(args, "image", None):
            from connector.errors import ConfigError

            raise ConfigError("--image needs --image-url (the image service)", field="image_url")
        return None
    from connector.search.images import DEFAULT_IMAGE_WEIGHT, ImageSignal
    from connector.services.embedding import EmbeddingClient

    weight = args.image_weight if args.image_weight is not None else DEFAULT_IMAGE_WEIGHT
    client = EmbeddingClient(url, api_key=getattr(settings, "embed_api_key", None))
    return ImageSignal(embedder=client, field=args.image_field, weight=weight)


def query_image_from_args(args: argparse.Namespace) -> bytes | None:
    """The bytes of ``--image PATH``, or None."""
    path = getattr(args, "image", None)
    if not path:
        return None
    try:
        return Path(path).read_bytes()
    except OSError as e:
        from connector.errors import ConfigError

        raise ConfigError(f"--image: cannot read {path}: {e.strerror or e}", field="image") from e
