"""How `eshybrid serve ...` stops (no Ray here): SIGTERM takes Ctrl-C's path through Serve's and Ray's shutdown,
and the processes of the session that outlive ray.shutdown() are found and ended. The real thing, with Ray,
is tests/integration/test_serve_shutdown.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

import pytest

from connector.cli import serve as serve_cli

_SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]
_STUBBORN = [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"]


def test_sigterm_raises_stop_requested_inside_the_block_only() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt) as caught, serve_cli._stop_on_signals():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler interrupts this
    assert isinstance(caught.value, serve_cli._StopRequested)
    assert signal.getsignal(signal.SIGTERM) is before


class _FakeRay(types.ModuleType):
    """Just enough of ``ray`` and ``ray.serve`` for run_app; records the calls in order."""

    def __init__(self, calls: list[str]) -> None:
        super().__init__("ray")
        self.calls = calls
        self.serve = types.ModuleType("ray.serve")
        for name in ("start", "run", "shutdown", "delete"):
            setattr(self.serve, name, self._record(f"serve.{name}"))

    def _record(self, name: str) -> Any:
        return lambda *args, **kwargs: self.calls.append(name)

    def init(self, **kwargs: Any) -> None:
        self.calls.append("ray.init")

    def shutdown(self) -> None:
        self.calls.append("ray.shutdown")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_shuts_serve_then_ray_down_and_ends_the_session(
    signum: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[str] = []
    fake = _FakeRay(calls)
    monkeypatch.setitem(sys.modules, "ray", fake)
    monkeypatch.setitem(sys.modules, "ray.serve", fake.serve)
    session = [object()]
    monkeypatch.setattr(serve_cli, "_local_ray_processes", lambda: calls.append("snapshot") or session)
    monkeypatch.setattr(serve_cli, "_stop_raylet", lambda procs: calls.append("stop raylet"))
    monkeypatch.setattr(serve_cli, "_end_processes", lambda procs: calls.append(f"end {len(procs)}"))
    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def ready(url: str) -> None:
        calls.append(f"ready {url}")
        os.kill(os.getpid(), signum)

    code = serve_cli.run_app(lambda: "app", name="embed", route_prefix="/embed", host="h", port=1, on_ready=ready)
    assert code == 0
    assert calls == [
        "ray.init",
        "serve.start",
        "serve.run",
        "ready http://h:1/embed",
        "snapshot",
        "serve.shutdown",
        "stop raylet",
        "ray.shutdown",
        "end 1",
    ]
    assert "shutting down" in capsys.readouterr().err
    assert {s: signal.getsignal(s) for s in before} == before


def test_a_joined_cluster_keeps_its_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    fake = _FakeRay(calls)
    monkeypatch.setitem(sys.modules, "ray", fake)
    monkeypatch.setitem(sys.modules, "ray.serve", fake.serve)
    monkeypatch.setattr(serve_cli, "_local_ray_processes", lambda: pytest.fail("must not look for processes"))
    monkeypatch.setattr(serve_cli, "_stop_raylet", lambda procs: calls.append(f"stop raylet {len(procs)}"))
    monkeypatch.setattr(serve_cli, "_end_processes", lambda procs: calls.append(f"end {len(procs)}"))

    def ready(url: str) -> None:
        os.kill(os.getpid(), signal.SIGTERM)

    serve_cli.run_app(lambda: "app", name="embed", route_prefix="/", host="h", port=1, address="auto", on_ready=ready)
    assert calls[-4:] == ["serve.delete", "stop raylet 0", "ray.shutdown", "end 0"]


# Run in a child interpreter: `_local_ray_processes()` takes every descendant of the calling process, and inside
# pytest those include the session's real Ray and test clusters, which this test must never stop.
_SESSION_PROBE = """
import json, subprocess, sys, time
import psutil
from connector.cli import serve as serve_cli

session_dir, raylet, sleep, stubborn = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
# A process called "raylet" that names the session (as Ray's raylet does with --session_dir=...).
raylet_proc = psutil.Process(subprocess.Popen([raylet, "--session_dir=" + session_dir]).pid)
# A child that starts a grandchild (an agent under the raylet), and one that ignores SIGTERM.
parent = psutil.Process(subprocess.Popen(
    [sys.executable, "-c", f"import subprocess, time; subprocess.Popen({sleep!r}); time.sleep(60)"]).pid)
stub = psutil.Process(subprocess.Popen(stubborn).pid)
# A process that is not ours by descent (re-parented) but names the session folder.
spawn = ("import subprocess; "
         f"print(subprocess.Popen({sleep + [session_dir]!r}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).pid)")
orphan = psutil.Process(int(subprocess.run([sys.executable, "-c", spawn], check=True, capture_output=True,
                                           text=True, timeout=30).stdout.strip()))
deadline = time.monotonic() + 10
while len(parent.children()) < 1 or raylet_proc.name() != "raylet":
    assert time.monotonic() < deadline, "test processes did not start"
    time.sleep(0.05)
grandchild = parent.children()[0]
ours = {"raylet": raylet_proc, "parent": parent, "grandchild": grandchild, "stubborn": stub, "orphan": orphan}
session = serve_cli._local_ray_processes()
found = sorted(name for name, proc in ours.items() if proc.pid in {p.pid for p in session})
serve_cli._RAY_EXIT_WAIT_S, serve_cli._RAY_TERM_WAIT_S = 0.2, 1.0
serve_cli._stop_raylet(session)
raylet_gone = not raylet_proc.is_running() or raylet_proc.status() == psutil.STATUS_ZOMBIE
serve_cli._end_processes(session)
alive = sorted(n for n, p in ours.items() if p.is_running() and p.status() != psutil.STATUS_ZOMBIE)
for proc in ours.values():  # whatever is left is killed (only these)
    try:
        proc.kill()
    except psutil.NoSuchProcess:
        pass
print(json.dumps({"found": found, "self_in_session": psutil.Process().pid in {p.pid for p in session},
                  "raylet_gone": raylet_gone, "alive": alive}))
"""


def test_descendants_and_processes_naming_the_session_are_found_and_ended(tmp_path: Path) -> None:
    session_dir = str(tmp_path / "session_2026_test")
    raylet = tmp_path / "raylet"
    raylet.write_text(f"#!{sys.executable}\nimport time\ntime.sleep(60)\n")
    raylet.chmod(0o755)
    out = subprocess.run(
        [sys.executable, "-c", _SESSION_PROBE, session_dir, str(raylet), json.dumps(_SLEEP), json.dumps(_STUBBORN)],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["found"] == ["grandchild", "orphan", "parent", "raylet", "stubborn"]
    assert result["self_in_session"] is False
    assert result["raylet_gone"] is True
    assert result["alive"] == []
