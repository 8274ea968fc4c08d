"""``eshybrid serve rerank --model PATH_OR_ID``: the rerank service on Ray Serve.

Listed in ``connector.cli.serve.SERVE_COMMANDS``; Ray, torch and the service are
imported only inside the handler.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from connector.cli.serve import (
    add_device_arguments,
    add_ray_arguments,
    add_replica_arguments,
    model_service_settings,
    run_model_service,
)
from connector.errors import ConfigError

__all__ = ["add_serve_command"]


def add_serve_command(serve_subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``eshybrid serve rerank``."""
    parser = serve_subparsers.add_parser(
        "rerank",
        help="the rerank service (POST /v1/rerank, GET /info, GET /healthz)",
        description="Serve a cross-encoder or an LLM reranker over HTTP (Cohere/TEI-shaped /v1/rerank). "
        "Unset options come from ESHYBRID_RERANK_* env vars (e.g. ESHYBRID_RERANK_API_KEY "
        "for a bearer token), then defaults.",
    )
    parser.add_argument(
        "--model", default=None, help="local checkpoint folder or hub id (required here or as ESHYBRID_RERANK_MODEL)"
    )
    parser.add_argument("--model-id", default=None, help="name reported by /info and in responses")
    parser.add_argument(
        "--kind",
        choices=("auto", "cross_encoder", "llm"),
        default=None,
        help="auto (default) reads the architecture from the config",
    )
    add_device_arguments(parser)
    parser.add_argument(
        "--backend",
        choices=("torch", "onnx"),
        default=None,
        help="torch (default); onnx: ONNX Runtime on CPU (cross-encoders), exported once beside the model",
    )
    parser.add_argument(
        "--quantize", choices=("none", "int8"), default=None, help="int8: dynamic int8 weights (backend onnx)"
    )
    parser.add_argument("--max-length", type=int, default=None, help="tokens per pair (default: the model's)")
    parser.add_argument(
        "--max-doc-tokens",
        type=int,
        default=None,
        help="tokens a document keeps before pairing (default: ESHYBRID_RERANK_MAX_DOC_TOKENS, else the chosen "
        "budget; 0: cut only at --max-length)",
    )
    parser.add_argument("--batch-size", type=int, default=None, help="pairs per forward pass (default 32)")
    parser.add_argument(
        "--max-batch-pairs", type=int, default=None, help="pairs gathered across concurrent requests (default 256)"
    )
    parser.add_argument("--llm-template", default=None, help="LLM prompt with {query} and {document}")
    parser.add_argument("--yes-token", default=None, help="LLM token scored as relevant (default yes)")
    parser.add_argument("--no-token", default=None, help="LLM token scored as not relevant (default no)")
    add_replica_arguments(parser)
    parser.add_argument(
        "--api-key-env",
        default=None,
        metavar="VAR",
        help="read the bearer token from this env var (keeps it out of the process list)",
    )
    parser.add_argument("--online", action="store_true", help="allow downloads from the Hugging Face hub")
    parser.add_argument("--trust-remote-code", action="store_true", help="allow custom modelling code")
    add_ray_arguments(parser, default_route_prefix="/rerank")
    parser.set_defaults(func=_serve_rerank)


def _rerank_settings(args: argparse.Namespace) -> Any:
    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            raise ConfigError(f"--api-key-env {args.api_key_env}: that environment variable is empty or unset")
    return model_service_settings(
        args,
        "rerank.settings.RerankSettings",
        service="rerank service",
        kind=args.kind,
        backend=args.backend,
        quantize=args.quantize,
        max_length=args.max_length,
        max_doc_tokens=args.max_doc_tokens,
        batch_size=args.batch_size,
        max_batch_pairs=args.max_batch_pairs,
        llm_template=args.llm_template,
        yes_token=args.yes_token,
        no_token=args.no_token,
        trust_remote_code=True if args.trust_remote_code else None,
        api_key=api_key,
    )


def _serve_rerank(args: argparse.Namespace) -> int:
    return run_model_service(
        args,
        _rerank_settings(args),
        deployment="rerank.deployment",
        ready_message="rerank service ready at {url}  (POST {url}/v1/rerank, GET {url}/info)",
    )
