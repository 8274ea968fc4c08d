"""``eshybrid serve search``: the hybrid search endpoint (POST /search) on Ray Serve.

Hooked into ``eshybrid serve`` through ``connector.cli.serve.SERVE_COMMANDS``; Ray and the
services are imported only when the command runs.
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

from connector.cli.serve import DEFAULT_HOST, DEFAULT_PORT, add_ray_arguments, build_service_app, run_app
from connector.errors import ConfigError
from connector.search.experiment import ExperimentSpec
from connector.search.settings import SearchServiceSettings
from connector.ubi.intake import EventIntakeSettings

if TYPE_CHECKING:
    from ray.serve.deployment import Application

__all__ = ["add_serve_command"]


def add_serve_command(serve_subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``serve search``."""
    parser = serve_subparsers.add_parser(
        "search",
        help="the hybrid search endpoint (POST /search, same fields and explain output as the library)",
        description="Serve HybridSearch over HTTP. The query embedder is the embedding deployment composed into "
        "the same app (default), another running Serve app (--embed-app) or an embedding service URL "
        "(--embed-url). Unset options come from ESHYBRID_SEARCH_* env vars.",
    )
    parser.add_argument("--url", help="cluster URL (default $ESHYBRID_SEARCH_CLUSTER_URL)")
    parser.add_argument("--index", help="default index (default $ESHYBRID_SEARCH_INDEX)")
    parser.add_argument(
        "--allow-index",
        action="append",
        default=[],
        metavar="NAME",
        help="another index requests may name (repeatable)",
    )
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--embed-url", help="embedding service base URL (HTTP)")
    which.add_argument("--embed-app", help="name of a running Serve embedding app (deployment handle)")
    parser.add_argument("--replicas", type=int, default=None, help="search replicas (default 1)")
    parser.add_argument(
        "--correct",
        choices=("off", "auto", "force"),
        default=None,
        help="default spelling correction (default $ESHYBRID_SEARCH_CORRECT, else the library's: auto)",
    )
    parser.add_argument(
        "--embed-budget-s",
        type=float,
        default=None,
        help="the query embedding's budget per search, no retries (default $ESHYBRID_SEARCH_EMBED_BUDGET_S, else 0.2); "
        "over it, or with the embedder down, /search answers the lexical result flagged vector_fallback",
    )
    parser.add_argument(
        "--no-workbench",
        dest="workbench",
        action="store_false",
        default=None,
        help="do not serve the relevance workbench at /ui (default: served; loopback clients only unless "
        "$ESHYBRID_SEARCH_WORKBENCH_API_KEY holds a token)",
    )
    rerank = parser.add_argument_group("reranking (a cross-encoder service: `eshybrid serve rerank`)")
    rerank.add_argument("--rerank-url", help="rerank service base URL; requests may then ask mode hybrid+rerank")
    rerank.add_argument("--rerank-top-k", type=int, help="fused hits the reranker reorders (default 50)")
    rerank.add_argument(
        "--rerank-budget-s",
        type=float,
        help="one rerank call's budget, no retries (default 2.0); over it, or with the reranker down, /search "
        "answers the fused order flagged rerank_fallback",
    )
    image = parser.add_argument_group("image signal (a CLIP-style image service: `eshybrid serve image`)")
    image.add_argument("--image-url", help="image service base URL; adds the image signal (requests may send `image`)")
    image.add_argument("--image-field", help="image vector field (default image_embedding)")
    image.add_argument("--image-weight", type=float, help="fusion weight of the image signal (default 0.3)")
    ubi = parser.add_argument_group("shoppers' searches and events (UBI) and experiments")
    ubi.add_argument(
        "--ubi",
        action="store_true",
        default=None,
        help="record searches that name a client_id (ubi_queries) and accept POST /events (ubi_events)",
    )
    ubi.add_argument("--events-rate-per-s", type=float, help="POST /events records per second per client and address")
    ubi.add_argument("--events-queue-size", type=int, help="event records waiting to be written (then 429)")
    ubi.add_argument("--experiment", metavar="FILE", help="serve this experiment (JSON: name, mode, two arms)")
    add_ray_arguments(parser, default_route_prefix="/")
    parser.set_defaults(func=_serve_search)


def _settings(args: argparse.Namespace) -> Any:
    given = {
        "cluster_url": args.url,
        "index": args.index,
        "embed_url": args.embed_url,
        "embed_app": args.embed_app,
        "replicas": args.replicas,
        "correct": getattr(args, "correct", None),
        "embed_budget_s": getattr(args, "embed_budget_s", None),
        "allowed_indices": tuple(args.allow_index) or None,
        "rerank_url": getattr(args, "rerank_url", None),
        "rerank_top_k": getattr(args, "rerank_top_k", None),
        "rerank_budget_s": getattr(args, "rerank_budget_s", None),
        "image_url": getattr(args, "image_url", None),
        "image_field": getattr(args, "image_field", None),
        "image_weight": getattr(args, "image_weight", None),
        "ubi": getattr(args, "ubi", None),
        "events_queue_size": getattr(args, "events_queue_size", None),
        "workbench": getattr(args, "workbench", None),
    }
    rate = getattr(args, "events_rate_per_s", None)
    if rate is not None:
        given["events"] = EventIntakeSettings(rate_per_s=rate, burst=max(1, int(rate)))
    if getattr(args, "experiment", None):
        given["experiment"] = ExperimentSpec.from_file(args.experiment)
    try:
        return SearchServiceSettings(**{k: v for k, v in given.items() if v is not None})
    except ValueError as e:
        raise ConfigError(f"invalid search service settings (pass --url and --index): {e}") from e


def _workbench_routes(settings: Any) -> Any:
    """What builds ``/ui`` in each replica (``None``: the workbench is off); the export folder made absolute here,
    so replicas write where the command was started."""
    if not settings.workbench:
        return None
    from connector.workbench import build_workbench

    export_dir = str(Path(settings.workbench_export_dir).resolve())
    return functools.partial(build_workbench, api_key=settings.workbench_api_key, export_dir=export_dir)


def _serve_search(args: argparse.Namespace) -> int:
    settings = _settings(args)
    route_prefix = args.route_prefix or "/"

    def build() -> Application:
        from connector.search.app import build_search_app  # imports ray

        embedding = None
        if not settings.embed_url and not settings.embed_app:
            embedding = build_service_app("embedding_service.deployment")
        return build_search_app(settings, embedding=embedding, ui=_workbench_routes(settings))

    def ready(url: str) -> None:
        print(f"search endpoint ready: POST {url}/search", flush=True)
        if settings.workbench:
            print(f"relevance workbench: {url}/ui", flush=True)

    return run_app(
        build,
        name=args.app_name or "search",
        route_prefix=route_prefix,
        host=args.host or DEFAULT_HOST,
        port=args.port or DEFAULT_PORT,
        address=args.address,
        num_cpus=args.num_cpus,
        on_ready=ready,
    )
