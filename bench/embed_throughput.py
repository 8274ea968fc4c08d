"""Embedding throughput by backend: torch fp32 (the raw baseline), onnx fp32, onnx int8 and openvino int8, in
process and through the service; cosine to torch fp32; nDCG@10 of kNN and hybrid with fp32 vs int8 vectors.

Not a test. One run, same machine, same texts (``{title}\n{text}`` of the ESCI corpus, as the backfill builds
them; the first --docs for throughput, the judged docs of the first queries up to --quality-docs for nDCG):
  1. in process, interleaved rounds (best kept): torch fp32, onnx int8 and openvino static int8 at 1 and 2
     threads, onnx fp32 at 2;
     ``int8_vs_torch`` compares them at the SAME layout (2 threads, one process);
  2. the service over HTTP in one Ray of ``os.cpu_count()`` CPUs, interleaved rounds: with default flags (torch;
     the default layout), the other layout (1 x N threads when the default is N x 1, and the reverse), and
     onnx int8 with the default layout; ``service_default_vs_raw`` = the default service over the best
     in-process torch layout. The service is sent the sample ``--service-repeat`` times over (a backfill's steady
     stream of requests: one pass of 200 docs is 4 requests of 64, and the last one's 8 docs left one of two
     replicas idle a fifth of the run — a tail of the sample, not a cost of the service; changed after the
     0.834 of 2026-12-07, said so in the closing note). Each run is taken apart with the replicas' own counters (busy share of the
     wall time, their forward passes' own docs/s, padding): where the service loses to the raw model.
     The default layout is chosen by this rule, written before the idle run: on an idle machine (load average
     under 1.0 at the start), the layout with the higher best-of-``--service-rounds`` (>= 3) docs/s becomes the
     default; a difference under 5% keeps the current one (one 1-thread replica per CPU);
  3. nDCG@10 (linear gains) on the judged-docs pool: exact cosine kNN in numpy, and hybrid = bm25s over the
     same pool fused with the library's DEFAULT_FUSION (connector.search.fusion.fuse, with each query's word counts
     over the pool: the adaptive fusion's evidence, as the search reads it), fp32 vs onnx int8 vs openvino int8
     vectors;
  4. the machine's limits in the same run (``bench/_limits.py``), at 1 and 2 threads: the fp32 peak of a large
     GEMM and ``fp32_share_of_gemm`` = torch docs/s x the model's FLOPs per doc (its config, the texts' real
     token counts) / that peak; ``int8_gemm_limit`` = fp32 MatMul / int8 MatMulInteger time on the model's own
     shapes on ONNX Runtime (the int8 backend's runtime), every product int8 (``_recipe``: the recipe's
     feed-forward output projections kept fp32); ``int8_vs_limit`` = int8_vs_torch / int8_gemm_limit (the
     goal: >= 0.8). The CPU's vector extensions are printed (AVX2 only, AVX-512 VNNI, AMX: the limit moves).
     The same in OpenVINO, the openvino backend's runtime (``_limits.openvino_gemm``): ``openvino_int8_gemm_limit``
     = f32 / NNCF-int8 time of one-MatMul OpenVINO models of the same shapes (the runtime precision of the
     compiled FullyConnected printed: i8 = int8 kernels ran), ``_recipe``: the feed-forward output projections at
     the CPU plugin's default precision (bf16 where the CPU has AVX-512 BF16/AMX, as the backend runs them);
     ``openvino_int8_vs_limit`` = openvino_int8_vs_torch / openvino_int8_gemm_limit (1 and 2 threads). That one
     can pass 1: torch fp32 is not OpenVINO's f32 (oneDNN kernels, fused attention, bf16 where not quantized), so
     the int8 gain inside the one runtime is measured too: ``openvino_int8_vs_f32`` = the int8 model's forward
     passes over the sample (sorted, padded per batch) against the same model's in f32 (``INFERENCE_PRECISION_HINT``
     f32), and ``openvino_int8_vs_f32_of_limit`` = that / openvino_int8_gemm_limit; ``openvino_int8_f32rest_vs_f32``:
     the int8 model with its unquantized rest in f32 too (the int8 products' gain without the bf16 rest);
  5. OpenVINO's static int8 is calibrated on ``--calibration-docs`` (300) corpus docs drawn by
     ``random.Random(--calibration-seed)`` (0) from the docs in neither the throughput sample nor the nDCG pool,
     rendered by the backfill's renderer (``connector.texts.build_text``, fields title, text: what
     ``eshybrid calibration-sample`` writes from an index of them); its nDCG@10 is measured as ONNX int8's
     (``knn_ndcg_openvino_int8``, ``hybrid_ndcg_openvino_int8``). The rule, written 2026-12-07 BEFORE the idle run:
     OpenVINO static int8 becomes the README's recommended CPU int8 (in place of ``--backend onnx --quantize
     int8``) when, on the idle run (load average under 1.0 at the start), ALL of: its min cosine to torch fp32
     >= 0.99; its nDCG@10 loss to fp32 <= 0.005 for kNN and for hybrid; its docs/s above ONNX int8's at 1 thread
     and at 2 threads. The bench only reports the outcome (``openvino_int8_rule=pass|fail``, failed conditions
     printed); no code default moves with it (``--backend auto`` already times openvino int8 beside onnx where
     the extra is installed, and picks by speed at cosine >= 0.99).
Ends with one line ``RESULT key=value ...``.

    flock /tmp/eshybrid-integration.lock .venv/bin/python bench/embed_throughput.py
    .venv/bin/python bench/embed_throughput.py --device cuda   # torch bf16 at 128/256 tokens, roofline share (< 5 min)
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._embed_quality import calibration_sample, judged_pool, openvino_rule, quality_ndcg  # noqa: E402
from bench._limits import cpu_extensions, machine_limits  # noqa: E402

logger = logging.getLogger("bench.embed_throughput")


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def load_texts(corpus: Path, limit: int) -> list[str]:
    """Title + text of the first ``limit`` docs of a BEIR ``corpus.jsonl``."""
    texts = []
    with corpus.open(encoding="utf-8") as f:
        for line in f:
            doc = json.loads(line)
            texts.append(f"{doc.get('title') or ''}\n{doc.get('text') or ''}".strip())
            if len(texts) >= limit:
                break
    return texts


def timed(label: str, count: int, run: Callable[[], Any]) -> float:
    started = time.perf_counter()
    run()
    elapsed = time.perf_counter() - started
    rate = count / elapsed
    print(f"  {label:<44} {rate:8.1f} docs/s  ({elapsed:.1f}s)", flush=True)
    return rate


# The roofline of all-MiniLM-L6-v2: ~21.2 MFLOP per token for the matrix products (2 x parameters of the
# 6 layers' dense weights), plus 9,216 x L FLOP per token for attention at length L (QK^T and AV: 2 x 2 x 384 x L
# x 6 layers); an H100/H200 does ~989 TFLOP/s dense bf16.
MATMUL_FLOP_PER_TOKEN = 21.2e6
ATTENTION_FLOP_PER_TOKEN_PER_L = 9216.0


def flop_per_doc(length: int) -> float:
    """FLOP of one document of ``length`` tokens (every token of the row, padding none)."""
    return length * (MATMUL_FLOP_PER_TOKEN + ATTENTION_FLOP_PER_TOKEN_PER_L * length)


def roofline_share(docs_per_s: float, length: int, peak_tflops: float) -> float:
    """The share of the dense peak that ``docs_per_s`` documents of ``length`` tokens per second amount to."""
    return docs_per_s * flop_per_doc(length) / (peak_tflops * 1e12)


# (label, backend, quantization, threads), measured in process in this order every round.
IN_PROCESS = (
    ("torch fp32 x1", "torch", "none", 1),
    ("torch fp32 x2", "torch", "none", 2),
    ("onnx fp32 x2", "onnx", "none", 2),
    ("onnx int8 x1", "onnx", "int8", 1),
    ("onnx int8 x2", "onnx", "int8", 2),
    ("openvino int8 x1", "openvino", "int8", 1),  # static int8, calibrated on CALIBRATION
    ("openvino int8 x2", "openvino", "int8", 2),
)
CALIBRATION: list[str] = []  # filled in main(): a seeded sample of other corpus docs, rendered as the backfill does


def load_variant(backend: str, quantization: str, *, threads: int) -> Any:
    import torch

    from embedding_service.model import Embedder
    from embedding_service.model_spec import build_model_spec
    from embedding_service.settings import EmbeddingServiceSettings

    torch.set_num_threads(threads)
    spec = build_model_spec(EmbeddingServiceSettings())
    return Embedder.load(
        spec, device="cpu", dtype="float32", backend=backend, quantization=quantization, threads=threads,
        calibration=CALIBRATION or None,
    )  # type: ignore[arg-type]  # fmt: skip


def measure_backends(texts: list[str], *, batch_size: int, rounds: int) -> tuple[dict[str, float], dict[str, Any]]:
    """docs/s of each IN_PROCESS run, interleaved, best of ``rounds``; and each run's vectors of ``texts``."""
    import torch

    loaded = {label: load_variant(b, q, threads=t) for label, b, q, t in IN_PROCESS}
    threads = {label: t for label, _, _, t in IN_PROCESS}
    rates: dict[str, float] = dict.fromkeys(loaded, 0.0)
    vectors: dict[str, Any] = {}
    print(f"in process ({rounds} interleaved rounds, best kept):", flush=True)
    for _ in range(rounds):
        for label, embedder in loaded.items():
            torch.set_num_threads(threads[label])
            embedder.encode(texts[:batch_size], max_rows=batch_size)

            def run(e: Any = embedder, label: str = label) -> None:
                vectors[label] = e.encode(texts, max_rows=batch_size, max_batch_tokens=4096)

            rates[label] = max(rates[label], timed(label, len(texts), run))
    return rates, vectors


def model_precisions(label: str) -> str:
    """What the CPU plugin runs the matrix products of the openvino run ``label`` in (``FullyConnected:u8 x26``...)."""
    from inference_backends import ov_compiled, ov_runtime_precisions

    _, backend, quantization, threads = next(v for v in IN_PROCESS if v[0] == label)
    path = load_variant(backend, quantization, threads=threads).onnx_path
    counts = ov_runtime_precisions(ov_compiled(path, threads=threads))
    return ", ".join(f"{key} x{n}" for key, n in counts.items())


def openvino_report(
    texts: list[str],
    rates: dict[str, float],
    vectors: dict[str, Any],
    limits: dict[str, Any],
    ndcg: dict[str, dict[str, float]],
    *,
    args: argparse.Namespace,
    load_start: float,
) -> str:
    """Step 4's OpenVINO shares and step 5's rule, printed; the RESULT keys of both."""
    from bench._limits import openvino_forward_ratio

    ov_cos = cosines(vectors["openvino int8 x2"], vectors["torch fp32 x2"])
    ratio = {t: rates[f"openvino int8 x{t}"] / rates[f"torch fp32 x{t}"] for t in (1, 2)}
    rule, failed = openvino_rule(rates, float(ov_cos.min()), ndcg)
    if load_start >= 1.0:
        rule, failed = "fail", [*failed, f"not idle: load average {load_start:.2f} >= 1.0 at the start"]
    print(f"  the openvino int8 model's products run as {model_precisions('openvino int8 x2')}", flush=True)
    paths = [load_variant("openvino", q, threads=2).onnx_path for q in ("none", "int8")]
    rows = load_variant("torch", "none", threads=2).tokenize(texts)
    vs_f32 = {t: openvino_forward_ratio(*paths, rows, threads=t, batch_size=args.batch_size) for t in (1, 2)}
    for t in (1, 2):
        print(
            f"  x{t}: openvino_int8_vs_torch {ratio[t]:.2f} = {ratio[t] / limits[f'ov_limit_x{t}']:.2f} of OpenVINO's "
            f"int8 GEMM limit (goal >= 0.8); inside OpenVINO, int8 forward passes {vs_f32[t][0]:.2f}x f32 ones = "
            f"{vs_f32[t][0] / limits[f'ov_limit_x{t}']:.2f} of that limit ({vs_f32[t][1]:.2f}x = "
            f"{vs_f32[t][1] / limits[f'ov_limit_x{t}']:.2f} with the unquantized rest in f32)",
            flush=True,
        )
    print(
        f"openvino int8 ({len(CALIBRATION)} calibration texts, seed {args.calibration_seed}), the rule of step 5: "
        f"{rule}" + (f" ({'; '.join(failed)})" if failed else " (recommend openvino int8 as the CPU int8)"),
        flush=True,
    )
    return (
        f"openvino_int8_min_cos={ov_cos.min():.4f} openvino_int8_mean_cos={ov_cos.mean():.4f} "
        f"openvino_int8_docs_per_s={rates['openvino int8 x2']:.1f} "
        f"openvino_int8_x1_docs_per_s={rates['openvino int8 x1']:.1f} "
        f"openvino_int8_gemm_limit={limits['ov_limit_x2']:.2f} openvino_int8_gemm_limit_x1={limits['ov_limit_x1']:.2f} "
        f"openvino_int8_gemm_limit_recipe={limits['ov_limit_recipe_x2']:.2f} "
        f"openvino_int8_gemm_limit_recipe_x1={limits['ov_limit_recipe_x1']:.2f} "
        f"openvino_int8_vs_limit={ratio[2] / limits['ov_limit_x2']:.3f} "
        f"openvino_int8_vs_limit_x1={ratio[1] / limits['ov_limit_x1']:.3f} "
        f"openvino_int8_vs_f32={vs_f32[2][0]:.2f} openvino_int8_vs_f32_x1={vs_f32[1][0]:.2f} "
        f"openvino_int8_vs_f32_of_limit={vs_f32[2][0] / limits['ov_limit_x2']:.3f} "
        f"openvino_int8_vs_f32_of_limit_x1={vs_f32[1][0] / limits['ov_limit_x1']:.3f} "
        f"openvino_int8_f32rest_vs_f32={vs_f32[2][1]:.2f} openvino_int8_f32rest_vs_f32_x1={vs_f32[1][1]:.2f} "
        f"openvino_default_precision={limits['ov_default_precision']} "
        f"openvino_int8_precision={limits['ov_int8_precision']} "
        f"knn_ndcg_openvino_int8={ndcg['knn']['openvino_int8']:.4f} "
        f"hybrid_ndcg_openvino_int8={ndcg['hybrid']['openvino_int8']:.4f} "
        f"openvino_int8_rule={rule} calibration_docs={len(CALIBRATION)} calibration_seed={args.calibration_seed}"
    )


def cosines(a: Any, b: Any) -> Any:
    import numpy as np

    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def service_layouts(cpus: int) -> dict[str, Any]:
    """The service variants compared: default flags (torch, default layout), the other CPU layout, and onnx
    int8 with the default layout."""
    from embedding_service.deployment import default_replicas
    from embedding_service.settings import EmbeddingServiceSettings

    default = EmbeddingServiceSettings(device="cpu")
    replicas = default_replicas(default, cluster_gpus=0, cluster_cpus=cpus)
    if replicas > 1:  # default N x 1: the other is one replica with all the threads
        other = EmbeddingServiceSettings(device="cpu", replicas=1, num_cpus_per_replica=cpus)
    else:  # default 1 x N: the other is one 1-thread replica per CPU
        other = EmbeddingServiceSettings(device="cpu", replicas=cpus, num_cpus_per_replica=1)
    return {
        "default": default,
        "other": other,
        "int8": EmbeddingServiceSettings(device="cpu", backend="onnx", quantize="int8"),
    }


def measure_service(
    texts: list[str], args: argparse.Namespace
) -> tuple[dict[str, float], dict[str, str], dict[str, dict[str, float]]]:
    """docs/s of each service variant over HTTP, all deployed at once in one Ray (the CPUs they reserve are
    accounting only: one variant runs at a time), interleaved rounds, best kept; and each one's layout."""
    import ray
    from ray import serve

    from bench._limits import replica_counters, where_time_goes
    from connector.services.embedding import EmbeddingClient
    from embedding_service.deployment import build_app

    cpus = os.cpu_count() or 1
    variants = service_layouts(cpus)
    port = free_port()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(
        address="local",
        num_cpus=cpus * len(variants),  # room for every variant at once; each default layout divides ``cpus``
        include_dashboard=False,
        object_store_memory=200 * 1024 * 1024,
        log_to_driver=False,
        logging_level=logging.WARNING,
    )
    serve.start(
        http_options={"host": "127.0.0.1", "port": port},
        logging_config={"enable_access_log": False, "log_level": "WARNING"},
    )
    rates: dict[str, float] = dict.fromkeys(variants, 0.0)
    layouts: dict[str, str] = {}
    diagnosis: dict[str, dict[str, float]] = {}
    try:
        clients = {}
        for name, settings in variants.items():
            serve.run(
                build_app(settings, cluster_gpus=0, cluster_cpus=cpus), name=f"embed-{name}", route_prefix=f"/{name}"
            )
            client = EmbeddingClient(
                f"http://127.0.0.1:{port}/{name}", batch_size=args.batch_size, max_concurrency=args.http_concurrency
            )
            info = client.info()
            layouts[name] = f"{info.backend}/{info.quantization} {info.replicas} x {info.threads_per_replica}"
            client.embed_documents(texts[: args.batch_size * args.http_concurrency])  # warm every replica
            clients[name] = client
        stream = list(texts) * args.service_repeat
        print(
            f"service over HTTP ({args.service_rounds} interleaved rounds, best kept; {len(stream)} docs a run: "
            f"the sample x {args.service_repeat}):",
            flush=True,
        )
        for _ in range(args.service_rounds):
            for name, client in clients.items():
                label = f"service {name} ({layouts[name]})"
                replicas = int(layouts[name].split()[1])
                before = replica_counters(client, replicas)
                started = time.perf_counter()
                rate = timed(label, len(stream), lambda c=client: c.embed_documents(stream))
                parts = where_time_goes(
                    before, replica_counters(client, replicas), wall_s=time.perf_counter() - started, docs=len(stream)
                )
                print(
                    f"    replicas busy {parts['busy_share']:.1%} of the wall time; their forward passes alone "
                    f"{parts['forward_docs_per_s']:.1f} docs/s; padded/real tokens {parts['padding']:.3f}",
                    flush=True,
                )
                if rate > rates[name]:
                    rates[name] = rate
                    diagnosis[name] = parts
        for client in clients.values():
            client.close()
    finally:
        serve.shutdown()
        ray.shutdown()
    return rates, layouts, diagnosis


def gpu_main(args: argparse.Namespace) -> int:
    """torch bf16 on one GPU at 128 and 256 tokens: docs/s and the share of the bf16 roofline."""
    import torch

    from embedding_service.model import Embedder
    from embedding_service.model_spec import build_model_spec
    from embedding_service.settings import EmbeddingServiceSettings

    spec = build_model_spec(EmbeddingServiceSettings())
    embedder = Embedder.load(spec, device="cuda", dtype="bfloat16")
    print(f"GPU: {torch.cuda.get_device_name(0)}, peak {args.peak_tflops} TFLOP/s dense bf16", flush=True)
    parts = []
    for length in (128, 256):
        best = 0.0
        for batch in args.gpu_batch:
            rows = [[101] + [1000 + (i * 7 + j) % 20000 for j in range(length - 2)] + [102] for i in range(batch)]
            for _ in range(3):
                embedder.forward(rows)
            torch.cuda.synchronize()
            started, passes = time.perf_counter(), 0
            while time.perf_counter() - started < args.gpu_seconds:
                embedder.forward(rows)
                passes += 1
            torch.cuda.synchronize()
            rate = passes * len(rows) / (time.perf_counter() - started)
            share = roofline_share(rate, length, args.peak_tflops)
            print(f"  {length} tokens, batch {batch}: {rate:,.0f} docs/s, {share:.1%} of roofline", flush=True)
            best = max(best, rate)
        share = roofline_share(best, length, args.peak_tflops)
        parts.append(f"gpu_docs_per_s_{length}={best:.0f} roofline_share_{length}={share:.3f}")
    parts.append(f"peak_tflops={args.peak_tflops:g}")
    print("RESULT " + " ".join(parts))
    return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--data",
        type=Path,
        default=next(
            (p / "data" / "esci-us-subset" for p in (REPO.parent / "shared", REPO.parents[1] / "shared") if p.is_dir()),
            REPO.parent / "shared" / "data" / "esci-us-subset",
        ),
        help="BEIR folder with corpus.jsonl, queries.jsonl and qrels/test.tsv (default /work/shared/data/...)",
    )
    parser.add_argument("--docs", type=int, default=200, help="texts for the throughput runs (a sample)")
    parser.add_argument("--calibration-docs", type=int, default=300, help="openvino int8 calibration texts")
    parser.add_argument("--calibration-seed", type=int, default=0, help="seed of the calibration sample")
    parser.add_argument("--quality-docs", type=int, default=1000, help="judged docs for the nDCG comparison (a pool)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds in process")
    parser.add_argument(
        "--service-rounds", type=int, default=3, help="interleaved rounds over HTTP (the layout rule wants >= 3)"
    )
    parser.add_argument("--batch-size", type=int, default=64, help="texts per request / raw batch")
    parser.add_argument("--http-concurrency", type=int, default=4)
    parser.add_argument(
        "--service-repeat", type=int, default=4, help="the sample sent this many times a service run (steady state)"
    )
    parser.add_argument("--gemm-tokens", type=int, default=2048, help="activation rows of the int8/fp32 GEMM limit")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--gpu-batch", type=int, nargs="+", default=[256, 1024], help="rows per pass (best kept)")
    parser.add_argument("--gpu-seconds", type=float, default=15.0, help="timed seconds per length and batch")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak (H100/H200: 989)")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.device == "cuda":
        return gpu_main(args)

    texts = load_texts(args.data / "corpus.jsonl", args.docs)
    pool = judged_pool(args.data, max_docs=args.quality_docs)
    CALIBRATION[:] = calibration_sample(
        args.data, size=args.calibration_docs, seed=args.calibration_seed, exclude={*pool.doc_ids, *texts}
    )
    load_start = os.getloadavg()[0]
    print(f"{len(texts)} docs from {args.data}, {os.cpu_count()} CPUs, load average {load_start:.2f}", flush=True)
    rates, vectors = measure_backends(texts, batch_size=args.batch_size, rounds=args.rounds)
    reference = vectors["torch fp32 x2"]
    for label, v in vectors.items():
        c = cosines(v, reference)
        print(f"  {label:<20} cosine to torch fp32: mean {c.mean():.5f} min {c.min():.5f}", flush=True)
    int8_cos = cosines(vectors["onnx int8 x2"], reference)
    for i in int8_cos.argsort()[:3]:
        print(f"  int8 low cosine {int8_cos[i]:.4f}: {texts[i][:70]!r} ({len(texts[i])} chars)", flush=True)
    torch_same = rates["torch fp32 x2"]
    int8_same = rates["onnx int8 x2"]
    torch_best_label = max(("torch fp32 x1", "torch fp32 x2"), key=rates.__getitem__)
    torch_best = rates[torch_best_label]
    print(f"the machine's limits (CPU extensions: {cpu_extensions()}):", flush=True)
    limits = machine_limits(load_variant("torch", "none", threads=2), texts, gemm_tokens=args.gemm_tokens)
    share = {t: rates[f"torch fp32 x{t}"] * limits["gflop_per_doc"] / limits[f"gemm_gflops_x{t}"] for t in (1, 2)}
    int8_ratio = {t: rates[f"onnx int8 x{t}"] / rates[f"torch fp32 x{t}"] for t in (1, 2)}
    for t in (1, 2):
        print(
            f"  x{t}: torch fp32 at {share[t]:.1%} of the fp32 GEMM peak ({limits['gflop_per_doc']:.2f} GFLOP/doc, "
            f"{limits['mean_tokens']:.0f} tokens); int8_vs_torch {int8_ratio[t]:.2f} = "
            f"{int8_ratio[t] / limits[f'int8_gemm_limit_x{t}']:.2f} of the int8 GEMM limit (goal >= 0.8)",
            flush=True,
        )
    print(f"load average {os.getloadavg()[0]:.2f}", flush=True)
    ndcg = quality_ndcg(
        pool,
        variants={
            "fp32": load_variant("torch", "none", threads=2),
            "int8": load_variant("onnx", "int8", threads=2),
            "openvino_int8": load_variant("openvino", "int8", threads=2),
        },
    )
    openvino_result = openvino_report(texts, rates, vectors, limits, ndcg, args=args, load_start=load_start)
    print(f"load average {os.getloadavg()[0]:.2f}", flush=True)
    service, layouts, diagnosis = measure_service(texts, args)
    best_layout = max(("default", "other"), key=service.__getitem__)
    print(
        f"layout: default {layouts['default']} {service['default']:.1f} docs/s, other {layouts['other']} "
        f"{service['other']:.1f} docs/s -> {best_layout} measures better",
        flush=True,
    )
    load_end = os.getloadavg()[0]
    print(f"load average: {load_start:.2f} at the start, {load_end:.2f} at the end", flush=True)
    print(
        f"RESULT torch_docs_per_s={torch_same:.1f} int8_docs_per_s={int8_same:.1f} "
        f"int8_vs_torch={int8_same / torch_same:.2f} "
        f"onnx_fp32_docs_per_s={rates['onnx fp32 x2']:.1f} torch_x1_docs_per_s={rates['torch fp32 x1']:.1f} "
        f"int8_x1_docs_per_s={rates['onnx int8 x1']:.1f} "
        f"service_default_docs_per_s={service['default']:.1f} service_default_vs_raw={service['default'] / torch_best:.3f} "
        f"service_other_layout_docs_per_s={service['other']:.1f} service_int8_docs_per_s={service['int8']:.1f} "
        f"service_default_busy_share={diagnosis['default']['busy_share']:.3f} "
        f"service_default_forward_vs_raw={diagnosis['default']['forward_docs_per_s'] / torch_best:.3f} "
        f"service_other_busy_share={diagnosis['other']['busy_share']:.3f} "
        f"fp32_share_of_gemm={share[2]:.3f} fp32_share_of_gemm_x1={share[1]:.3f} "
        f"int8_gemm_limit={limits['int8_gemm_limit_x2']:.2f} int8_gemm_limit_x1={limits['int8_gemm_limit_x1']:.2f} "
        f"int8_gemm_limit_recipe={limits['int8_gemm_limit_recipe_x2']:.2f} "
        f"int8_gemm_limit_recipe_x1={limits['int8_gemm_limit_recipe_x1']:.2f} "
        f"int8_vs_torch_x1={int8_ratio[1]:.2f} int8_vs_limit={int8_ratio[2] / limits['int8_gemm_limit_x2']:.3f} "
        f"int8_vs_limit_x1={int8_ratio[1] / limits['int8_gemm_limit_x1']:.3f} "
        f"gemm_gflops_x1={limits['gemm_gflops_x1']:.1f} gemm_gflops_x2={limits['gemm_gflops_x2']:.1f} "
        f"gflop_per_doc={limits['gflop_per_doc']:.3f} "
        f"openvino_int8_vs_torch={rates['openvino int8 x2'] / torch_same:.2f} "
        f"openvino_int8_vs_torch_x1={rates['openvino int8 x1'] / rates['torch fp32 x1']:.2f} "
        f"{openvino_result} "
        f"int8_mean_cos={int8_cos.mean():.4f} int8_min_cos={int8_cos.min():.4f} "
        f"knn_ndcg_fp32={ndcg['knn']['fp32']:.4f} knn_ndcg_int8={ndcg['knn']['int8']:.4f} "
        f"hybrid_ndcg_fp32={ndcg['hybrid']['fp32']:.4f} hybrid_ndcg_int8={ndcg['hybrid']['int8']:.4f} "
        f"load_avg_start={load_start:.2f} load_avg_end={load_end:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
