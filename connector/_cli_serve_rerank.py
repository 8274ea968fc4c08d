"""``eshybrid serve rerank --model PATH_OR_ID``: the rerank service on Ray Serve.

Listed in ``connector._cli_serve.SERVE_COMMANDS``; Ray, torch and the service are
imported only inside the handler.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING, Any

from connector._cli_serve import add_ray_arguments, run_app
from connector.errors import ConfigError

if TYPE_CHECKING:
    from ray.serve.deployment import Application

__all__ = ["add_serve_command"]


def add_serve_command(serve_subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``eshybrid serve rerank``."""
    parser = serve_subparsers.add_parser(
        "rerank", help="the rerank service (POST /v1/rerank, GET /info, GET /healthz)",
        description="Serve a cross-encoder or an LLM reranker over HTTP (Cohere/TEI-shaped /v1/rerank). "
                    "Unset options come from ESHYBRID_RERANK_* env vars (e.g. ESHYBRID_RERANK_API_KEY "
                    "for a bearer token), then defaults.")
    parser.add_argument("--model", default=None,
                        help="local checkpoint folder or hub id (required here or as ESHYBRID_RERANK_MODEL)")
    parser.add_argument("--model-id", default=None, help="name reported by /info and in responses")
    parser.add_argument("--kind", choices=("auto", "cross_encoder", "llm"), default=None,
                        help="auto (default) reads the architecture from the config")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None, help="default auto")
    parser.add_argument("--dtype", choices=("auto", "float32", "float16", "bfloat16"), default=None,
                        help="default auto: bf16/fp16 on GPU, fp32 on CPU")
    parser.add_argument("--max-length", type=int, default=None, help="tokens per pair (default: the model's)")
    parser.add_argument("--batch-size", type=int, default=None, help="pairs per forward pass (default 32)")
    parser.add_argument("--max-batch-pairs", type=int, default=None,
                        help="pairs gathered across concurrent requests (default 256)")
    parser.add_argument("--llm-template", default=None, help="LLM prompt with {query} and {document}")
    parser.add_argument("--yes-token", default=None, help="LLM token scored as relevant (default yes)")
    parser.add_argument("--no-token", default=None, help="LLM token scored as not relevant (default no)")
    parser.add_argument("--replicas", type=int, default=None, help="replica count (default 1)")
    parser.add_argument("--num-cpus-per-replica", type=float, default=None, help="Ray CPUs per replica")
    parser.add_argument("--torch-threads", type=int, default=None, help="torch threads per replica on CPU")
    parser.add_argument("--api-key-env", default=None, metavar="VAR",
                        help="read the bearer token from this env var (keeps it out of the process list)")
    parser.add_argument("--online", action="store_true", help="allow downloads from the Hugging Face hub")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow custom modelling code")
    add_ray_arguments(parser, default_route_prefix="/rerank")
    parser.set_defaults(func=_serve_rerank)


def _rerank_settings(args: argparse.Namespace) -> Any:
    from pydantic import ValidationError

    try:
        from rerank.settings import RerankSettings
    except ImportError as e:
        raise ConfigError("the rerank service is not installed; pip install 'eshybrid[serve]'") from e

    given = {
        "model": args.model, "model_id": args.model_id, "kind": args.kind, "device": args.device,
        "dtype": args.dtype, "max_length": args.max_length, "batch_size": args.batch_size,
        "max_batch_pairs": args.max_batch_pairs, "llm_template": args.llm_template,
        "yes_token": args.yes_token, "no_token": args.no_token, "replicas": args.replicas,
        "num_cpus_per_replica": args.num_cpus_per_replica, "torch_threads": args.torch_threads,
        "host": args.host, "port": args.port, "route_prefix": args.route_prefix, "app_name": args.app_name,
    }
    overrides: dict[str, Any] = {key: value for key, value in given.items() if value is not None}
    if args.online:
        overrides["offline"] = False
    if args.trust_remote_code:
        overrides["trust_remote_code"] = True
    if args.api_key_env:
        key = os.environ.get(args.api_key_env)
        if not key:
            raise ConfigError(f"--api-key-env {args.api_key_env}: that environment variable is empty or unset")
        overrides["api_key"] = key
    try:
        return RerankSettings(**overrides)
    except ValidationError as e:
        raise ConfigError(f"invalid rerank service settings: {e}") from e


def _serve_rerank(args: argparse.Namespace) -> int:
    settings = _rerank_settings(args)

    def build() -> Application:
        from rerank.deployment import build_app

        return build_app(settings)

    def ready(url: str) -> None:
        print(f"rerank service ready at {url}  (POST {url}/v1/rerank, GET {url}/info)", flush=True)

    return run_app(build, name=settings.app_name, route_prefix=settings.route_prefix, host=settings.host,
                   port=settings.port, address=args.address, num_cpus=args.num_cpus, on_ready=ready)
