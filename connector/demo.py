"""``make demo``: the main job end to end on the embedded default.

Each step runs the same ``eshybrid`` command a person would type (and prints
it), so the demo doubles as a walkthrough:

1. a local Elasticsearch (``eshybrid cluster up``) unless ``ESHYBRID_URL`` is set;
2. the embedding service on CPU (``eshybrid serve embed``) unless ``ESHYBRID_EMBED_URL`` is set;
3. the sample catalogue as a plain BM25 index (``eshybrid load``) — the "existing shop";
4. ``eshybrid migrate up`` (adds the vector field) and ``eshybrid backfill``;
5. example queries: BM25, kNN and hybrid side by side (with the fusion the search used, and the
   weights it chose for the query), one hit's explanation, and the Dev Tools console text of one query.

``python -m connector.demo down`` (``make demo-down``) stops what ``up`` started.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from connector.localcluster import LocalClusterSettings
from connector.search.models import FusionConfig

__all__ = ["main"]

_REPO = Path(__file__).resolve().parent.parent
_DEFAULT_DATASET = _REPO / "examples" / "catalogue"
# A keyword query (the catalogue's words: BM25 is enough), then queries in a shopper's own words
# (the words are not in the catalogue: the vector leg finds the product, hybrid must follow it).
_QUERIES = (
    "4-season tent",
    "flashlight you wear on your head",
    "something to silence the engine hum on flights",
    "waterproof jacket for women",
)
_COLUMN = 42


def _state_dir() -> Path:
    path = LocalClusterSettings().home / "demo"  # ESHYBRID_HOME, like the local clusters
    path.mkdir(parents=True, exist_ok=True)
    return path


def _eshybrid() -> list[str]:
    return [sys.executable, "-m", "connector.cli"]


def _say(text: str) -> None:
    print(f"\n\033[1m== {text}\033[0m", flush=True)


def _run(args: Sequence[str], *, capture: bool = False, env: dict[str, str] | None = None) -> str:
    shown = " ".join(shlex.quote(a) for a in ["eshybrid", *args])
    print(f"$ {shown}", flush=True)
    proc = subprocess.run(
        [*_eshybrid(), *args],
        cwd=_REPO,
        env={**os.environ, **(env or {})},
        text=True,
        stdout=subprocess.PIPE if capture else None,
    )
    if proc.returncode != 0:
        raise SystemExit(f"demo step failed (exit {proc.returncode}): {shown}")
    return proc.stdout or ""


def _wait_http(url: str, *, timeout_s: float, what: str, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}; see {_state_dir() / 'embed.log'}")
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(2)
    raise SystemExit(f"{what} did not answer at {url} within {timeout_s:.0f}s")


def _start_cluster() -> str:
    url = os.environ.get("ESHYBRID_URL")
    if url:
        print(f"using the cluster at ESHYBRID_URL ({url.split('@')[-1]})")
        return url
    port = os.environ.get("ESHYBRID_DEMO_PORT", "9200")
    out = _run(["cluster", "up", "--flavor", "elasticsearch", "--name", "demo", "--port", port], capture=True)
    lines = [line for line in out.splitlines() if line.strip()]
    print("\n".join(lines))
    return lines[-1].strip()


def _start_embedding() -> str:
    url = os.environ.get("ESHYBRID_EMBED_URL")
    if url:
        print(f"using the embedding service at ESHYBRID_EMBED_URL ({url})")
        return url
    port = os.environ.get("ESHYBRID_DEMO_EMBED_PORT", "8765")
    url = f"http://127.0.0.1:{port}/embed"  # the service's default route prefix
    state = _state_dir()
    args = ["serve", "embed", "--device", "cpu", "--port", port, "--host", "127.0.0.1"]
    print("$ " + " ".join(["eshybrid", *args]) + f"   (in the background, log: {state / 'embed.log'})")
    with (state / "embed.log").open("wb") as log:
        proc = subprocess.Popen(
            [*_eshybrid(), *args], cwd=_REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    (state / "embed.pid").write_text(str(proc.pid))
    _wait_http(url + "/healthz", timeout_s=300, what="the embedding service", proc=proc)
    print(f"embedding service ready at {url}")
    return url


def _side_by_side(search: list[str], query: str) -> None:
    common = [*search, "--size", "5", "--json", query]
    answers = {mode: json.loads(_run([*common, "--mode", mode], capture=True)) for mode in ("bm25", "knn", "hybrid")}
    columns = {mode: [_title(h) for h in answer.get("hits", [])] for mode, answer in answers.items()}
    print(f"\n  query: {query!r}")
    print(f"  hybrid fused with {_fusion_used(answers['hybrid'])}")
    print("  " + " | ".join(f"{name:<{_COLUMN}}" for name in ("BM25", "kNN", "hybrid")))
    print("  " + "-+-".join("-" * _COLUMN for _ in columns))
    for i in range(max(len(c) for c in columns.values())):
        print("  " + " | ".join(f"{(c[i] if i < len(c) else ''):<{_COLUMN}}" for c in columns.values()))


def _fusion_used(answer: dict[str, Any]) -> str:
    """The fusion the hybrid search reports it used, and the weights it chose for this query."""
    fusion = answer.get("fusion")
    if not fusion:
        return "no fusion (one leg answered)"
    text = FusionConfig.model_validate(fusion).describe()
    weights = answer.get("fusion_weights")
    if weights:
        text += f"\n  weights for this query: {weights.get('summary', '')}"
    return text


def _title(hit: dict[str, Any]) -> str:
    source = hit.get("source") or hit.get("_source") or {}
    return str(source.get("title", hit.get("id", hit.get("_id", "?"))))[:_COLUMN]


def up(args: argparse.Namespace) -> int:
    started = time.monotonic()
    dataset = os.environ.get("DATASET") or str(_DEFAULT_DATASET)
    index = os.environ.get("ESHYBRID_DEMO_INDEX", "demo-products")
    _say("1/6 a local Elasticsearch (the embedded default)")
    url = _start_cluster()
    env_note = {"ESHYBRID_URL": url}
    os.environ.update(env_note)
    _say("2/6 the embedding service on CPU (Ray Serve)")
    embed_url = _start_embedding()
    _say(f"3/6 the existing shop: {dataset} as a plain BM25 index")
    _run(["load", "--dataset", dataset, "--index", index, "--replace", "--url", url])
    on_index = ["--index", index, "--url", url, "--embed-url", embed_url]
    search = ["search", *on_index]
    _say("4/6 migrate: add the vector field beside the BM25 text")
    _run(["migrate", "up", *on_index, "--source-fields", "title,text", "--to", "0001"])
    _say("5/6 backfill: embed every product and write the vectors in place")
    _run(["backfill", *on_index, "--fields", "title,text"])
    _say("6/6 search: BM25, kNN and hybrid")
    for query in _QUERIES:
        _side_by_side(search, query)
    _say("how one hybrid hit was scored (--explain)")
    _run([*search, "--size", "3", "--explain", _QUERIES[1]])
    rerank_model = os.environ.get("ESHYBRID_DEMO_RERANK_MODEL")
    if rerank_model:
        _say(f"hybrid + rerank with {rerank_model} (--rerank-model)")
        _run(
            [
                *search,
                "--size",
                "5",
                "--explain",
                "--rerank-model",
                rerank_model,
                "--rerank-fields",
                "title,text",
                _QUERIES[1],
            ]
        )
    _say("what ran, as Kibana Dev Tools console text (--console)")
    _run([*search, "--size", "3", "--console", _QUERIES[0]])
    print(f"\nDemo finished in {time.monotonic() - started:.0f}s. Cluster: {url}  Embedding service: {embed_url}")
    print(f'Try: .venv/bin/eshybrid search --index {index} --explain "gift for a coffee lover"')
    print(f"     .venv/bin/eshybrid workbench --index {index}   (compare and rate in the browser)")
    print(f"     (export ESHYBRID_URL={url} ESHYBRID_EMBED_URL={embed_url})")
    print("Stop everything with: make demo-down")
    return 0


def down(args: argparse.Namespace) -> int:
    state = _state_dir()
    pid_file = state / "embed.pid"
    if pid_file.exists():
        pid = int(pid_file.read_text())
        _stop_process_group(pid)
        pid_file.unlink()
        print("embedding service stopped")
    if not os.environ.get("ESHYBRID_URL"):
        subprocess.run([*_eshybrid(), "cluster", "down", "--name", "demo"], cwd=_REPO, check=False)
    return 0


def _stop_process_group(pid: int, *, timeout_s: float = 60.0) -> None:
    # SIGINT first: `eshybrid serve` treats it like Ctrl-C and shuts Serve and Ray down cleanly;
    # whatever is left of the group after that gets SIGTERM, then SIGKILL.
    for sig, wait_s in ((signal.SIGINT, timeout_s), (signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            if sig == signal.SIGINT:
                os.kill(pid, sig)
            else:
                os.killpg(pid, sig)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.5)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m connector.demo", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("up", help="run the demo (leaves the cluster and service running)").set_defaults(func=up)
    sub.add_parser("down", help="stop what the demo started").set_defaults(func=down)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
