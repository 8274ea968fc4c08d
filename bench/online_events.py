"""The events stage of ``bench/online_loop.py``: POST /events on a real ``eshybrid serve search --ubi``.

1. Start ``eshybrid serve search --ubi`` (its own local Ray, 2 CPUs) on the bench index, with unique
   ``ubi_queries`` / ``ubi_events`` names, a queue of ``QUEUE`` records and the per-address rate limit
   raised (every request of the bench comes from 127.0.0.1; per-client limits still apply, and each
   record has its own ``client_id``).
2. Sustained: ``THREADS`` threads post batches of ``BATCH`` valid click events for ``seconds``, each as
   soon as the last was answered (closed loop, faster than one writer drains: the queue fills and the
   server answers 429 for what it cannot take, counted in ``events_429``, not resent);
   ``events_per_s`` = accepted records / wall time, i.e. what the server sustains with nothing lost.
3. Burst: ``BURST_THREADS`` threads post requests of ``BURST_BATCH`` records as fast as they can until
   ``BURST_FACTOR`` times the queue was offered: what the queue cannot take is answered 429
   (``burst_429`` counts those records; the sustained stage's 429s are ``events_429``).
4. Drain: wait until the server's logger has nothing queued, refresh, and count the events index:
   ``events_lost`` = accepted - indexed (the goal is 0: every accepted event indexed).
5. ``search_p50_ratio``: the library's default hybrid search with query records on (a ``UbiLogger``,
   ``client_id`` given) over the same search with them off, ``--latency-searches`` of each, interleaved
   (on/off order alternating), after a warm-up; the p50 of on over the p50 of off (goal <= 1.05). A
   speed figure: run it on a quiet machine.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
THREADS, BATCH, QUEUE, BURST_FACTOR = 4, 50, 5_000, 10
BURST_THREADS, BURST_BATCH = 12, 500  # the most records a request may carry (EventIntakeSettings.max_records)
START_TIMEOUT_S, DRAIN_TIMEOUT_S = 180.0, 120.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _batch(worker: int, n: int, size: int) -> bytes:
    events = [
        {"action_name": "click", "query_id": f"bench-q-{worker}-{n}", "client_id": f"bench-{worker}-{n}-{i}",
         "event_attributes": {"object": {"object_id": f"doc-{i}"}, "position": {"ordinal": i % 10 + 1}}}
        for i in range(size)
    ]  # fmt: skip
    return json.dumps(events).encode()


def _start(url: str, index: str, embed_url: str | None, tag: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "ESHYBRID_SEARCH_UBI_QUERIES_INDEX": f"bench-ubi-q-{tag}",
           "ESHYBRID_SEARCH_UBI_EVENTS_INDEX": f"bench-ubi-e-{tag}", "RAY_USAGE_STATS_ENABLED": "0",
           "RAY_AUTH_MODE": "disabled"}  # fmt: skip
    env.pop("RAY_ADDRESS", None)
    command = [sys.executable, "-m", "connector.cli", "serve", "search", "--url", url, "--index", index, "--ubi",
               "--events-rate-per-s", "1000000", "--events-queue-size", str(QUEUE), "--port", str(port),
               "--num-cpus", "2"] + (["--embed-url", embed_url] if embed_url else [])  # fmt: skip
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"serve search exited with {proc.returncode}")
        try:
            if httpx.get(base + "/events/stats", timeout=2).json().get("enabled"):
                return proc, base
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    raise RuntimeError("serve search did not answer within the start timeout")


def _post_for(
    base: str, *, seconds: float | None, budget: int | None, threads: int = THREADS, batch: int = BATCH
) -> dict[str, int]:
    """Post batches from ``threads`` threads until ``seconds`` pass or ``budget`` records were offered."""
    counts = {"accepted": 0, "refused_429": 0, "other": 0, "offered": 0}
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds if seconds else None

    def work(worker: int) -> None:
        with httpx.Client(timeout=30, headers={"content-type": "application/json"}) as client:
            n = 0
            while True:
                with lock:
                    if (stop_at and time.monotonic() >= stop_at) or (budget and counts["offered"] >= budget):
                        return
                    counts["offered"] += batch
                answer = client.post(base + "/events", content=_batch(worker, n, batch))
                n += 1
                body = answer.json()
                with lock:
                    counts["accepted"] += int(body.get("accepted", 0))
                    for rejected in body.get("rejected", []):
                        counts["refused_429" if rejected["status"] == 429 else "other"] += 1

    workers = [threading.Thread(target=work, args=(w,)) for w in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    return counts


def measure_events(cluster: Any, url: str, index: str, embed_url: str | None, *, seconds: float) -> dict[str, Any]:
    """Run the stages of the module docstring; returns the RESULT figures."""
    tag = uuid.uuid4().hex[:8]
    proc, base = _start(url, index, embed_url, tag)
    events_index = f"bench-ubi-e-{tag}"
    try:
        started = time.perf_counter()
        sustained = _post_for(base, seconds=seconds, budget=None)
        elapsed = time.perf_counter() - started
        burst = _post_for(base, seconds=None, budget=BURST_FACTOR * QUEUE, threads=BURST_THREADS, batch=BURST_BATCH)
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while True:  # until every record the endpoint accepted was written (or given up on)
            stats = httpx.get(base + "/events/stats", timeout=10).json()
            done = stats["logger"]["written"] + stats["logger"]["failed"]
            if done >= stats["intake"]["accepted"] or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        cluster.refresh(events_index)
        indexed = cluster.count(events_index)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        for name in (events_index, f"bench-ubi-q-{tag}"):
            cluster.delete_index(name)
    accepted = sustained["accepted"] + burst["accepted"]
    print(f"# events: sustained {sustained} in {elapsed:.1f}s; burst {burst}; server {stats}; indexed {indexed}")
    return {
        "events_per_s": sustained["accepted"] / elapsed,
        "events_lost": accepted - indexed,
        "events_429": sustained["refused_429"],
        "burst_429": burst["refused_429"],
    }


def measure_search_overhead(search_off: Any, search_on: Any, texts: list[str], *, searches: int) -> dict[str, Any]:
    """Step 5 of the module docstring; ``search_on`` has a ``ubi`` logger, ``search_off`` none."""
    for text in texts[:5]:  # warm-up: connections, caches, the model check
        search_off.search(text, client_id="bench-warm-up")
        search_on.search(text, client_id="bench-warm-up")
    timings: dict[bool, list[float]] = {False: [], True: []}
    for n in range(searches):
        text = texts[n % len(texts)]
        for on in (False, True) if n % 2 else (True, False):
            started = time.perf_counter()
            (search_on if on else search_off).search(text, client_id=f"bench-{n}")
            timings[on].append(time.perf_counter() - started)
    off, on = statistics.median(timings[False]), statistics.median(timings[True])
    print(f"# search p50 with query records off {off * 1000:.1f} ms, on {on * 1000:.1f} ms ({searches} each)")
    return {"search_p50_ratio": on / off}
