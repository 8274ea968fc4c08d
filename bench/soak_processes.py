"""The processes of a soak (``bench/soak.py``): RSS, threads and connections at the end of warm-up and at the end,
and what is still running after the teardown."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import psutil

from tests.fixtures.soak_stack import SoakStack, process_table

__all__ = ["Owned", "ProcessWatch", "stop_ray"]

_GONE_WAIT_S = 30.0
BENCH = "bench"  # this process's label: the load generator and the fault proxies


def _title(proc: psutil.Process) -> str:
    cmdline = proc.cmdline()
    first = cmdline[0] if cmdline else proc.name()
    if first.startswith("ray::"):  # ray::ProxyActor.receive_asgi_messages: the title names the running method
        return first.split()[0].split(".")[0]
    name = proc.name()
    return "java (cluster)" if name == "java" else name


def _ray_processes(temp_dir: str) -> list[psutil.Process]:
    """Ray's processes of this run: this process's Ray-looking descendants, and any naming our temp dir."""
    found: dict[int, psutil.Process] = {}
    for proc in psutil.Process().children(recursive=True):
        try:
            if _title(proc).startswith("ray::") or proc.name() in ("raylet", "gcs_server") or "ray" in proc.name():
                found[proc.pid] = proc
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if any(temp_dir in part for part in proc.info["cmdline"] or ()):
                found.setdefault(proc.pid, proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return list(found.values())


def _cluster_processes(pid: int | None) -> list[psutil.Process]:
    if pid is None:
        return []
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


@dataclass
class Owned:
    """What this run started: the cluster (its pid) and Ray (its temp dir)."""

    temp_dir: str
    cluster_pid: int | None = None
    ray: list[psutil.Process] = field(default_factory=list)

    def remember_ray(self) -> None:
        """Note Ray's processes before the teardown (afterwards some are orphans nobody could find)."""
        self.ray = _ray_processes(self.temp_dir)

    def still_running(self) -> list[str]:
        """Processes of this run alive up to 30 s after the teardown (none expected); printed."""
        procs = [*self.ray, *_ray_processes(self.temp_dir), *_cluster_processes(self.cluster_pid)]
        deadline = time.monotonic() + _GONE_WAIT_S
        alive = procs
        while time.monotonic() < deadline:
            alive = [p for p in procs if _alive(p)]
            if not alive:
                break
            time.sleep(1.0)
        left = sorted({f"{p.pid}:{p.name()}" for p in alive if _alive(p)})
        print(f"left running after the teardown: {left or 'nothing'}", flush=True)
        return left


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _thread_names(proc: psutil.Process) -> Counter[str]:
    """Threads by name (``/proc/<pid>/task/<tid>/comm``): which pool grew."""
    names: Counter[str] = Counter()
    for thread in proc.threads():
        try:
            with open(f"/proc/{proc.pid}/task/{thread.id}/comm") as comm:
                names[comm.read().strip()] += 1
        except OSError:
            continue
    return names


def _peers(proc: psutil.Process, owners: dict[tuple[str, int], str], listening: set[int]) -> Counter[str]:
    """Connections by direction, state and the process at the other end (``in from``/``out to``)."""
    peers: Counter[str] = Counter()
    for conn in proc.net_connections(kind="inet"):
        if not conn.raddr:
            continue
        inbound = conn.laddr.port in listening
        other = owners.get((conn.raddr.ip, conn.raddr.port), f"port {conn.raddr.port}")
        peers[f"{'in from' if inbound else 'out to'} {other} ({conn.status})"] += 1
    return peers


def _details(procs: dict[str, psutil.Process]) -> dict[str, tuple[Counter[str], Counter[str]]]:
    """Threads by name and connections by peer of each process: what a growth is made of."""
    owners: dict[tuple[str, int], str] = {}
    listening: dict[int, set[int]] = {}
    by_pid = {proc.pid: label for label, proc in procs.items()}
    for conn in psutil.net_connections(kind="inet"):
        if conn.pid is not None and conn.laddr:
            owners[conn.laddr.ip, conn.laddr.port] = by_pid.get(conn.pid, f"pid {conn.pid}").split(" [")[0]
            if conn.status == psutil.CONN_LISTEN:
                listening.setdefault(conn.pid, set()).add(conn.laddr.port)
    out: dict[str, tuple[Counter[str], Counter[str]]] = {}
    for label, proc in procs.items():
        try:
            out[label] = (_thread_names(proc), _peers(proc, owners, listening.get(proc.pid, set())))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return out


def _print_growth(label: str, start: tuple[Counter[str], Counter[str]], end: tuple[Counter[str], Counter[str]]) -> None:
    for what, a, b in (("threads", start[0], end[0]), ("connections", start[1], end[1])):
        moved = {key: b[key] - a[key] for key in set(a) | set(b) if b[key] != a[key]}
        if moved:
            print(f"    {what} of {label} that moved: " + ", ".join(f"{k} {v:+d}" for k, v in sorted(moved.items())))


def _print_cpu(start: dict[str, dict[str, float]], end: dict[str, dict[str, float]]) -> None:
    """Where the cores went between the two snapshots: CPU seconds per process, largest first (a process started
    after the first snapshot, a replacement replica, counts from its own start)."""
    spent = {label: row["cpu_s"] - start.get(label, {}).get("cpu_s", 0.0) for label, row in end.items()}
    total = sum(spent.values()) or 1.0
    rows = sorted(spent.items(), key=lambda item: -item[1])
    print("cpu seconds (end of warm-up -> end): " + ", ".join(f"{k} {v:.0f} s ({v / total:.0%})" for k, v in rows))


@dataclass
class ProcessWatch:
    """Snapshots of every process of the stack; growth between them."""

    stack: SoakStack
    cluster_pid: int | None = None
    temp_dir: str = ""
    start: dict[str, dict[str, float]] = field(default_factory=dict)
    end: dict[str, dict[str, float]] = field(default_factory=dict)
    rss_by_phase: list[tuple[str, dict[str, float]]] = field(default_factory=list)
    start_details: dict[str, tuple[Counter[str], Counter[str]]] = field(default_factory=dict)
    end_details: dict[str, tuple[Counter[str], Counter[str]]] = field(default_factory=dict)

    def _processes(self) -> dict[str, psutil.Process]:
        procs = [psutil.Process(), *_ray_processes(self.temp_dir), *_cluster_processes(self.cluster_pid)]
        named: dict[str, psutil.Process] = {}
        for proc in procs:
            try:
                title = f"{BENCH} (driver, proxies)" if proc.pid == psutil.Process().pid else _title(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            named[f"{title} [{proc.pid}]"] = proc
        return named

    def sample(self, phase: str) -> None:
        """RSS of the search replica and this process at a phase's start: does a growth flatten or keep going?"""
        procs = {k: v for k, v in self._processes().items() if "soak-search" in k or k.startswith("bench")}
        self.rss_by_phase.append((phase, {k: row["rss_mb"] for k, row in process_table(procs).items()}))

    def baseline(self) -> None:
        procs = self._processes()
        self.start, self.start_details = process_table(procs), _details(procs)

    def final(self) -> None:
        procs = self._processes()
        self.end, self.end_details = process_table(procs), _details(procs)

    def figures(self) -> dict[str, float]:
        """Prints the table; ``max_rss_growth``, ``thread_growth``, ``conn_growth`` over processes in both."""
        both = sorted(set(self.start) & set(self.end))
        print("processes (end of warm-up -> end):", flush=True)
        rss, threads, conns, own = [], [], [], []
        for label in both:
            a, b = self.start[label], self.end[label]
            rss.append(b["rss_mb"] / a["rss_mb"] - 1 if a["rss_mb"] else 0.0)
            if label.startswith(BENCH):  # the load generator and the fault proxies: the bench's, not the stack's
                own.append(b["connections"] - a["connections"])
            else:
                threads.append(b["threads"] - a["threads"])
                conns.append(b["connections"] - a["connections"] - self._from_bench_moved(label))
            print(f"  {label} (nice {b.get('nice', float('nan')):.0f}): rss {a['rss_mb']:.0f} -> {b['rss_mb']:.0f} MB ({rss[-1]:+.1%}), threads "
                  f"{a['threads']:.0f} -> {b['threads']:.0f}, connections {a['connections']:.0f} -> "
                  f"{b['connections']:.0f}", flush=True)  # fmt: skip
            if label in self.start_details and label in self.end_details:
                _print_growth(label, self.start_details[label], self.end_details[label])
        _print_cpu(self.start, self.end)
        for phase, rss_mb in self.rss_by_phase:
            print(f"  rss at the start of {phase}: " + ", ".join(f"{k} {v:.0f} MB" for k, v in rss_mb.items()))
        for label in sorted(set(self.start) ^ set(self.end)):
            side = "gone (replaced)" if label in self.start else "new (a replacement)"
            row: Any = self.start.get(label) or self.end.get(label)
            print(f"  {label}: {side}, rss {row['rss_mb']:.0f} MB, threads {row['threads']:.0f}, nice "
                  f"{row.get('nice', float('nan')):.0f}", flush=True)  # fmt: skip
        return {
            "max_rss_growth": max(rss, default=float("nan")),
            "thread_growth": max(threads, default=float("nan")),
            "conn_growth": max(conns, default=float("nan")),
            "bench_conn_growth": max(own, default=float("nan")),
        }

    def _from_bench_moved(self, label: str) -> int:
        """How many more connections ``label`` holds *from* the bench's load generator at the end: the
        generator's pool, not something the process opened."""
        if label not in self.start_details or label not in self.end_details:
            return 0
        a, b = self.start_details[label][1], self.end_details[label][1]
        return sum(b[k] for k in b if k.startswith(f"in from {BENCH}")) - sum(
            a[k] for k in a if k.startswith(f"in from {BENCH}")
        )


def stop_ray() -> None:
    """Serve's apps and Ray itself (this process's Ray only)."""
    import ray
    from ray import serve

    if ray.is_initialized():
        try:
            serve.shutdown()
        finally:
            ray.shutdown()
