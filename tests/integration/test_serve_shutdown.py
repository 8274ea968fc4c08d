"""Stopping `eshybrid serve embed|rerank` the way a person does leaves no process of its Ray behind.

Each test starts the CLI as a subprocess (its own session and process group), waits until /healthz
answers, sends SIGTERM (or SIGINT, as Ctrl-C does) to the CLI process only, and checks the process
table: no raylet, GCS, dashboard or runtime-env agent, Serve controller, proxy or replica of that Ray
session may remain. Only processes this test started are ever killed (its CLI's descendants, and
processes naming its Ray session's folder).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest

from tests.fixtures.embedding import RAY_ENV, free_port

pytestmark = [pytest.mark.integration, pytest.mark.ray, pytest.mark.slow]

_REPO_ROOT = Path(__file__).resolve().parents[2]
_READY_S = 300.0  # Ray start + model load on a busy 2-core machine
_STOP_S = 120.0  # the CLI's exit after the signal (Serve shutdown, raylet stop, bounded waits)
_GONE_S = 10.0  # after the CLI exited, nothing of its session may be left after this
_CHEAP = ["--device", "cpu", "--replicas", "1", "--num-cpus-per-replica", "0.5", "--torch-threads", "1"]


@dataclass
class Service:
    """A running `eshybrid serve ...` subprocess and the processes of its Ray session."""

    cli: subprocess.Popen[bytes]
    log: Path
    tree: list[psutil.Process] = field(default_factory=list)
    session_dir: str = ""

    def session_processes(self) -> list[psutil.Process]:
        """The processes of the session still alive: the CLI's descendants seen when it was up, and any process
        whose command line names the session folder."""
        found = {p.pid: p for p in self.tree if _alive(p)}
        if self.session_dir:
            for proc in psutil.process_iter(["cmdline"]):
                if any(self.session_dir in part for part in proc.info["cmdline"] or ()) and _alive(proc):
                    found.setdefault(proc.pid, proc)
        return list(found.values())

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def _alive(proc: psutil.Process) -> bool:
    try:
        return bool(proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _describe(procs: list[psutil.Process]) -> list[str]:
    described = []
    for proc in procs:
        try:
            described.append(f"{proc.pid}:{proc.name()} (parent {proc.ppid()})")
        except psutil.NoSuchProcess:
            continue
    return described


def _start(args: list[str], *, route_prefix: str, tmp_path: Path) -> Service:
    port = free_port()
    env = {**os.environ, **RAY_ENV}
    env.pop("RAY_ADDRESS", None)
    # The CLI and Ray's workers import this checkout's packages.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(_REPO_ROOT), os.environ.get("PYTHONPATH")]))
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        cli = subprocess.Popen(
            [sys.executable, "-m", "connector.cli", "serve", *args, "--num-cpus", "1", "--port", str(port)],
            cwd=_REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: a signal to the test never reaches it by accident
        )
    service = Service(cli=cli, log=log)
    url = f"http://127.0.0.1:{port}{route_prefix}/healthz"
    deadline = time.monotonic() + _READY_S
    while True:
        assert cli.poll() is None, f"the service exited with {cli.returncode}:\n{service.log_tail()}"
        assert time.monotonic() < deadline, f"no answer from {url} within {_READY_S:.0f}s:\n{service.log_tail()}"
        try:
            if httpx.get(url, timeout=2.0).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(1.0)
    service.tree = psutil.Process(cli.pid).children(recursive=True)
    for proc in service.tree:
        if proc.name() == "raylet":
            service.session_dir = next(a.split("=", 1)[1] for a in proc.cmdline() if a.startswith("--session_dir="))
    return service


@pytest.fixture
def services() -> Iterator[list[Service]]:
    """Services a test starts; whatever of theirs is still alive at the end is killed (only theirs)."""
    started: list[Service] = []
    yield started
    for service in started:
        leftovers = service.session_processes()
        if service.cli.poll() is None:
            leftovers.append(psutil.Process(service.cli.pid))
        for proc in leftovers:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                continue
        psutil.wait_procs(leftovers, timeout=10)


def _stop_and_check(service: Service, signum: int) -> None:
    names = " ".join(p.name() for p in service.tree)
    # The processes the defect left behind are there to begin with.
    for expected in ("raylet", "gcs_server", "DashboardAgent", "RuntimeEnvAgent", "ServeReplica"):
        assert expected in names, f"{expected} not among the service's processes: {names}"
    assert service.session_dir
    os.kill(service.cli.pid, signum)  # the CLI only, as `kill PID` does (Ctrl-C: SIGINT)
    try:
        code = service.cli.wait(timeout=_STOP_S)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the service did not exit within {_STOP_S:.0f}s of {signum!r}:\n{service.log_tail()}")
    assert code == 0, service.log_tail()
    assert "shutting down" in service.log_tail()
    deadline = time.monotonic() + _GONE_S
    while (left := service.session_processes()) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not left, f"processes of the Ray session still running: {_describe(left)}\n{service.log_tail()}"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stopping_serve_embed_leaves_no_ray_process(signum: int, services: list[Service], tmp_path: Path) -> None:
    service = _start(["embed", *_CHEAP], route_prefix="/embed", tmp_path=tmp_path)
    services.append(service)
    _stop_and_check(service, signum)


def test_stopping_serve_rerank_leaves_no_ray_process(
    cross_encoder_path: Path, services: list[Service], tmp_path: Path
) -> None:
    args = ["rerank", "--model", str(cross_encoder_path), "--model-id", "tiny-cross-encoder", *_CHEAP]
    service = _start(args, route_prefix="/rerank", tmp_path=tmp_path)
    services.append(service)
    _stop_and_check(service, signal.SIGTERM)
