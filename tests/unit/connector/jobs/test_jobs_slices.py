"""Slices as tasks: what backfill and reindex hand the generic Ray executor (no Ray, no network here).

tests/integration/test_backfill_ray.py runs both jobs' slices on a real Ray.
"""

from __future__ import annotations

import ast
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from connector.cluster.capabilities import Capabilities
from connector.errors import ConfigError, JobError
from connector.jobs import runner as runner_module
from connector.jobs.backfill import BackfillConfig, BackfillJob, InPlaceMode
from connector.jobs.reindex import CopyMode, ReindexConfig, ReindexJob
from connector.jobs.runner import JobRunner, ScanState
from connector.jobs.settings import ClusterSpec
from connector.jobs.slices import SliceTask, run_slice_task
from connector.jobs.store import SliceCheckpoint


class StillCluster:
    """Just enough of a cluster for a job object: capabilities and an empty jobs index."""

    url = "http://127.0.0.1:1"
    capabilities = Capabilities.from_version("elasticsearch", "9.1.0")

    def refresh(self, index: str) -> None:
        pass

    def search(self, index: str, body: Any) -> dict[str, Any]:
        return {"hits": {"hits": []}}


class NoEmbedder:
    def embed_documents(self, texts: Any) -> list[list[float]]:
        raise AssertionError("nothing is embedded here")


@pytest.fixture
def submitted(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """What the job hands ``run_on_ray`` (nothing is run)."""
    calls: list[dict[str, Any]] = []

    def fake_run_on_ray(fn: Any, tasks: dict[str, Any], **options: Any) -> dict[str, Any]:
        calls.append({"fn": fn, "tasks": tasks, **options})
        return {}

    monkeypatch.setattr(runner_module, "run_on_ray", fake_run_on_ray)
    return calls


def _start(job: JobRunner, slices: int) -> list[SliceCheckpoint]:
    job.job_id = "job-1"
    job.state = ScanState(scan_index="shop-v1", pit_id="PIT", high_water={0: 5})
    return job.main_checkpoints()[:slices]


def _backfill_job(**config: Any) -> BackfillJob:
    cfg = BackfillConfig(index="shop", fields=("title",), slices=2, embed_url="http://embed", **config)
    return BackfillJob(
        StillCluster(),  # type: ignore[arg-type]
        cfg,
        embedder=NoEmbedder(),
        model_id="m",
        dims=4,
        cluster_spec=ClusterSpec(url="http://127.0.0.1:1"),
    )


def test_backfill_slices_go_to_ray_as_picklable_tasks(submitted: list[dict[str, Any]]) -> None:
    job = _backfill_job(ray_address="auto")
    job.run_main_slices(_start(job, 2))
    [call] = submitted
    assert call["fn"] is run_slice_task and call["address"] == "auto"
    assert sorted(call["tasks"]) == ["main-0", "main-1"]
    task: SliceTask = pickle.loads(pickle.dumps(call["tasks"]["main-1"]))
    assert (task.embed_url, task.scan_index, task.pit_id, task.dims) == ("http://embed", "shop-v1", "PIT", 4)
    assert task.checkpoint.key == "main-1" and task.checkpoint.slice_id == 1
    mode = task.make_mode(StillCluster())  # type: ignore[arg-type]
    assert isinstance(mode, InPlaceMode)
    assert (mode.job_id, mode.vector_field, mode.model_id) == ("job-1", "embedding", "m")
    assert mode.source_includes == ["title", "eshybrid_meta.embedding"]


def test_a_copy_only_reindex_goes_to_ray_without_an_embedding_service(submitted: list[dict[str, Any]]) -> None:
    config = ReindexConfig(alias="shop", copy_only=True, slices=3, ray_address="ray://head:10001")
    job = ReindexJob(
        StillCluster(),  # type: ignore[arg-type]
        config,
        embedder=None,
        model_id=None,
        dims=None,
        cluster_spec=ClusterSpec(url="http://127.0.0.1:1"),
    )
    todo = _start(job, 3)
    assert job.state is not None
    job.state.extra["target"] = "shop-v2"
    job.run_main_slices(todo)
    task: SliceTask = pickle.loads(pickle.dumps(submitted[0]["tasks"]["main-2"]))
    assert task.embed_url is None
    mode = task.make_mode(StillCluster())  # type: ignore[arg-type]
    assert isinstance(mode, CopyMode) and (mode.target_index, mode.policy) == ("shop-v2", None)


def test_ray_needs_a_cluster_spec_and_an_embedding_url(submitted: list[dict[str, Any]]) -> None:
    with pytest.raises(ConfigError, match="--embed-url"):
        ReindexConfig(alias="shop", fields=("title",), ray_address="auto")
    job = _backfill_job(ray_address="auto")
    job.cluster_spec = None
    with pytest.raises(ConfigError, match="cluster spec"):
        job.run_main_slices(_start(job, 1))
    assert submitted == []


def test_failed_tasks_say_how_to_resume(monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(fn: Any, tasks: dict[str, Any], **options: Any) -> dict[str, Any]:
        raise JobError("1 Ray task(s) failed: main-0: boom")

    monkeypatch.setattr(runner_module, "run_on_ray", failing)
    job = _backfill_job(ray_address="auto")
    with pytest.raises(
        JobError, match=r"backfill job-1: 1 Ray task\(s\) failed: main-0: boom \(resume with --resume\)"
    ):
        job.run_main_slices(_start(job, 1))


def test_without_ray_address_the_slices_run_here(monkeypatch: pytest.MonkeyPatch) -> None:
    ran: list[list[str]] = []
    monkeypatch.setattr(
        JobRunner, "run_sources", lambda self, cps, sources, label, total=None: ran.append([c.key for c in cps])
    )
    monkeypatch.setattr(StillCluster, "count", lambda self, index: 0, raising=False)
    monkeypatch.setattr(runner_module, "run_on_ray", lambda *a, **k: pytest.fail("Ray used without ray_address"))
    job = _backfill_job()
    job.run_main_slices(_start(job, 2))
    assert ran == [["main-0", "main-1"]]


def _imported_modules(module: Any) -> set[str]:
    tree = ast.parse(Path(module.__file__).read_text())
    found = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    return found | {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}


def test_the_executor_knows_no_job_kind_and_imports_ray_only_when_it_runs() -> None:
    from connector.jobs import _ray, slices

    for module in (_ray, slices):
        assert not {
            m for m in _imported_modules(module) if m.startswith(("connector.jobs.backfill", "connector.jobs.reindex"))
        }
    code = "import sys, connector.jobs; sys.exit(1 if 'ray' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def _ray_rounds(monkeypatch: pytest.MonkeyPatch, outcomes: list[JobError | None]) -> list[list[str]]:
    """``run_on_ray`` answering each call with the next outcome (an error to raise, or success)."""
    rounds: list[list[str]] = []

    def fake(fn: Any, tasks: dict[str, Any], **options: Any) -> dict[str, Any]:
        rounds.append(sorted(tasks))
        outcome = outcomes[len(rounds) - 1]
        if outcome is not None:
            raise outcome
        return {}

    monkeypatch.setattr(runner_module, "run_on_ray", fake)
    return rounds


def _lost(*keys: str) -> JobError:
    return JobError("lost", failures=[f"{k}: node died" for k in keys], lost=list(keys))


def test_slices_lost_with_their_node_are_resubmitted_once_from_their_checkpoints(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rounds = _ray_rounds(monkeypatch, [_lost("main-1"), None])
    job = _backfill_job(ray_address="auto")
    saved: list[dict[str, Any]] = []
    monkeypatch.setattr(job, "save_state", lambda **changes: saved.append(changes))
    job.run_main_slices(_start(job, 2))
    assert rounds == [["main-0", "main-1"], ["main-1"]]
    assert job.ray_resubmitted == ["main-1"] and saved == [{"ray_resubmitted": ["main-1"]}]


def test_a_slice_lost_again_or_an_error_of_its_own_fails_the_job(monkeypatch: pytest.MonkeyPatch) -> None:
    rounds = _ray_rounds(monkeypatch, [_lost("main-0"), _lost("main-0")])
    job = _backfill_job(ray_address="auto")
    monkeypatch.setattr(job, "save_state", lambda **changes: None)
    with pytest.raises(JobError, match="resume with --resume") as err:
        job.run_main_slices(_start(job, 2))
    assert rounds == [["main-0", "main-1"], ["main-0"]] and err.value.lost == ["main-0"]

    mixed = JobError("2 failed", failures=["main-0: node died", "main-1: ValueError"], lost=["main-0"])
    rounds = _ray_rounds(monkeypatch, [mixed])
    job = _backfill_job(ray_address="auto")
    with pytest.raises(JobError, match="resume with --resume"):
        job.run_main_slices(_start(job, 2))
    assert rounds == [["main-0", "main-1"]] and job.ray_resubmitted == []
