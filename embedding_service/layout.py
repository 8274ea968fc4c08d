"""The replica layout of the embedding deployment: how many replicas, and the Ray Serve options that place them.

Pure (no Ray import), unit-tested; :func:`embedding_service.deployment.build_app` applies it.
"""

from __future__ import annotations

from typing import Any

from connector.services.wire import replica_options
from embedding_service.settings import EmbeddingServiceSettings

__all__ = ["default_replicas", "deployment_options"]

# With the default layout each CPU replica reserves this share of its num_cpus_per_replica, so an app composed
# into the same Ray (the search endpoint) can still be placed; its threads still match num_cpus_per_replica.
_AUTO_LAYOUT_CPU_SHARE = 0.9


def default_replicas(settings: EmbeddingServiceSettings, *, cluster_gpus: float, cluster_cpus: float) -> int:
    """The replica count when ``settings.replicas`` is None: one per GPU on GPU, else one per
    ``num_cpus_per_replica`` CPUs (bench/embed_throughput.py, interleaved over HTTP on 2 cores: two 1-thread
    replicas 12.2 and 31.0 docs/s against one 2-thread replica's 8.1 and 29.2).
    """
    if settings.replicas is not None:
        return settings.replicas
    on_gpu = settings.device == "cuda" or (settings.device == "auto" and cluster_gpus > 0)
    if on_gpu:
        return max(1, int(cluster_gpus // settings.num_gpus_per_replica))
    return max(1, int(cluster_cpus // max(settings.num_cpus_per_replica, 1.0)))


def deployment_options(
    settings: EmbeddingServiceSettings, *, cluster_gpus: float, cluster_cpus: float = 1.0
) -> dict[str, Any]:
    """Ray Serve options for the deployment (pure; unit-tested): placement and backpressure as
    :func:`connector.services.wire.replica_options`, plus autoscaling or a replica count
    (:func:`default_replicas` when the settings leave it unset).
    """
    options = replica_options(settings, name="EmbeddingDeployment", cluster_gpus=cluster_gpus)
    if settings.replicas is None and not settings.autoscaling and "num_gpus" not in options["ray_actor_options"]:
        options["ray_actor_options"]["num_cpus"] = settings.num_cpus_per_replica * _AUTO_LAYOUT_CPU_SHARE
    if settings.autoscaling:
        low = settings.autoscaling_min_replicas if settings.autoscaling_min_replicas is not None else 1
        high = settings.autoscaling_max_replicas or max(low, 1)
        options["autoscaling_config"] = {
            "min_replicas": low,
            "max_replicas": high,
            "target_ongoing_requests": settings.autoscaling_target_ongoing_requests,
        }
    else:
        options["num_replicas"] = default_replicas(settings, cluster_gpus=cluster_gpus, cluster_cpus=cluster_cpus)
    return options
