"""``eshybrid serve ...``: run the Ray Serve applications (embed; rerank and search add their own).

Adding a service: write ``add_serve_command(serve_subparsers)`` in your own module (it adds one
sub-parser with ``set_defaults(func=handler)``), list it in ``SERVE_COMMANDS`` below, and reuse
:func:`add_ray_arguments` / :func:`run_app` so every service starts Ray the same way.
Ray, torch and the services are imported only inside handlers (the base install has none of them).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from connector.errors import ConfigError

if TYPE_CHECKING:
    from ray.serve.deployment import Application

__all__ = ["register", "SERVE_COMMANDS", "add_ray_arguments", "run_app", "add_embed_command"]

logger = logging.getLogger(__name__)

# (module, function) adding one `serve` sub-command each; a module that does not exist yet is skipped.
SERVE_COMMANDS: tuple[tuple[str, str], ...] = (
    ("connector._cli_serve", "add_embed_command"),
    ("connector._cli_serve_rerank", "add_serve_command"),
    ("connector._cli_serve_search", "add_serve_command"),
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``serve`` group and every sub-command listed in ``SERVE_COMMANDS``."""
    parser = subparsers.add_parser("serve", help="run a service (embed, rerank, search) on Ray Serve",
                                   description="Run an eshybrid service as a Ray Serve application.")
    serve_subparsers = parser.add_subparsers(dest="serve_command", metavar="SERVICE")
    serve_subparsers.required = True
    for module_name, function_name in SERVE_COMMANDS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name == module_name:
                continue
            raise
        getattr(module, function_name)(serve_subparsers)


def add_ray_arguments(parser: argparse.ArgumentParser, *, default_route_prefix: str) -> None:
    """Options every service shares: where Ray runs and where HTTP listens."""
    group = parser.add_argument_group("Ray and HTTP")
    group.add_argument("--address", default=None,
                       help="Ray cluster to join (e.g. ray://head:10001 or auto); default: start a local Ray")
    group.add_argument("--num-cpus", type=int, default=None, help="CPUs for a local Ray (default: all)")
    group.add_argument("--host", default=None, help="HTTP bind address (default 127.0.0.1)")
    group.add_argument("--port", type=int, default=None, help="HTTP port (default 8000)")
    group.add_argument("--route-prefix", default=None, help=f"HTTP route prefix (default {default_route_prefix})")
    group.add_argument("--app-name", default=None, help="Ray Serve application name")


def run_app(
    build: Callable[[], Application],
    *,
    name: str,
    route_prefix: str,
    host: str,
    port: int,
    address: str | None = None,
    num_cpus: int | None = None,
    on_ready: Callable[[str], None] | None = None,
) -> int:
    """Start (or join) Ray, start Serve's HTTP proxy, run the app and block until Ctrl-C.

    Args:
        build: returns the application; called after Ray is up (it may ask Ray for GPUs).
        on_ready: called with the app's base URL once it is healthy.

    Returns:
        0 after a clean shutdown on Ctrl-C.
    """
    import ray
    from ray import serve

    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    started_serve = False
    try:
        serve.start(http_options={"host": host, "port": port}, logging_config={"enable_access_log": False})
        started_serve = True
        serve.run(build(), name=name, route_prefix=route_prefix, blocking=False)
        url = f"http://{host}:{port}{route_prefix.rstrip('/')}"
        if on_ready is not None:
            on_ready(url)
        while True:
            time.sleep(1.0)
    except KeyboardInterrupt:
        print("shutting down", file=sys.stderr)
        return 0
    finally:
        if started_serve and not address:
            serve.shutdown()
        elif started_serve:
            serve.delete(name)
        ray.shutdown()


def add_embed_command(serve_subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``eshybrid serve embed``: the embedding service."""
    parser = serve_subparsers.add_parser(
        "embed", help="the embedding service (POST /v1/embeddings, GET /info, GET /healthz)",
        description="Serve text embeddings over HTTP. Unset options come from ESHYBRID_EMBED_* env vars "
                    "(e.g. ESHYBRID_EMBED_API_KEY for a bearer token), then defaults.")
    parser.add_argument("--model", default=None,
                        help="local sentence-transformers/transformers folder or hub id "
                             "(default: bundled all-MiniLM-L6-v2, offline)")
    parser.add_argument("--model-id", default=None, help="name reported by /info and checked against index _meta")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None, help="default auto")
    parser.add_argument("--dtype", choices=("auto", "float32", "float16", "bfloat16"), default=None,
                        help="default auto: bf16/fp16 on GPU, fp32 on CPU")
    parser.add_argument("--replicas", type=int, default=None, help="replica count (default 1)")
    parser.add_argument("--num-cpus-per-replica", type=float, default=None, help="Ray CPUs per replica")
    parser.add_argument("--torch-threads", type=int, default=None, help="torch threads per replica on CPU")
    parser.add_argument("--max-batch-size", type=int, default=None, help="texts per batch")
    parser.add_argument("--max-batch-tokens", type=int, default=None, help="padded tokens per forward pass")
    parser.add_argument("--online", action="store_true", help="allow downloads from the Hugging Face hub")
    add_ray_arguments(parser, default_route_prefix="/embed")
    parser.set_defaults(func=_serve_embed)


def _embed_settings(args: argparse.Namespace) -> Any:
    from pydantic import ValidationError

    try:
        from embedding_service.settings import EmbeddingServiceSettings
    except ImportError as e:
        raise ConfigError("the embedding service is not installed; pip install 'eshybrid[serve]'") from e

    given = {
        "model": args.model, "model_id": args.model_id, "device": args.device, "dtype": args.dtype,
        "replicas": args.replicas, "num_cpus_per_replica": args.num_cpus_per_replica,
        "torch_threads": args.torch_threads, "max_batch_size": args.max_batch_size,
        "max_batch_tokens": args.max_batch_tokens, "host": args.host, "port": args.port,
        "route_prefix": args.route_prefix, "app_name": args.app_name,
    }
    overrides: dict[str, Any] = {key: value for key, value in given.items() if value is not None}
    if args.online:
        overrides["offline"] = False
    try:
        return EmbeddingServiceSettings(**overrides)
    except ValidationError as e:
        raise ConfigError(f"invalid embedding service settings: {e}") from e


def _serve_embed(args: argparse.Namespace) -> int:
    settings = _embed_settings(args)

    def build() -> Application:
        from embedding_service.deployment import build_app

        return build_app(settings)

    def ready(url: str) -> None:
        print(f"embedding service ready at {url}  (POST {url}/v1/embeddings, GET {url}/info)", flush=True)

    return run_app(build, name=settings.app_name, route_prefix=settings.route_prefix, host=settings.host,
                   port=settings.port, address=args.address, num_cpus=args.num_cpus, on_ready=ready)
