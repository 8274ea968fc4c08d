"""The Ray Serve deployment of the reranker.

Concurrent searches are gathered by ``@serve.batch`` into one list of
(query, document) pairs (at most ``max_batch_pairs``), scored in length-sorted
forward passes on a dedicated thread (so the event loop keeps accepting
requests, answering /healthz and 429s), and split back per request.

Two layers of backpressure, both answering 429 with ``Retry-After``: Ray
Serve's ``max_queued_requests`` (requests waiting for a replica) and the
replica's own ``max_pending_pairs`` (pairs accepted and not yet scored).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import ray
import torch
from ray import serve
from ray.serve import metrics as serve_metrics
from ray.serve.deployment import Application

from connector.observe.metrics import ServiceMetrics
from connector.services.wire import RerankServiceInfo, replica_options
from rerank.app import create_app
from rerank.errors import RerankOverloaded
from rerank.loading import load_reranker
from rerank.models import ScoredPairs
from rerank.settings import RerankSettings

__all__ = ["RerankDeployment", "build_app", "default_threads", "deployment_options"]

logger = logging.getLogger(__name__)

_BATCH_PAIRS_BUCKETS = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0]
_TAG_KEYS = ("model",)
_FORWARD_MS_BUCKETS = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0]


@dataclass(frozen=True)
class _Job:
    """One request's (or one chunk of a request's) documents for one query."""

    query: str
    documents: list[str]


def _pairs_in(jobs: list[_Job]) -> int:
    return sum(len(job.documents) for job in jobs)


class _Stats:
    """Counters for ``GET /metrics`` (the same numbers also go to Ray's Prometheus metrics)."""

    def __init__(self) -> None:
        self.requests = 0
        self.rejected = 0
        self.pairs = 0
        self.tokens = 0
        self.batches = 0
        self.forward_s = 0.0
        self.max_batch_pairs_seen = 0
        self.started_at = time.time()

    def snapshot(self, *, pending_pairs: int) -> dict[str, Any]:
        return {
            "requests_total": self.requests,
            "rejected_total": self.rejected,
            "pairs_total": self.pairs,
            "tokens_total": self.tokens,
            "batches_total": self.batches,
            "mean_batch_pairs": round(self.pairs / self.batches, 2) if self.batches else 0.0,
            "max_batch_pairs_seen": self.max_batch_pairs_seen,
            "forward_s_total": round(self.forward_s, 4),
            "pending_pairs": pending_pairs,
            "uptime_s": round(time.time() - self.started_at, 1),
        }


@serve.deployment
@serve.ingress()
class RerankDeployment:
    """One replica: the model, the batcher and the HTTP app around them."""

    def __init__(self, settings: RerankSettings) -> None:
        threads = settings.torch_threads or max(1, int(settings.num_cpus_per_replica))
        # A replica with num_cpus=1 gets OMP_NUM_THREADS=1; say explicitly what we want,
        # here and in the forward thread (torch's thread count is per thread).
        torch.set_num_threads(threads)
        self.settings = settings.model_copy(update={"torch_threads": threads})
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="rerank-forward", initializer=torch.set_num_threads, initargs=(threads,)
        )
        self.reranker = load_reranker(self.settings)
        logger.info(
            "rerank replica ready: %s/%s, layout %s replica(s) x %s thread(s): %s",
            settings.backend,
            settings.quantize,
            settings.replicas,
            threads,
            self.settings.reported_model_id,
        )
        batcher: Any = self._score_batch  # @serve.batch adds the setters
        batcher.set_max_batch_size(settings.max_batch_pairs)
        batcher.set_batch_wait_timeout_s(settings.batch_wait_timeout_s)
        self._pending_pairs = 0
        self._stats = _Stats()
        self._service_metrics: ServiceMetrics | None = None
        tags = {"model": self.settings.reported_model_id}
        self._pairs_counter = serve_metrics.Counter(
            "eshybrid_rerank_pairs", description="pairs scored", tag_keys=_TAG_KEYS
        )
        self._tokens_counter = serve_metrics.Counter(
            "eshybrid_rerank_tokens", description="tokens scored", tag_keys=_TAG_KEYS
        )
        self._rejected_counter = serve_metrics.Counter(
            "eshybrid_rerank_rejected", description="requests given 429", tag_keys=_TAG_KEYS
        )
        self._batch_histogram = serve_metrics.Histogram(
            "eshybrid_rerank_batch_pairs",
            description="pairs per batch",
            boundaries=_BATCH_PAIRS_BUCKETS,
            tag_keys=_TAG_KEYS,
        )
        self._forward_histogram = serve_metrics.Histogram(
            "eshybrid_rerank_forward_ms",
            description="forward time per batch",
            boundaries=_FORWARD_MS_BUCKETS,
            tag_keys=_TAG_KEYS,
        )
        self._pending_gauge = serve_metrics.Gauge(
            "eshybrid_rerank_pending_pairs", description="pairs not yet scored", tag_keys=_TAG_KEYS
        )
        for metric in (
            self._pairs_counter,
            self._tokens_counter,
            self._rejected_counter,
            self._batch_histogram,
            self._forward_histogram,
            self._pending_gauge,
        ):
            metric.set_default_tags(dict(tags))  # Serve adds its own tags to the dict it is given

    def __serve_build_asgi_app__(self) -> Any:
        app = create_app(self)
        self._service_metrics = app.state.service_metrics  # Prometheus series of GET /metrics
        return app

    def info(self) -> dict[str, Any]:
        """The ``GET /info`` body, built with the contract the client reads (fields a model does not set left out)."""
        settings = self.settings
        info = RerankServiceInfo(
            **self.reranker.info(),
            max_documents_per_request=settings.max_documents_per_request,
            max_query_chars=settings.max_query_chars,
            max_chars_per_document=settings.max_chars_per_document,
            max_batch_pairs=settings.max_batch_pairs,
            torch_threads=settings.torch_threads,
            replicas=settings.replicas,
        )
        return info.model_dump(exclude_unset=True)

    def metrics(self) -> dict[str, Any]:
        body = self._stats.snapshot(pending_pairs=self._pending_pairs)
        body["replica"] = serve.get_replica_context().replica_tag
        return body

    def check_health(self) -> None:
        """Ray Serve's periodic health check."""
        if self.reranker is None:
            raise RuntimeError("model not loaded")

    async def score(self, query: str, documents: list[str]) -> ScoredPairs:
        """Score one request's documents, batched with whatever else is pending.

        Raises:
            RerankOverloaded: more than ``max_pending_pairs`` would be pending.
        """
        count = len(documents)
        limit = self.settings.max_pending_pairs
        # A lone request always gets in, however large: the limit protects against a pile-up.
        if self._pending_pairs and self._pending_pairs + count > limit:
            self._stats.rejected += 1
            self._rejected_counter.inc()
            raise RerankOverloaded(
                f"{self._pending_pairs} pairs are pending (limit {limit}); retry later",
                retry_after_s=self.settings.retry_after_s,
                pending_pairs=self._pending_pairs,
            )
        self._stats.requests += 1
        self._pending_pairs += count
        self._pending_gauge.set(self._pending_pairs)
        try:
            step = self.settings.max_batch_pairs
            parts = await asyncio.gather(
                *(self._score_batch(_Job(query, documents[at : at + step])) for at in range(0, count, step))
            )
        finally:
            self._pending_pairs -= count
            self._pending_gauge.set(self._pending_pairs)
        return ScoredPairs(
            scores=[score for part in parts for score in part.scores],
            tokens=[tokens for part in parts for tokens in part.tokens],
        )

    @serve.batch(max_batch_size=256, batch_wait_timeout_s=0.005, batch_size_fn=_pairs_in)
    async def _score_batch(self, jobs: list[_Job]) -> list[ScoredPairs]:
        pairs = [(job.query, document) for job in jobs for document in job.documents]
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        scored = await loop.run_in_executor(self._executor, self.reranker.score_pairs, pairs)
        elapsed_s = time.perf_counter() - started
        self._record_batch(len(pairs), sum(scored.tokens), elapsed_s)
        results: list[ScoredPairs] = []
        at = 0
        for job in jobs:
            end = at + len(job.documents)
            results.append(ScoredPairs(scored.scores[at:end], scored.tokens[at:end]))
            at = end
        return results

    def _record_batch(self, pairs: int, tokens: int, elapsed_s: float) -> None:
        stats = self._stats
        stats.batches += 1
        stats.pairs += pairs
        stats.tokens += tokens
        stats.forward_s += elapsed_s
        stats.max_batch_pairs_seen = max(stats.max_batch_pairs_seen, pairs)
        self._pairs_counter.inc(pairs)
        self._tokens_counter.inc(tokens)
        self._batch_histogram.observe(pairs)
        if self._service_metrics is not None:
            self._service_metrics.observe_batch(pairs)
        self._forward_histogram.observe(elapsed_s * 1000.0)


def default_threads(settings: RerankSettings, *, cluster_cpus: float, cluster_gpus: float) -> int:
    """Intra-op threads per replica: ``torch_threads`` when set; on CPU the cluster's CPUs divided among the
    replicas (one replica, the default: all of them, since one search's top-k is one request that only more
    threads make faster; measured in bench/rerank_latency.py); on GPU the CPUs reserved per replica."""
    if settings.torch_threads:
        return settings.torch_threads
    on_gpu = settings.device == "cuda" or (
        settings.device == "auto" and cluster_gpus > 0 and settings.backend == "torch"
    )
    if on_gpu:
        return max(1, int(settings.num_cpus_per_replica))
    # A multi-node cluster's CPUs are not one machine's: never more threads than this machine has.
    return max(1, min(int(cluster_cpus // settings.replicas), os.cpu_count() or 1))


def deployment_options(settings: RerankSettings, *, cluster_gpus: float) -> dict[str, Any]:
    """Ray Serve options for the deployment (pure; unit-tested): placement and backpressure as
    :func:`connector.services.wire.replica_options`, and ``replicas`` replicas.
    """
    options = replica_options(settings, name="RerankDeployment", cluster_gpus=cluster_gpus)
    options["num_replicas"] = settings.replicas
    return options


def build_app(
    settings: RerankSettings, *, cluster_gpus: float | None = None, cluster_cpus: float | None = None
) -> Application:
    """The rerank application, ready for ``serve.run(app, name=..., route_prefix=...)``.

    Args:
        settings: the model and serving options.
        cluster_gpus / cluster_cpus: GPUs / CPUs in the Ray cluster; default: asked from Ray when it is initialised.
    """
    resources = ray.cluster_resources() if ray.is_initialized() else {}  # type: ignore[no-untyped-call]
    if cluster_gpus is None:
        cluster_gpus = float(resources.get("GPU", 0))
    if cluster_cpus is None:
        cluster_cpus = float(resources.get("CPU", 1))
    threads = default_threads(settings, cluster_cpus=cluster_cpus, cluster_gpus=cluster_gpus)
    # The replicas learn their layout from the settings (/info and the startup line report it).
    settings = settings.model_copy(update={"torch_threads": threads})
    deployment: Any = RerankDeployment  # a serve Deployment once decorated
    app: Application = deployment.options(**deployment_options(settings, cluster_gpus=cluster_gpus)).bind(settings)
    return app
