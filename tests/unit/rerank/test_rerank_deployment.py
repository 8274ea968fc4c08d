"""Ray Serve options of the rerank deployment (pure: no Ray started)."""

from __future__ import annotations

import pytest

pytest.importorskip("ray")

from rerank.deployment import _Job, _pairs_in, deployment_options  # noqa: E402
from rerank.settings import RerankSettings  # noqa: E402


def test_cpu_options_and_backpressure() -> None:
    settings = RerankSettings(model="m", replicas=2, num_cpus_per_replica=0.5, max_queued_requests=7, retry_after_s=3.0)
    options = deployment_options(settings, cluster_gpus=0)
    assert options["num_replicas"] == 2
    assert options["ray_actor_options"] == {"num_cpus": 0.5}
    assert options["max_queued_requests"] == 7
    assert options["backpressure_config"] == {"status_code": 429, "retry_after_s": 3.0}


@pytest.mark.parametrize(
    ("device", "cluster_gpus", "gpus"),
    [
        ("auto", 0, None),
        ("auto", 1, 1.0),
        ("cpu", 4, None),
        ("cuda", 0, 1.0),
    ],
)
def test_gpu_only_when_asked_or_available(device: str, cluster_gpus: float, gpus: float | None) -> None:
    options = deployment_options(RerankSettings(model="m", device=device), cluster_gpus=cluster_gpus)
    assert options["ray_actor_options"].get("num_gpus") == gpus


def test_batches_are_counted_in_pairs() -> None:
    assert _pairs_in([_Job("q", ["a", "b"]), _Job("r", ["c"])]) == 3
