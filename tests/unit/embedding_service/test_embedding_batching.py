"""Batch planning, pooling, precision choice, Ray options and the forward scheduler (no Ray started)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import torch

from embedding_service._scheduler import PRIORITY_DOCUMENT, PRIORITY_QUERY, ForwardScheduler
from embedding_service.errors import ModelLoadError
from embedding_service.model import plan_batches, pool, resolve_precision
from embedding_service.settings import EmbeddingServiceSettings


def test_plan_batches_sorts_by_length_and_respects_the_budget() -> None:
    lengths = [5, 100, 7, 60, 100, 3, 64, 8]
    groups = plan_batches(lengths, max_rows=3, max_batch_tokens=200)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    for group in groups:
        assert len(group) <= 3
        assert len(group) * max(lengths[i] for i in group) <= 200
        assert [lengths[i] for i in group] == sorted((lengths[i] for i in group), reverse=True)
    firsts = [lengths[g[0]] for g in groups]
    assert firsts == sorted(firsts, reverse=True)


def test_plan_batches_gives_an_overlong_row_a_pass_of_its_own() -> None:
    assert plan_batches([500, 10, 10], max_rows=8, max_batch_tokens=100) == [[0], [1, 2]]
    assert plan_batches([], max_rows=8, max_batch_tokens=100) == []


def _padded(rows: list[list[list[float]]], *, left: bool) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    hidden = torch.zeros(len(rows), width, 2)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, row in enumerate(rows):
        span = slice(width - len(row), width) if left else slice(0, len(row))
        hidden[i, span] = torch.tensor(row)
        mask[i, span] = 1
    return hidden, mask


@pytest.mark.parametrize("left", [False, True])
def test_pooling_ignores_padding_on_either_side(left: bool) -> None:
    rows = [[[1.0, 2.0], [3.0, 4.0], [5.0, 0.0]], [[2.0, -2.0]]]
    hidden, mask = _padded(rows, left=left)
    assert pool(hidden, mask, "mean").tolist() == [[3.0, 2.0], [2.0, -2.0]]
    assert pool(hidden, mask, "cls").tolist() == [[1.0, 2.0], [2.0, -2.0]]
    assert pool(hidden, mask, "lasttoken").tolist() == [[5.0, 0.0], [2.0, -2.0]]
    assert pool(hidden, mask, "max").tolist() == [[5.0, 4.0], [2.0, -2.0]]
    sqrt = pool(hidden, mask, "mean_sqrt_len")
    assert torch.allclose(sqrt[0], torch.tensor([9.0, 6.0]) / 3**0.5)


@pytest.mark.parametrize(
    ("device", "dtype", "cuda", "bf16", "expected"),
    [
        ("auto", "auto", False, False, ("cpu", "float32")),
        ("auto", "auto", True, True, ("cuda", "bfloat16")),
        ("auto", "auto", True, False, ("cuda", "float16")),
        ("cpu", "auto", True, True, ("cpu", "float32")),
        ("cuda", "float32", True, True, ("cuda", "float32")),
        ("auto", "bfloat16", False, False, ("cpu", "bfloat16")),
    ],
)
def test_precision_choice(device: str, dtype: str, cuda: bool, bf16: bool, expected: tuple[str, str]) -> None:
    assert resolve_precision(device, dtype, cuda_available=cuda, bf16_supported=bf16) == expected  # type: ignore[arg-type]


def test_cuda_without_a_gpu_is_a_clear_error() -> None:
    with pytest.raises(ModelLoadError, match="no GPU"):
        resolve_precision("cuda", "auto", cuda_available=False, bf16_supported=False)


def test_deployment_options_cpu_gpu_and_autoscaling() -> None:
    from embedding_service.deployment import deployment_options

    cpu = deployment_options(EmbeddingServiceSettings(replicas=2, num_cpus_per_replica=1), cluster_gpus=0)
    assert cpu["num_replicas"] == 2
    assert cpu["ray_actor_options"] == {"num_cpus": 1}
    assert cpu["backpressure_config"] == {"status_code": 429, "retry_after_s": 1.0}
    auto_gpu = deployment_options(EmbeddingServiceSettings(), cluster_gpus=4)
    assert auto_gpu["ray_actor_options"]["num_gpus"] == 1.0
    forced_cpu = deployment_options(EmbeddingServiceSettings(device="cpu"), cluster_gpus=4)
    assert "num_gpus" not in forced_cpu["ray_actor_options"]
    scaled = deployment_options(
        EmbeddingServiceSettings(
            autoscaling_min_replicas=1, autoscaling_max_replicas=8, device="cuda", num_gpus_per_replica=0.5
        ),
        cluster_gpus=0,
    )
    assert "num_replicas" not in scaled
    assert scaled["autoscaling_config"]["max_replicas"] == 8
    assert scaled["ray_actor_options"]["num_gpus"] == 0.5


def test_default_layout_uses_the_machine() -> None:
    from embedding_service.deployment import default_replicas, deployment_options

    cpu = deployment_options(EmbeddingServiceSettings(device="cpu"), cluster_gpus=0, cluster_cpus=2)
    # One 1-thread replica per core; each reserves a little under a CPU so a composed app still fits.
    assert cpu["num_replicas"] == 2 and cpu["ray_actor_options"]["num_cpus"] == pytest.approx(0.9)
    wide = EmbeddingServiceSettings(num_cpus_per_replica=2)
    assert default_replicas(wide, cluster_gpus=0, cluster_cpus=8) == 4
    assert default_replicas(EmbeddingServiceSettings(), cluster_gpus=4, cluster_cpus=32) == 4
    assert default_replicas(EmbeddingServiceSettings(), cluster_gpus=0, cluster_cpus=0.5) == 1
    fixed = deployment_options(EmbeddingServiceSettings(replicas=3), cluster_gpus=0, cluster_cpus=2)
    assert fixed["num_replicas"] == 3 and fixed["ray_actor_options"]["num_cpus"] == 1.0


def test_scheduler_runs_queries_before_waiting_documents() -> None:
    order: list[str] = []
    gate = threading.Event()

    def job(name: str, block: bool = False) -> str:
        if block:
            gate.wait(5)
        order.append(name)
        return name

    async def scenario() -> list[str]:
        scheduler = ForwardScheduler(pipeline_depth=1)
        first = asyncio.ensure_future(scheduler.run(lambda: job("doc-0", True), priority=PRIORITY_DOCUMENT))
        await asyncio.sleep(0.05)  # doc-0 now occupies the thread
        docs = [
            asyncio.ensure_future(scheduler.run(lambda n=n: job(f"doc-{n}"), priority=PRIORITY_DOCUMENT))
            for n in (1, 2)
        ]
        query = asyncio.ensure_future(scheduler.run(lambda: job("query"), priority=PRIORITY_QUERY))
        await asyncio.sleep(0.05)
        gate.set()
        results = await asyncio.gather(first, *docs, query)
        scheduler.close()
        return list(results)

    assert asyncio.run(scenario()) == ["doc-0", "doc-1", "doc-2", "query"]
    assert order == ["doc-0", "query", "doc-1", "doc-2"]


def test_scheduler_passes_errors_to_the_caller_and_keeps_working() -> None:
    def boom() -> None:
        raise RuntimeError("forward failed")

    async def scenario() -> float:
        scheduler = ForwardScheduler()
        with pytest.raises(RuntimeError, match="forward failed"):
            await scheduler.run(boom, priority=PRIORITY_DOCUMENT)
        started = time.perf_counter()
        assert await scheduler.run(lambda: 42, priority=PRIORITY_QUERY) == 42
        scheduler.close()
        return time.perf_counter() - started

    assert asyncio.run(scenario()) < 1.0


def test_only_a_lone_short_query_takes_the_lean_path() -> None:
    from embedding_service.deployment import LEAN_QUERY_MAX_CHARS, takes_lean_path

    assert takes_lean_path("query", ["red shoes"], queries_in_flight=0)
    assert not takes_lean_path("query", ["red shoes"], queries_in_flight=1)  # concurrent queries batch together
    assert not takes_lean_path("query", ["red shoes", "blue shoes"], queries_in_flight=0)
    assert not takes_lean_path("document", ["red shoes"], queries_in_flight=0)
    assert not takes_lean_path("query", ["x" * (LEAN_QUERY_MAX_CHARS + 1)], queries_in_flight=0)
