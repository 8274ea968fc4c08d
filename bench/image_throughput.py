"""Image embedding throughput: the service against the raw model, and the image backfill against embedding only.

1. raw model: ``ClipEmbedder`` in this process on one torch thread, bytes -> decode -> preprocess -> forward, in
   batches of ``--batch`` (what the service does, minus HTTP and Ray);
2. the service: ``eshybrid serve image`` (one replica, one torch thread, the service's other flags at their
   defaults), the same encoded images sent as base64 ``data`` inputs by ``EmbeddingClient.embed_images``
   (``--batch`` per request, ``IN_FLIGHT`` = 4 requests in flight: the client's default ``max_concurrency``, what
   the job sends a page with; it was 2 until 2026-12-07, changed after the 0.872 of that day because 2 x 32
   images fit one forward batch of the service's default 64; a diagnostic run on 600 images under load (4.4)
   then found 2, 4 and 8 in flight within 5% of each other, so the change is for likeness to the job, not a
   gain); 1 and 2 are interleaved twice and averaged: ``service_vs_raw`` (goal >= 0.9);
3. embedding only: the same images through the same service and client, in pages as the job sends them (no fetch,
   no cluster), measured before and after the backfill and averaged;
4. image backfill end to end: a real cluster index whose documents name the images on a static HTTP server in its
   own process (this script with ``--serve-images FOLDER``: HTTP/1.1 keep-alive, ``ETag``, no Nagle delay, as an
   image host or CDN answers; a server the shop runs is never in the job's process, nor shares its GIL;
   ``python -m http.server`` was tried first and dropped: HEAD on its HTTP/1.0 ran at ~360/s, GET on its
   HTTP/1.1 at ~180/s (headers and body in two packets, Nagle + delayed ACK), a limit of that server alone), ``run_image_backfill`` with the job's defaults (pages of 500, 4 embed workers,
   the next page's images prefetched: one page ahead), fetch with bounded concurrency, embed, conditional bulk
   updates, checkpoints: ``backfill_vs_embed`` (goal >= 0.85).
5. where the time goes, in process (a profile, not a goal): ms per image of each step of the service's request
   path on 256 of the images (base64 + JSON of the client's body, the service's parse, base64 decode, image
   decode, preprocess, forward), printed before the result line.

``--images`` defaults to 2,000: the count the issue's goal names (issue 28), not one chosen from a result. The
settings above (4 in flight, the job's default page and prefetch) were written down before the first run at
2,000 images.

The model: by default a CLIP of ViT-ish size built from a config with a fixed seed (224 px, patch 32, 4 layers,
hidden 256; untrained: throughput does not depend on the weights) with the tiny CLIP's tokenizer, so that the
forward pass weighs what a real image model's does per image; ``--model`` takes any CLIPModel folder (the tiny
32 px CLIP measures the per-request overhead alone).

Last line: ``RESULT raw_images_per_s=... service_images_per_s=... service_vs_raw=... embed_only_images_per_s=...
backfill_images_per_s=... backfill_vs_embed=... load_avg=...``

Usage::

    python bench/image_throughput.py --url http://127.0.0.1:9201 [--images 2000] [--model FOLDER]
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import queue
import random
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._servers import cluster as bench_cluster  # noqa: E402
from bench._servers import free_port, model_service  # noqa: E402
from connector import connect  # noqa: E402
from connector.jobs.backfill import BackfillConfig  # noqa: E402
from connector.jobs.images import ImageFetchSettings, run_image_backfill  # noqa: E402
from connector.jobs.settings import JobSettings  # noqa: E402
from connector.services.embedding import EmbeddingClient  # noqa: E402
from tests.fixtures.images import TINY_CLIP, trainer  # noqa: E402

IMAGE_SIZE = 224
IN_FLIGHT = 4  # requests in flight to the service: EmbeddingClient's default max_concurrency


def build_bench_model(folder: Path) -> None:
    """A CLIPModel of a real image model's per-image cost (fixed seed), with the tiny CLIP's tokenizer."""
    import torch
    from transformers import AutoTokenizer, CLIPConfig, CLIPImageProcessor, CLIPModel

    tokenizer = AutoTokenizer.from_pretrained(TINY_CLIP)
    torch.manual_seed(19)
    config = CLIPConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 128,
            "intermediate_size": 256,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 16,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id,
        },
        vision_config={
            "image_size": IMAGE_SIZE,
            "patch_size": 32,
            "hidden_size": 256,
            "intermediate_size": 1024,
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
        },
        projection_dim=128,
    )
    CLIPModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    CLIPImageProcessor(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    ).save_pretrained(folder)


def make_images(n: int, size: int) -> list[bytes]:
    """``n`` JPEG product shots of coloured shapes (``size`` px, ~5-10 KB each)."""
    t = trainer()
    rng = random.Random(7)
    captions = t.captions()
    out: list[bytes] = []
    for _ in range(n):
        colour, shape = rng.choice(captions).split()
        buffer = io.BytesIO()
        t.draw_shape(colour, shape, rng, size=size).save(buffer, format="JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


def image_service(model: Path) -> Any:
    """``eshybrid serve image`` (by :mod:`bench._servers`): one replica, one torch thread."""
    return model_service("image", args=["--model", str(model), "--num-cpus", "2", "--replicas", "1",
                                        "--num-cpus-per-replica", "1", "--torch-threads", "1", "--device", "cpu"])  # fmt: skip


def raw_rate(embedder: Any, images: Sequence[bytes], batch: int) -> float:
    from PIL import Image

    started = time.perf_counter()
    for start in range(0, len(images), batch):
        decoded = [Image.open(io.BytesIO(raw)).convert("RGB") for raw in images[start : start + batch]]
        embedder.encode_images(decoded)
    return len(images) / (time.perf_counter() - started)


def client_rate(client: EmbeddingClient, images: Sequence[bytes], *, page: int, workers: int) -> float:
    """images/s through the service: pages of ``page`` images, ``workers`` threads (as the job's embed stage)."""
    pages: queue.Queue[list[dict[str, str]]] = queue.Queue()
    items = [{"data": base64.b64encode(raw).decode("ascii")} for raw in images]
    for start in range(0, len(items), page):
        pages.put(items[start : start + page])
    errors: list[BaseException] = []

    def work() -> None:
        while True:
            try:
                chunk = pages.get_nowait()
            except queue.Empty:
                return
            try:
                client.embed_images(chunk)
            except BaseException as e:  # noqa: BLE001 - reported below
                errors.append(e)
                return

    started = time.perf_counter()
    threads = [threading.Thread(target=work) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return len(images) / (time.perf_counter() - started)


def serve_images(folder: Path, port: int) -> None:
    """Serve the files under ``folder`` (read once) on 127.0.0.1:``port``: GET/HEAD, HTTP/1.1 keep-alive, ETag."""
    import hashlib
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    files = {"/" + str(path.relative_to(folder)): path.read_bytes() for path in folder.rglob("*") if path.is_file()}
    tags = {name: '"' + hashlib.sha256(body).hexdigest()[:16] + '"' for name, body in files.items()}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_GET(self) -> None:  # noqa: N802 - the http.server API
            self._answer(head=False)

        def do_HEAD(self) -> None:  # noqa: N802 - the http.server API
            self._answer(head=True)

        def _answer(self, *, head: bool) -> None:
            body = files.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Type", "image/jpeg" if body is not None else "text/plain")
            self.send_header("Content-Length", str(len(body or b"")))
            if body is not None:
                self.send_header("ETag", tags[self.path])
            self.end_headers()
            if body and not head:
                self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    server.serve_forever()


@contextmanager
def static_image_server(folder: Path) -> Iterator[str]:
    """:func:`serve_images` over ``folder`` in its own process; its base URL."""
    import httpx

    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve-images", str(folder), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.head(f"{base}/", timeout=1.0)
                break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the static image server did not start on port {port}") from None
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def stage_costs(embedder: Any, images: Sequence[bytes], batch: int) -> dict[str, float]:
    """ms per image of each step of the service's request path, in this process, one thread (a profile)."""
    from embedding_service.images import ImageEmbeddingRequest, decode_image

    sample = list(images[:256])
    costs: dict[str, float] = {}
    started = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal started
        now = time.perf_counter()
        costs[name] = (now - started) * 1000 / len(sample)
        started = now

    chunks = [sample[i : i + batch] for i in range(0, len(sample), batch)]
    ImageEmbeddingRequest.model_validate_json('{"input": [{"image": {"data": "AA=="}}]}')  # warm
    started = time.perf_counter()
    bodies = [
        json.dumps({"input": [{"image": {"data": base64.b64encode(raw).decode("ascii")}} for raw in chunk]})
        for chunk in chunks
    ]
    lap("client_b64_json")
    parsed = [ImageEmbeddingRequest.model_validate_json(body) for body in bodies]
    lap("service_parse")
    raws = [[base64.b64decode(item.image.data) for item in p.input if item.image] for p in parsed]  # type: ignore[union-attr]
    lap("b64_decode")
    decoded = [[decode_image(raw, field="x", max_bytes=1 << 30, max_pixels=1 << 30) for raw in c] for c in raws]
    lap("image_decode")
    pixels = [embedder.preprocess(chunk) for chunk in decoded]
    lap("preprocess")
    for rows in pixels:
        embedder.forward_pixels(rows)
    lap("forward")
    return costs


def backfill_rate(cluster: Any, base: str, client: EmbeddingClient, count: int, s: JobSettings) -> float:
    index = f"bench-images-{uuid.uuid4().hex[:8]}"
    settings: dict[str, Any] = {"index": {"number_of_shards": 1, "number_of_replicas": 0}}
    if cluster.capabilities.requires_knn_index_setting:
        settings["index"]["knn"] = True
    mappings = {"properties": {"title": {"type": "text"}, "image_url": {"type": "keyword"}}}
    cluster.create_index(index, {"settings": settings, "mappings": mappings})
    try:
        lines: list[Any] = []
        for i in range(count):
            lines += [{"index": {"_index": index, "_id": f"p{i}"}}, {"title": f"item {i}",
                      "image_url": f"{base}/p/{i}.jpg"}]  # fmt: skip
        assert not cluster.bulk(lines).get("errors")
        cluster.refresh(index)
        config = BackfillConfig(index=index, fields=("image_url",), vector_field="image_embedding", settings=s,
                                show_progress=False)  # fmt: skip
        started = time.perf_counter()
        summary = run_image_backfill(cluster, config, client=client, fetch=ImageFetchSettings())
        elapsed = time.perf_counter() - started
        assert summary.reconciles and summary.main.updated == count, summary.as_dict()
        print(f"backfill: {count / elapsed:.1f} images/s ({elapsed:.1f}s, main {summary.main_elapsed_s:.1f}s)")
        return count / elapsed
    finally:
        for name in (index, s.jobs_index, s.dead_letter_index):
            cluster.delete_index(name)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--serve-images"]:  # the image host's own process (static_image_server)
        serve_images(Path(argv[1]), int(argv[2]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url", help="cluster URL (default $ESHYBRID_TEST_ES9_URL / _OS3_URL by --flavor; unset: a local one)"
    )
    parser.add_argument("--flavor", default="elasticsearch", choices=("elasticsearch", "opensearch"))
    parser.add_argument("--model", help="CLIPModel folder (default: the bench-sized model built from a config)")
    parser.add_argument("--images", type=int, default=2000, help="images (default 2,000: the issue's count)")
    parser.add_argument("--batch", type=int, default=32, help="images per request / raw batch")
    args = parser.parse_args(argv)

    import torch

    from embedding_service.clip import ClipEmbedder

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(args.model) if args.model else Path(tmp) / "bench-clip"
        if not args.model:
            build_bench_model(model)
        raw_model = ClipEmbedder.load(model, device="cpu", dtype="float32")
        size = int(raw_model._processor.crop_size["height"])  # noqa: SLF001 - the model's own input size
        images = make_images(args.images, size)
        folder = Path(tmp) / "images"
        (folder / "p").mkdir(parents=True)
        for i, raw in enumerate(images):
            (folder / "p" / f"{i}.jpg").write_bytes(raw)
        s = JobSettings(jobs_index="bench-eshybrid-jobs", dead_letter_index="bench-eshybrid-dead")
        key = "es9" if args.flavor == "elasticsearch" else "os3"
        url_given = args.url or os.environ.get(f"ESHYBRID_TEST_{key.upper()}_URL")
        with (
            image_service(model) as url,
            bench_cluster(key, url_given, label="bench-image") as cluster_address,
            static_image_server(folder) as image_base,
            EmbeddingClient(url, timeout_s=120, batch_size=args.batch) as client,
            connect(cluster_address) as cluster,
        ):
            print(f"model {model.name} ({size} px), {args.images} images, service at {url}", flush=True)
            raw_rate(raw_model, images[:64], args.batch)
            client_rate(client, images[:128], page=args.batch, workers=IN_FLIGHT)  # warm-ups
            raws, services = [], []
            for _ in range(2):  # interleaved
                raws.append(raw_rate(raw_model, images, args.batch))
                services.append(client_rate(client, images, page=args.batch, workers=IN_FLIGHT))
                print(f"raw {raws[-1]:.1f} images/s, service {services[-1]:.1f} images/s", flush=True)
            page, workers = s.page_size, s.embed_workers
            before = client_rate(client, images, page=page, workers=workers)
            backfill = backfill_rate(cluster, image_base, client, len(images), s)
            after = client_rate(client, images, page=page, workers=workers)
            print(f"embed only: {before:.1f} before, {after:.1f} after images/s", flush=True)
        stages = stage_costs(raw_model, images, args.batch)
        print("stages (ms per image, in process): " + " ".join(f"{k}={v:.3f}" for k, v in stages.items()))
    raw = sum(raws) / len(raws)
    service = sum(services) / len(services)
    embed = (before + after) / 2
    load = os.getloadavg()[0]
    print(
        f"RESULT raw_images_per_s={raw:.1f} service_images_per_s={service:.1f} service_vs_raw={service / raw:.3f} "
        f"embed_only_images_per_s={embed:.1f} backfill_images_per_s={backfill:.1f} "
        f"backfill_vs_embed={backfill / embed:.3f} load_avg={load:.2f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
