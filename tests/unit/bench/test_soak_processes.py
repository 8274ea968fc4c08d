"""bench/soak_processes.py: which connections count as the stack's growth (no processes started)."""

from __future__ import annotations

from collections import Counter

from bench.soak_processes import ProcessWatch


def _row(connections: int, threads: int = 10) -> dict[str, float]:
    return {"rss_mb": 100.0, "threads": float(threads), "connections": float(connections), "cpu_s": 1.0}


def test_growth_counts_what_the_stack_opens_not_the_load_generators_pool() -> None:
    watch = ProcessWatch(stack=None)  # type: ignore[arg-type]  # figures() never touches the stack
    proxy, replica, bench = (
        "ray::ProxyActor [2]",
        "ray::ServeReplica:soak-search:SearchDeployment [3]",
        "bench (driver, proxies) [1]",
    )
    watch.start = {bench: _row(40), proxy: _row(30), replica: _row(20)}
    watch.end = {bench: _row(45), proxy: _row(34), replica: _row(23, threads=11)}
    peers = "in from bench (driver, proxies) (ESTABLISHED)"
    watch.start_details = {proxy: (Counter(), Counter({peers: 12})), replica: (Counter(), Counter())}
    # the proxy's +4 are all the generator's connections to it; the replica's +3 are its own (to the cluster)
    watch.end_details = {proxy: (Counter(), Counter({peers: 16})), replica: (Counter(), Counter())}
    figures = watch.figures()
    assert figures["conn_growth"] == 3 and figures["thread_growth"] == 1
    assert figures["bench_conn_growth"] == 5  # printed beside it, no goal
