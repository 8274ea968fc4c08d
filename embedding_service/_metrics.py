"""What one embedding replica counts: JSON counters for ``GET /metrics`` and Ray Serve (Prometheus) metrics."""

from __future__ import annotations

from dataclasses import dataclass

from ray.serve import metrics as serve_metrics

__all__ = ["ReplicaCounters", "ReplicaMetrics"]


@dataclass
class ReplicaCounters:
    """Per-replica counters served as JSON by ``GET /metrics`` (tests and humans read them)."""

    requests: int = 0
    rejected_requests: int = 0
    texts: int = 0
    batches: int = 0
    forward_passes: int = 0
    tokens: int = 0
    padded_tokens: int = 0
    inference_s: float = 0.0
    max_batch_size_seen: int = 0
    last_batch_size: int = 0
    last_batch_tokens: int = 0
    lean_queries: int = 0  # single queries embedded without a batch queue (deployment._embed_lean_query)


class ReplicaMetrics:
    """Ray Serve metrics (Prometheus through Ray's metrics agent) beside the JSON counters."""

    def __init__(self) -> None:
        self.pending_texts = serve_metrics.Gauge(
            "eshybrid_embed_pending_texts", description="Texts admitted and not yet answered."
        )
        self.batch_size = serve_metrics.Histogram(
            "eshybrid_embed_batch_size",
            description="Texts per batch.",
            boundaries=[1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
        )
        self.batch_tokens = serve_metrics.Histogram(
            "eshybrid_embed_batch_tokens",
            description="Real (unpadded) tokens per batch.",
            boundaries=[16, 64, 256, 1024, 4096, 16384, 65536, 262144],
        )
        self.inference_ms = serve_metrics.Histogram(
            "eshybrid_embed_batch_inference_ms",
            description="Forward-pass time per batch.",
            boundaries=[1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000],
        )
        self.texts = serve_metrics.Counter("eshybrid_embed_texts_total", description="Texts embedded.")
        self.rejected = serve_metrics.Counter(
            "eshybrid_embed_rejected_total", description="Requests refused with 429 by the replica."
        )
