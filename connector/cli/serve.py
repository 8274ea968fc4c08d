"""``eshybrid serve ...``: run the Ray Serve applications (embed; rerank and search add their own).

Adding a service: write ``add_serve_command(serve_subparsers)`` in your own module (it adds one
sub-parser with ``set_defaults(func=handler)``), list it in ``SERVE_COMMANDS`` below, and reuse
:func:`add_ray_arguments` / :func:`run_app` so every service starts Ray the same way (a model service:
:func:`add_device_arguments`, :func:`add_replica_arguments`, :func:`model_service_settings` and
:func:`run_model_service`, as ``embed`` and ``rerank`` do).
Ray, torch and the services are imported only inside handlers (the base install has none of them).

Stopping: Ctrl-C (SIGINT) and SIGTERM both shut Serve down, stop the local Ray's raylet with time to stop its own
agents and workers, then ``ray.shutdown()``, and finally end whatever process of that Ray session is still alive
(bounded waits), so nothing is left behind. Without this, Ray's own SIGTERM handler (or ``ray.shutdown()`` after
Ctrl-C) gives the raylet one second before a SIGKILL; a raylet killed that way leaves its ``DashboardAgent`` and
``RuntimeEnvAgent`` re-parented to init, blocked for a minute or more reporting the death to a GCS that is gone.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, Any

from connector.cli.common import add_command_group, import_optional
from connector.errors import ConfigError

if TYPE_CHECKING:
    from ray.serve.deployment import Application

__all__ = [
    "register",
    "SERVE_COMMANDS",
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "add_ray_arguments",
    "run_app",
    "build_service_app",
    "add_device_arguments",
    "add_replica_arguments",
    "model_service_settings",
    "run_model_service",
    "add_embed_command",
]

logger = logging.getLogger(__name__)

# (module, function) adding one `serve` sub-command each; a module that does not exist yet is skipped.
SERVE_COMMANDS: tuple[tuple[str, str], ...] = (
    ("connector.cli.serve", "add_embed_command"),
    ("connector.cli.serve_rerank", "add_serve_command"),
    ("connector.cli.serve_image", "add_serve_command"),
    ("connector.cli.serve_search", "add_serve_command"),
)

# Where Serve's HTTP proxy listens when neither the flags nor the service's settings say.
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000

# Stopping a local Ray: time the raylet gets to stop its agents and workers after SIGTERM (Ray itself gives it 1 s),
# then time the session's processes get to exit after ray.shutdown(), and again after our SIGTERM, before SIGKILL.
_RAYLET_STOP_S = 15.0
_RAY_EXIT_WAIT_S = 10.0
_RAY_TERM_WAIT_S = 5.0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``serve`` group and every sub-command listed in ``SERVE_COMMANDS``."""
    serve_subparsers = add_command_group(
        subparsers,
        "serve",
        help="run a service (embed, rerank, search) on Ray Serve",
        description="Run an eshybrid service as a Ray Serve application.",
        metavar="SERVICE",
    )
    for module_name, function_name in SERVE_COMMANDS:
        module = import_optional(module_name)
        if module is not None:
            getattr(module, function_name)(serve_subparsers)


def add_ray_arguments(parser: argparse.ArgumentParser, *, default_route_prefix: str) -> None:
    """Options every service shares: where Ray runs and where HTTP listens."""
    group = parser.add_argument_group("Ray and HTTP")
    group.add_argument(
        "--address",
        default=None,
        help="Ray cluster to join (e.g. ray://head:10001 or auto); default: start a local Ray",
    )
    group.add_argument("--num-cpus", type=int, default=None, help="CPUs for a local Ray (default: all)")
    group.add_argument("--host", default=None, help=f"HTTP bind address (default {DEFAULT_HOST})")
    group.add_argument("--port", type=int, default=None, help=f"HTTP port (default {DEFAULT_PORT})")
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
    """Start (or join) Ray, start Serve's HTTP proxy, run the app and block until Ctrl-C or SIGTERM.

    On either signal: Serve is shut down (or, on a joined cluster, only this app deleted), and a Ray this
    command started is stopped with every process of its session (see the module docstring).

    Args:
        build: returns the application; called after Ray is up (it may ask Ray for GPUs).
        on_ready: called with the app's base URL once it is healthy.

    Returns:
        0 after a clean shutdown on Ctrl-C or SIGTERM.
    """
    import ray
    from ray import serve

    if address:
        ray.init(address=address, log_to_driver=False)
    else:
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    started_serve = False
    # After ray.init, which installs Ray's own SIGTERM handler (teardown with a 1 s grace, then exit).
    with _stop_on_signals():
        try:
            serve.start(http_options={"host": host, "port": port}, logging_config={"enable_access_log": False})
            started_serve = True
            serve.run(build(), name=name, route_prefix=route_prefix, blocking=False)
            url = f"http://{host}:{port}{route_prefix.rstrip('/')}"
            if on_ready is not None:
                on_ready(url)
            while True:
                time.sleep(1.0)
        except KeyboardInterrupt:  # Ctrl-C, or SIGTERM as _StopRequested
            print("shutting down", file=sys.stderr, flush=True)
            return 0
        finally:
            _ignore_stop_signals()  # a second Ctrl-C must not cut the (bounded) cleanup short
            session = [] if address else _local_ray_processes()
            try:
                if started_serve and not address:
                    serve.shutdown()
                elif started_serve:
                    serve.delete(name)
            finally:
                _stop_raylet(session)
                ray.shutdown()
                _end_processes(session)


class _StopRequested(KeyboardInterrupt):
    """SIGTERM asked the service to stop; a KeyboardInterrupt, so that it and Ctrl-C take one path."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _StopRequested(f"signal {signum}")


def _ignore_stop_signals() -> None:
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)


@contextmanager
def _stop_on_signals() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise :class:`_StopRequested`; the old handlers come back after it."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers can only be set from the main thread
        return
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    for signum in previous:
        signal.signal(signum, _raise_stop)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _local_ray_processes() -> list[Any]:
    """The processes of the Ray this command started: all its descendants (raylet, GCS, agents, workers...).

    Taken while the tree is whole: once the raylet is gone its agents and workers are re-parented to init.
    Also any process whose command line names the session's folder (read from the raylet's).
    """
    import psutil  # type: ignore[import-untyped]  # ray ships it (imported after ray)

    me = psutil.Process()
    found = {p.pid: p for p in me.children(recursive=True)}
    session_dirs = set()
    for proc in list(found.values()):
        try:
            if proc.name() == "raylet":
                session_dirs |= {a.split("=", 1)[1] for a in proc.cmdline() if a.startswith("--session_dir=")}
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    if session_dirs:
        for proc in psutil.process_iter(["pid", "cmdline"]):
            cmdline = proc.info["cmdline"] or ()
            if proc.pid != me.pid and any(d in part for d in session_dirs for part in cmdline):
                found.setdefault(proc.pid, proc)
    return list(found.values())


def _stop_raylet(session: list[Any]) -> None:
    """SIGTERM the session's raylet and wait (bounded) until it has stopped its agents and workers and exited."""
    import psutil

    for proc in session:
        try:
            if proc.name() == "raylet":
                proc.terminate()
                proc.wait(timeout=_RAYLET_STOP_S)
        except psutil.TimeoutExpired:
            logger.warning("the raylet (pid %s) did not stop within %.0fs", proc.pid, _RAYLET_STOP_S)
        except psutil.NoSuchProcess:
            continue


def _end_processes(session: list[Any]) -> None:
    """Wait (bounded) for ``session``'s processes to exit; SIGTERM those that do not, then SIGKILL."""
    import psutil

    _, alive = psutil.wait_procs(session, timeout=_RAY_EXIT_WAIT_S)
    if not alive:
        return
    described = []
    for proc in alive:
        try:
            described.append(f"{proc.pid} {proc.name()}")
            proc.terminate()
        except psutil.NoSuchProcess:
            continue
    logger.warning("stopping Ray processes that outlived ray.shutdown(): %s", ", ".join(described))
    _, alive = psutil.wait_procs(alive, timeout=_RAY_TERM_WAIT_S)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            continue
    psutil.wait_procs(alive, timeout=_RAY_TERM_WAIT_S)


def build_service_app(deployment: str, settings: Any = None) -> Application:
    """``<deployment>.build_app(settings)``: a model service's application (the module is imported here, with Ray up).

    Args:
        deployment: the module, e.g. ``"embedding_service.deployment"``.
        settings: its settings; None: the module's defaults (``ESHYBRID_*`` env vars).
    """
    module = importlib.import_module(deployment)
    app: Application = module.build_app(settings) if settings is not None else module.build_app()
    return app


def add_device_arguments(parser: argparse.ArgumentParser) -> None:
    """``--device`` and ``--dtype``: where a model service's torch model runs, and in what precision."""
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default=None, help="default auto")
    parser.add_argument(
        "--dtype",
        choices=("auto", "float32", "float16", "bfloat16"),
        default=None,
        help="default auto: bf16/fp16 on GPU, fp32 on CPU",
    )


def add_replica_arguments(parser: argparse.ArgumentParser) -> None:
    """``--replicas``, ``--num-cpus-per-replica``, ``--torch-threads`` and ``--niceness`` of a model service."""
    parser.add_argument(
        "--replicas",
        type=int,
        default=None,
        help="replica count (default: one per CPU of the Ray cluster on CPU, one per GPU on GPU)",
    )
    parser.add_argument("--num-cpus-per-replica", type=float, default=None, help="Ray CPUs per replica")
    parser.add_argument("--torch-threads", type=int, default=None, help="torch threads per replica on CPU")
    parser.add_argument(
        "--niceness",
        type=int,
        default=None,
        help="niceness of the replica processes, 0-19 (default: Ray's 15); 19 on a node shared with the search",
    )


# Flags every model service has (its own --model/--model-id, the device, replica and Ray/HTTP ones),
# named as its settings fields.
_MODEL_SERVICE_FIELDS = (
    "model",
    "model_id",
    "device",
    "dtype",
    "replicas",
    "num_cpus_per_replica",
    "torch_threads",
    "niceness",
    "host",
    "port",
    "route_prefix",
    "app_name",
)


def model_service_settings(args: argparse.Namespace, settings_class: str, *, service: str, **given: Any) -> Any:
    """A model service's settings: the flags that were given, then its ``ESHYBRID_*`` env vars, then defaults.

    Args:
        settings_class: ``"package.module.ClassName"``, imported here (it needs ``eshybrid[serve]``).
        service: what the errors call it, e.g. ``"embedding service"``.
        given: the service's own flags as settings fields; None means not given.

    Raises:
        ConfigError: the service is not installed, or the settings do not validate.
    """
    from pydantic import ValidationError

    module_name, _, class_name = settings_class.rpartition(".")
    try:
        settings_type = getattr(importlib.import_module(module_name), class_name)
    except ImportError as e:
        raise ConfigError(f"the {service} is not installed; pip install 'eshybrid[serve]'") from e
    common = {name: getattr(args, name) for name in _MODEL_SERVICE_FIELDS}
    overrides: dict[str, Any] = {key: value for key, value in {**common, **given}.items() if value is not None}
    if args.online:
        overrides["offline"] = False
    try:
        return settings_type(**overrides)
    except ValidationError as e:
        raise ConfigError(f"invalid {service} settings: {e}") from e


def run_model_service(args: argparse.Namespace, settings: Any, *, deployment: str, ready_message: str) -> int:
    """Run ``<deployment>.build_app(settings)`` with :func:`run_app` where ``settings`` say.

    Args:
        deployment: the module whose ``build_app`` makes the application (imported once Ray is up).
        ready_message: printed when it is healthy; ``{url}`` is its base URL.
    """

    def build() -> Application:
        return build_service_app(deployment, settings)

    def ready(url: str) -> None:
        print(ready_message.format(url=url), flush=True)

    return run_app(
        build,
        name=settings.app_name,
        route_prefix=settings.route_prefix,
        host=settings.host,
        port=settings.port,
        address=args.address,
        num_cpus=args.num_cpus,
        on_ready=ready,
    )


def add_embed_command(serve_subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``eshybrid serve embed``: the embedding service."""
    parser = serve_subparsers.add_parser(
        "embed",
        help="the embedding service (POST /v1/embeddings, GET /info, GET /healthz)",
        description="Serve text embeddings over HTTP. Unset options come from ESHYBRID_EMBED_* env vars "
        "(e.g. ESHYBRID_EMBED_API_KEY for a bearer token), then defaults.",
    )
    parser.add_argument(
        "--model",
        default=None,
        help="local sentence-transformers/transformers folder or hub id (default: bundled all-MiniLM-L6-v2, offline)",
    )
    parser.add_argument("--model-id", default=None, help="name reported by /info and checked against index _meta")
    add_device_arguments(parser)
    add_replica_arguments(parser)
    parser.add_argument(
        "--backend",
        choices=("auto", "torch", "onnx", "openvino"),
        default=None,
        help="torch (default); onnx: ONNX Runtime on CPU, exported once beside the model; openvino: OpenVINO on "
        "CPU (the openvino extra; int8 static, calibrated on --calibration-file); auto: the fastest that keeps "
        "cosine >= 0.99 to torch fp32 on sample texts (logged)",
    )
    parser.add_argument(
        "--calibration-file",
        default=None,
        metavar="FILE",
        help="openvino int8: one text per line, a sample of the texts the backfill embeds (default: bundled sample)",
    )
    parser.add_argument(
        "--quantize",
        choices=("none", "int8"),
        default=None,
        help="int8: dynamic int8 weights (onnx; auto may pick it unless none). The quantization is part of the "
        "model id recorded per vector, so switching re-embeds on the next backfill",
    )
    parser.add_argument("--max-batch-size", type=int, default=None, help="texts per batch")
    parser.add_argument("--max-batch-tokens", type=int, default=None, help="padded tokens per forward pass")
    parser.add_argument("--online", action="store_true", help="allow downloads from the Hugging Face hub")
    add_ray_arguments(parser, default_route_prefix="/embed")
    parser.set_defaults(func=_serve_embed)


def _embed_settings(args: argparse.Namespace) -> Any:
    return model_service_settings(
        args,
        "embedding_service.settings.EmbeddingServiceSettings",
        service="embedding service",
        max_batch_size=args.max_batch_size,
        max_batch_tokens=args.max_batch_tokens,
        backend=args.backend,
        quantize=args.quantize,
        calibration_file=args.calibration_file,
    )


def _serve_embed(args: argparse.Namespace) -> int:
    return run_model_service(
        args,
        _embed_settings(args),
        deployment="embedding_service.deployment",
        ready_message="embedding service ready at {url}  (POST {url}/v1/embeddings, GET {url}/info)",
    )
