"""``eshybrid serve image --model FOLDER``: the image embedding service (a CLIP-style dual encoder) on Ray Serve.

Listed in ``connector.cli.serve.SERVE_COMMANDS``; Ray, torch and the service are imported only inside the handler.
"""

from __future__ import annotations

import argparse
from typing import Any

from connector.cli.serve import (
    add_device_arguments,
    add_ray_arguments,
    add_replica_arguments,
    model_service_settings,
    run_model_service,
)

__all__ = ["add_serve_command"]


def add_serve_command(serve_subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``eshybrid serve image``."""
    parser = serve_subparsers.add_parser(
        "image",
        help="the image embedding service (POST /v1/embeddings with images and texts, GET /info)",
        description="Serve a CLIP-style dual encoder: images (url, base64 data, or a path under --image-root) "
        "through the image tower, texts through the text tower, into one vector space. Unset options come "
        "from ESHYBRID_IMAGE_* env vars, then defaults.",
    )
    parser.add_argument("--model", default=None, help="local CLIPModel folder (or ESHYBRID_IMAGE_MODEL)")
    parser.add_argument("--model-id", default=None, help="name reported by /info and recorded per vector")
    add_device_arguments(parser)
    add_replica_arguments(parser)
    parser.add_argument("--max-image-bytes", type=int, default=None, help="bytes per image (default 10 MiB)")
    parser.add_argument("--max-image-pixels", type=int, default=None, help="width x height per image (default 40M)")
    parser.add_argument(
        "--image-root", action="append", default=None, help="folder `path` inputs may read (repeatable; default none)"
    )
    parser.add_argument("--online", action="store_true", help="accepted for symmetry; the model is a local folder")
    add_ray_arguments(parser, default_route_prefix="/image")
    parser.set_defaults(func=_serve_image)


def _image_settings(args: argparse.Namespace) -> Any:
    args.online = False  # ImageEmbeddingSettings reads local folders only (no `offline` switch)
    return model_service_settings(
        args,
        "embedding_service.image_settings.ImageEmbeddingSettings",
        service="image embedding service",
        max_image_bytes=args.max_image_bytes,
        max_image_pixels=args.max_image_pixels,
        image_roots=tuple(args.image_root) if args.image_root else None,
    )


def _serve_image(args: argparse.Namespace) -> int:
    return run_model_service(
        args,
        _image_settings(args),
        deployment="embedding_service.image_deployment",
        ready_message="image embedding service ready at {url}  (POST {url}/v1/embeddings, GET {url}/info)",
    )
