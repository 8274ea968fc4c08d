"""Image embedding throughput: the service against the raw model, and the image backfill against embedding only.

1. raw model: ``ClipEmbedder`` in this process on one torch thread, bytes -> decode -> preprocess -> forward, in
   batches of ``--batch`` (what the service does, minus HTTP and Ray);
2. the service: ``eshybrid serve image`` (one replica, one torch thread), the same encoded images sent as base64
   ``data`` inputs by ``EmbeddingClient.embed_images`` (``--batch`` per request, two requests in flight);
   1 and 2 are interleaved twice and averaged: ``service_vs_raw`` (goal >= 0.9);
3. embedding only: the same images through the same service and client, in pages as the job sends them (no fetch,
   no cluster), measured before and after the backfill and averaged;
4. image backfill end to end: a real cluster index whose documents name the images on a local HTTP server,
   ``run_image_backfill`` (fetch with bounded concurrency, embed, conditional bulk updates, checkpoints):
   ``backfill_vs_embed`` (goal >= 0.85).

The model: by default a CLIP of ViT-ish size built from a config with a fixed seed (224 px, patch 32, 4 layers,
hidden 256; untrained: throughput does not depend on the weights) with the tiny CLIP's tokenizer, so that the
forward pass weighs what a real image model's does per image; ``--model`` takes any CLIPModel folder (the tiny
32 px CLIP measures the per-request overhead alone).

Last line: ``RESULT raw_images_per_s=... service_images_per_s=... service_vs_raw=... embed_only_images_per_s=...
backfill_images_per_s=... backfill_vs_embed=... load_avg=...``

Usage::

    python bench/image_throughput.py --url http://127.0.0.1:9201 [--images 600] [--model FOLDER]
"""

from __future__ import annotations

import argparse
import base64
import io
import os
import queue
import random
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._servers import cluster as bench_cluster  # noqa: E402
from bench._servers import model_service  # noqa: E402
from connector import connect  # noqa: E402
from connector.jobs.backfill import BackfillConfig  # noqa: E402
from connector.jobs.images import ImageFetchSettings, run_image_backfill  # noqa: E402
from connector.jobs.settings import JobSettings  # noqa: E402
from connector.services.embedding import EmbeddingClient  # noqa: E402
from tests.fixtures.images import TINY_CLIP, ImageServer, trainer  # noqa: E402

IMAGE_SIZE = 224


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


def backfill_rate(
    cluster: Any, server: ImageServer, client: EmbeddingClient, images: Sequence[bytes], s: JobSettings
) -> float:
    index = f"bench-images-{uuid.uuid4().hex[:8]}"
    settings: dict[str, Any] = {"index": {"number_of_shards": 1, "number_of_replicas": 0}}
    if cluster.capabilities.requires_knn_index_setting:
        settings["index"]["knn"] = True
    mappings = {"properties": {"title": {"type": "text"}, "image_url": {"type": "keyword"}}}
    cluster.create_index(index, {"settings": settings, "mappings": mappings})
    try:
        lines: list[Any] = []
        for i, raw in enumerate(images):
            server.add({f"/p/{i}.jpg": (200, "image/jpeg", raw)})
            lines += [{"index": {"_index": index, "_id": f"p{i}"}}, {"title": f"item {i}",
                      "image_url": f"{server.base}/p/{i}.jpg"}]  # fmt: skip
        assert not cluster.bulk(lines).get("errors")
        cluster.refresh(index)
        config = BackfillConfig(index=index, fields=("image_url",), vector_field="image_embedding", settings=s,
                                show_progress=False)  # fmt: skip
        started = time.perf_counter()
        summary = run_image_backfill(cluster, config, client=client, fetch=ImageFetchSettings())
        elapsed = time.perf_counter() - started
        assert summary.reconciles and summary.main.updated == len(images), summary.as_dict()
        print(f"backfill: {len(images) / elapsed:.1f} images/s ({elapsed:.1f}s, main {summary.main_elapsed_s:.1f}s)")
        return len(images) / elapsed
    finally:
        for name in (index, s.jobs_index, s.dead_letter_index):
            cluster.delete_index(name)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url", help="cluster URL (default $ESHYBRID_TEST_ES9_URL / _OS3_URL by --flavor; unset: a local one)"
    )
    parser.add_argument("--flavor", default="elasticsearch", choices=("elasticsearch", "opensearch"))
    parser.add_argument("--model", help="CLIPModel folder (default: the bench-sized model built from a config)")
    parser.add_argument("--images", type=int, default=600)
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
        s = JobSettings(jobs_index="bench-eshybrid-jobs", dead_letter_index="bench-eshybrid-dead")
        server = ImageServer()
        key = "es9" if args.flavor == "elasticsearch" else "os3"
        url_given = args.url or os.environ.get(f"ESHYBRID_TEST_{key.upper()}_URL")
        with (
            image_service(model) as url,
            bench_cluster(key, url_given, label="bench-image") as cluster_address,
            EmbeddingClient(url, timeout_s=120, batch_size=args.batch) as client,
            connect(cluster_address) as cluster,
        ):
            print(f"model {model.name} ({size} px), {args.images} images, service at {url}", flush=True)
            raw_rate(raw_model, images[:64], args.batch)
            client_rate(client, images[:64], page=args.batch, workers=2)  # warm-ups
            raws, services = [], []
            for _ in range(2):  # interleaved
                raws.append(raw_rate(raw_model, images, args.batch))
                services.append(client_rate(client, images, page=args.batch, workers=2))
                print(f"raw {raws[-1]:.1f} images/s, service {services[-1]:.1f} images/s", flush=True)
            page, workers = s.page_size, s.embed_workers
            before = client_rate(client, images, page=page, workers=workers)
            backfill = backfill_rate(cluster, server, client, images, s)
            after = client_rate(client, images, page=page, workers=workers)
            print(f"embed only: {before:.1f} before, {after:.1f} after images/s", flush=True)
        server.close()
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
