"""What a bench needs, started when no URL is given and stopped afterwards: ``make bench`` on a fresh machine.

Every bench takes the URLs of servers that already run (``--es9-url``, ``--embed-url``..., defaulting to the
``ESHYBRID_TEST_*_URL`` variables that the test fixtures and the dev clusters set); for each one missing, it
starts its own and stops it (data removed) when it ends, even on an error or Ctrl-C:

- clusters through :mod:`connector.localcluster` (the project's own dev clusters, no Docker), keyed as the
  test fixtures key them (``es9``, ``es8``, ``os3``, ``os2``), each on a free port under a unique name;
- model services through ``eshybrid serve embed|rerank|image`` in their own process group (so their Ray, its
  agents and actors stop with them), with the flags the bench gives (none: the service's defaults).

To adopt it in a bench::

    from bench._servers import cluster_args, clusters, model_service

    cluster_args(parser, ("es9", "os3"))                  # --es9-url / --os3-url, default $ESHYBRID_TEST_*_URL
    with clusters({"es9": args.es9_url, "os3": args.os3_url}) as urls, \\
         model_service("embed", args.embed_url) as embed_url:
        ...                                              # urls["es9"], urls["os3"]: given or started here

``--es9-url none`` (``skip``) leaves a cluster out: the bench runs on the others.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Literal

REPO = Path(__file__).resolve().parents[1]

__all__ = ["CLUSTER_VERSIONS", "cluster", "cluster_args", "clusters", "free_port", "model_service", "stop_session"]

# The servers the test fixtures run (tests/fixtures/clusters.py), by the same keys.
CLUSTER_VERSIONS: Mapping[str, tuple[Literal["elasticsearch", "opensearch"], str]] = {
    "es9": ("elasticsearch", "9.5.4"),
    "es8": ("elasticsearch", "8.19.9"),
    "os3": ("opensearch", "3.6.0"),
    "os2": ("opensearch", "2.19.1"),
}
_SKIP = frozenset({"none", "skip", "off"})
ServiceKind = Literal["embed", "rerank", "image"]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cluster_args(parser: argparse.ArgumentParser, keys: Sequence[str]) -> None:
    """``--<key>-url`` options (default ``$ESHYBRID_TEST_<KEY>_URL``; unset: started by the bench)."""
    for key in keys:
        env = f"ESHYBRID_TEST_{key.upper()}_URL"
        parser.add_argument(
            f"--{key}-url",
            default=os.environ.get(env),
            help=f"{key} cluster URL (default ${env}; unset: a local {key} is started and stopped; 'none': skip it)",
        )


@contextmanager
def cluster(key: str, url: str | None = None, *, label: str = "bench") -> Iterator[str]:
    """The URL of cluster ``key``: ``url`` when given, else a local cluster started now and removed afterwards."""
    if url:
        yield url
        return
    from connector.localcluster import start_cluster, stop_cluster

    flavor, version = CLUSTER_VERSIONS[key]
    name = f"{label}-{key}-{uuid.uuid4().hex[:6]}"
    print(f"# starting a local {flavor} {version} ({name}); give --{key}-url to use a running one", flush=True)
    local = start_cluster(flavor=flavor, version=version, port=0, name=name)
    try:
        yield local.url
    finally:
        stop_cluster(name, remove_data=True)


@contextmanager
def clusters(given: Mapping[str, str | None], *, label: str = "bench") -> Iterator[dict[str, str]]:
    """URLs of the clusters in ``given`` (key -> URL or None): each missing one started, 'none' left out."""
    with ExitStack() as stack:
        urls = {
            key: stack.enter_context(cluster(key, url, label=label))
            for key, url in given.items()
            if (url or "").lower() not in _SKIP
        }
        yield urls


@contextmanager
def model_service(
    kind: ServiceKind, url: str | None = None, *, args: Sequence[str] = (), ready_timeout_s: float = 600.0
) -> Iterator[str]:
    """The URL of an ``eshybrid serve <kind>`` service: ``url`` when given, else one started with ``args``.

    The service runs in its own process group with its own Ray; leaving the block stops it and every process
    of its session (agents, actors), never another Ray on the machine.

    Raises:
        RuntimeError: the service exited, or was not ready within ``ready_timeout_s`` (checked as its output
            lines arrive: a silent hang is ended by the bench's own timeout).
    """
    if url:
        yield url
        return
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(
        RAY_AUTH_MODE="disabled",
        RAY_USAGE_STATS_ENABLED="0",
        HF_HUB_OFFLINE="1",
        PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")])),
    )
    cmd = [sys.executable, "-m", "connector.cli", "serve", kind, "--port", str(free_port()), *args]
    proc = subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True
    )
    try:
        yield _wait_ready(proc, kind, ready_timeout_s)
    finally:
        stop_session(proc)


def _wait_ready(proc: subprocess.Popen[str], kind: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    assert proc.stdout is not None
    for line in proc.stdout:
        found = re.search(r"ready at (\S+)", line)
        if found:
            return found.group(1)
        if time.monotonic() > deadline:
            break
    raise RuntimeError(
        f"the {kind} service exited or was not ready in {timeout_s:.0f} s; run `eshybrid serve {kind}` by hand "
        f"to see why, or give the bench the URL of a running one"
    )


def stop_session(proc: subprocess.Popen[str]) -> None:
    """Stop a process started with ``start_new_session=True`` and every process of its session."""
    import psutil

    try:
        os.killpg(proc.pid, signal.SIGINT)
    except ProcessLookupError:
        pass
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
    time.sleep(2)
    for leftover in psutil.process_iter():
        try:
            if leftover.pid != os.getpid() and os.getsid(leftover.pid) == proc.pid:
                leftover.kill()
        except (psutil.Error, ProcessLookupError, PermissionError):
            continue
