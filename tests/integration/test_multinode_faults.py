"""Faults across nodes: a three-node Elasticsearch losing a data node under a job or a search, a two-node Ray
losing its worker node mid-backfill (``-m multinode``; ``make test-multinode``).

Every job test asserts the counts: read = updated + skipped + dead letters, no document written twice (each
``_version`` is its creation plus one write of the job), every slice done.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from connector import connect
from connector.cluster.client import Cluster
from connector.jobs._ray import run_on_ray
from connector.jobs.backfill import run_backfill
from connector.jobs.reindex import ReindexConfig, run_reindex
from connector.jobs.settings import ClusterSpec
from connector.jobs.store import JobCounts, JobStore
from connector.localcluster import LocalCluster, start_node, stop_node
from connector.localcluster.state import read_state
from connector.search.hybrid import HybridSearch
from connector.services.embedding import EmbeddingClient
from tests.fixtures.embedding import free_port
from tests.fixtures.raycluster import LocalRay
from tests.integration._jobs_helpers import (
    TEMPLATE,
    TEXT_FIELDS,
    add_vector_field,
    backfill_config,
    check_vectors,
    committed_counts,
    create_products,
    job_settings,
    scan,
)

pytestmark = [pytest.mark.integration, pytest.mark.multinode]

# The node the tests take away: not node 0, whose HTTP port the tests' client uses.
VICTIM = 2


@pytest.fixture
def mn_cluster(multinode_es: LocalCluster) -> Iterator[Cluster]:
    with connect(multinode_es.url) as cluster:
        yield cluster


@pytest.fixture
def mn_index(mn_cluster: Cluster, multinode_es: LocalCluster) -> Iterator[str]:
    name = f"test-mn-{uuid.uuid4().hex}"
    yield name
    _restore(multinode_es)
    for index in mn_cluster.request("GET", f"/_cat/indices/{name}*", params={"format": "json", "h": "index"}).body:
        mn_cluster.request("DELETE", f"/{index['index']}", ignore=(404,))


@pytest.fixture(scope="module")
def mn_embedder(mn_embed_url: str) -> Iterator[EmbeddingClient]:
    with EmbeddingClient(mn_embed_url, timeout_s=120) as client:
        yield client


def _restore(cluster: LocalCluster) -> None:
    """Bring back a node a failed test left stopped (the state file has each node's current pid)."""
    current = read_state(Path(cluster.cluster_dir))
    assert current is not None, f"the state file of {cluster.name} is gone"
    for i, node in enumerate(current.nodes):
        try:
            os.killpg(node.pid, 0)
        except ProcessLookupError:
            start_node(cluster.name, i)
        except PermissionError:
            pass  # it runs, as the server user


def _in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - re-raised by the test
            result["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


def _wait_committed(store: JobStore, job_id: str, thread: threading.Thread, *, updated: int) -> JobCounts:
    deadline = time.monotonic() + 300
    counts = JobCounts()
    while time.monotonic() < deadline and thread.is_alive():
        counts = committed_counts(store, job_id)
        if counts.updated >= updated:
            return counts
        time.sleep(0.2)
    pytest.fail(f"the job never committed {updated} updates before the fault (had {counts})")


def _joined(thread: threading.Thread, result: dict[str, Any]) -> Any:
    thread.join(timeout=600)
    assert not thread.is_alive(), "the job did not end within 10 minutes"
    if "error" in result:
        raise result["error"]
    return result["value"]


def _versions(cluster: Cluster, index: str) -> dict[int, int]:
    """How many documents carry each ``_version``."""
    cluster.refresh(index)
    counts: dict[int, int] = {}
    for hit in scan(cluster, index, fields=["sku"]):
        counts[int(hit["_version"])] = counts.get(int(hit["_version"]), 0) + 1
    return counts


def _dead_letters(store: JobStore) -> int:
    if not store.cluster.index_exists(store.dead_letter_index):
        return 0
    store.cluster.refresh(store.dead_letter_index)
    return int(store.cluster.count(store.dead_letter_index))


def test_the_cluster_spreads_shards_and_replicas(mn_cluster: Cluster, mn_index: str) -> None:
    """``cluster up --nodes 3``: three nodes, and an index created without settings gets 3 shards + a replica."""
    assert mn_cluster.request("GET", "/_cluster/health").body["number_of_nodes"] == 3
    mn_cluster.create_index(mn_index, {})
    mn_cluster.request("GET", "/_cluster/health", params={"wait_for_status": "green", "timeout": "60s"})
    shards = mn_cluster.request("GET", f"/_cat/shards/{mn_index}", params={"format": "json"}).body
    assert len(shards) == 6 and {s["prirep"] for s in shards} == {"p", "r"}
    assert len({s["node"] for s in shards}) == 3


def test_backfill_while_a_data_node_restarts(
    mn_cluster: Cluster, mn_index: str, multinode_es: LocalCluster, mn_embedder: EmbeddingClient
) -> None:
    """A node holding shards (and the PIT's contexts on them) dies mid-scan and comes back: nothing lost or doubled."""
    n = 1500
    create_products(mn_cluster, mn_index, n, shards=3, replicas=1)
    model_id = mn_embedder.info().model_id
    add_vector_field(mn_cluster, mn_index, model_id)
    mn_cluster.request("GET", "/_cluster/health", params={"wait_for_status": "green", "timeout": "60s"})
    settings = job_settings(mn_index, page_size=100, max_backoff_s=2.0, bulk_max_retries=20)
    config = backfill_config(mn_index, slices=3, settings=settings, job_id=f"{mn_index}-job")
    store = JobStore(mn_cluster, jobs_index=settings.jobs_index, dead_letter_index=settings.dead_letter_index)
    thread, result = _in_thread(lambda: run_backfill(mn_cluster, config, embedder=mn_embedder))
    before = _wait_committed(store, config.job_id or "", thread, updated=300)
    stop_node(multinode_es.name, VICTIM, kill=True)
    start_node(multinode_es.name, VICTIM)
    summary = _joined(thread, result)
    assert before.updated < n, "the node died after the scan had ended"
    main, catch_up = summary.main, summary.catch_up
    dead = _dead_letters(store)
    assert main.read == main.updated + main.skipped + main.dead_lettered + main.vanished, main
    assert dead == main.dead_lettered + catch_up.dead_lettered == 0
    assert summary.reconciles
    assert _versions(mn_cluster, mn_index) == {2: n}  # created once, its vector written once
    check_vectors(mn_cluster, mn_index, mn_embedder, model_id, sample=20)


def test_reindex_with_alias_swap_while_a_data_node_restarts(
    mn_cluster: Cluster, mn_index: str, multinode_es: LocalCluster, mn_embedder: EmbeddingClient
) -> None:
    """The copy into ``<alias>-v1`` survives a node dying and coming back; the alias swaps to a complete copy."""
    n = 1500
    source = f"{mn_index}-src"
    create_products(mn_cluster, source, n, shards=3, replicas=1)
    mn_cluster.request("POST", "/_aliases", body={"actions": [{"add": {"index": source, "alias": mn_index}}]})
    settings = job_settings(mn_index, page_size=100, max_backoff_s=2.0, bulk_max_retries=20)
    config = ReindexConfig(
        alias=mn_index, fields=TEXT_FIELDS, template=TEMPLATE, slices=3, settings=settings, show_progress=False,
        job_id=f"{mn_index}-reindex",
    )  # fmt: skip
    store = JobStore(mn_cluster, jobs_index=settings.jobs_index, dead_letter_index=settings.dead_letter_index)
    thread, result = _in_thread(lambda: run_reindex(mn_cluster, config, embedder=mn_embedder))
    before = _wait_committed(store, config.job_id or "", thread, updated=300)
    stop_node(multinode_es.name, VICTIM, kill=True)
    start_node(multinode_es.name, VICTIM)
    summary = _joined(thread, result)
    assert before.updated < n, "the node died after the copy had ended"
    main = summary.main
    assert main.read == main.updated + main.skipped + main.dead_lettered + main.vanished, main
    assert _dead_letters(store) == 0 and summary.reconciles
    target = f"{mn_index}-v1"
    assert summary.target_index == target
    assert sorted(mn_cluster.request("GET", f"/_alias/{mn_index}").body) == [target]
    # Copies carry the source's _version (external versioning): a second write of a document would be refused,
    # so each target document is there once, at version 1, like its source.
    assert _versions(mn_cluster, target) == {1: n}
    check_vectors(mn_cluster, target, mn_embedder, mn_embedder.info().model_id, sample=20)


def test_backfill_while_shards_relocate(
    mn_cluster: Cluster, mn_index: str, multinode_es: LocalCluster, mn_embedder: EmbeddingClient
) -> None:
    """Every shard copy leaves a node mid-scan (allocation filtering): the PIT's contexts there go with them."""
    n = 1500
    create_products(mn_cluster, mn_index, n, shards=3, replicas=1)
    model_id = mn_embedder.info().model_id
    add_vector_field(mn_cluster, mn_index, model_id)
    mn_cluster.request("GET", "/_cluster/health", params={"wait_for_status": "green", "timeout": "60s"})
    victim = multinode_es.nodes[VICTIM].name
    held = mn_cluster.request("GET", f"/_cat/shards/{mn_index}", params={"format": "json"}).body
    assert any(s["node"] == victim for s in held), "the victim node holds no copy to move"
    settings = job_settings(mn_index, page_size=100, max_backoff_s=2.0)
    config = backfill_config(mn_index, slices=3, settings=settings, job_id=f"{mn_index}-job")
    store = JobStore(mn_cluster, jobs_index=settings.jobs_index, dead_letter_index=settings.dead_letter_index)
    thread, result = _in_thread(lambda: run_backfill(mn_cluster, config, embedder=mn_embedder))
    _wait_committed(store, config.job_id or "", thread, updated=300)
    exclude = {"index.routing.allocation.exclude._name": victim}
    mn_cluster.request("PUT", f"/{mn_index}/_settings", body=exclude)
    try:
        summary = _joined(thread, result)
        moved = mn_cluster.request("GET", f"/_cat/shards/{mn_index}", params={"format": "json"}).body
        assert all(s["node"] != victim for s in moved if s["state"] == "STARTED")
    finally:
        mn_cluster.request("PUT", f"/{mn_index}/_settings", body={"index.routing.allocation.exclude._name": None})
    main = summary.main
    assert main.read == main.updated + main.skipped + main.dead_lettered + main.vanished, main
    assert _dead_letters(store) == 0 and summary.reconciles
    assert _versions(mn_cluster, mn_index) == {2: n}
    check_vectors(mn_cluster, mn_index, mn_embedder, model_id, sample=20)


def test_backfill_when_its_point_in_time_expires_mid_scan(
    mn_cluster: Cluster, mn_index: str, mn_embedder: EmbeddingClient, caplog: pytest.LogCaptureFixture
) -> None:
    """The PIT's contexts vanish on every node mid-scan (what an expiry does): each slice starts over from a new
    one, and what it had written is skipped, not written again."""
    n = 1500
    create_products(mn_cluster, mn_index, n, shards=3, replicas=1)
    model_id = mn_embedder.info().model_id
    add_vector_field(mn_cluster, mn_index, model_id)
    settings = job_settings(mn_index, page_size=100)
    config = backfill_config(mn_index, slices=3, settings=settings, job_id=f"{mn_index}-job")
    store = JobStore(mn_cluster, jobs_index=settings.jobs_index, dead_letter_index=settings.dead_letter_index)
    thread, result = _in_thread(lambda: run_backfill(mn_cluster, config, embedder=mn_embedder))
    _wait_committed(store, config.job_id or "", thread, updated=300)
    pit_id = ((store.get_job(config.job_id or "") or {}).get("state") or {}).get("pit_id")
    assert pit_id, "the job document names no point in time"
    mn_cluster.request("DELETE", "/_pit", body={"id": pit_id})
    summary = _joined(thread, result)
    assert any("point in time is gone" in r.getMessage() for r in caplog.records), "no slice started over"
    main = summary.main  # a slice that starts over counts its documents afresh
    assert main.read == main.updated + main.skipped + main.dead_lettered + main.vanished, main
    assert _dead_letters(store) == 0 and summary.reconciles
    # Pages of the old PIT still in the pipeline write while the new scan reads the same documents: those writes
    # make the new reads stale (409 on their conditional write, re-read, skipped), never a second write.
    assert _versions(mn_cluster, mn_index) == {2: n}
    check_vectors(mn_cluster, mn_index, mn_embedder, model_id, sample=20)


def test_search_while_a_node_is_gone(mn_cluster: Cluster, mn_index: str, multinode_es: LocalCluster) -> None:
    """With a replica the answer is whole; without one, the answer says how many shards it lacks."""
    create_products(mn_cluster, mn_index, 300, shards=3, replicas=1)
    bare = f"{mn_index}-bare"
    nodes = [node.name for node in multinode_es.nodes]
    create_products(mn_cluster, bare, 300, shards=2, replicas=0)
    # One shard of the bare index on node 1, one on the victim.
    pin = {"index.routing.allocation.include._name": f"{nodes[1]},{nodes[VICTIM]}",
           "index.routing.allocation.total_shards_per_node": 1}  # fmt: skip
    mn_cluster.request("PUT", f"/{bare}/_settings", body=pin)
    mn_cluster.request("GET", "/_cluster/health", params={"wait_for_status": "green", "timeout": "60s",
                                                           "wait_for_no_relocating_shards": "true"})  # fmt: skip
    replicated, unreplicated = HybridSearch(mn_cluster, mn_index), HybridSearch(mn_cluster, bare)
    whole = replicated.search("running shoe", mode="bm25", size=50)
    assert whole.shards_failed == 0 and len(whole.ids) >= 20
    stop_node(multinode_es.name, VICTIM, kill=True)
    try:
        during = replicated.search("running shoe", mode="bm25", size=50)
        assert during.shards_failed == 0 and during.ids == whole.ids  # answered by the replicas
        half = unreplicated.search("running shoe", mode="bm25", size=50)
        assert half.shards_failed >= 1, "a partial answer must say so"  # one per request that lacked the shard
        assert half.model_dump()["shards_failed"] == half.shards_failed  # and the REST answer carries it
    finally:
        start_node(multinode_es.name, VICTIM)


def _node_of(_: int) -> str:
    """A Ray task's answer: the id of the node it ran on."""
    import ray

    time.sleep(0.5)  # long enough that the tasks overlap and the scheduler has to spread them
    return str(ray.get_runtime_context().get_node_id())


def test_ray_tasks_and_serve_replicas_land_on_both_nodes(ray_worker: LocalRay) -> None:
    """Slice tasks (``run_on_ray``, spread) and Serve replicas run on the head and on the worker node."""
    import ray
    from ray import serve

    nodes = ray_worker.node_ids()
    assert set(nodes) == {"head", "worker"}
    ran_on = run_on_ray(_node_of, {str(i): i for i in range(4)}, address=ray_worker.address, num_cpus=0.25)
    assert set(ran_on.values()) == set(nodes.values())

    @serve.deployment(num_replicas=2, max_replicas_per_node=1, ray_actor_options={"num_cpus": 0.01})
    class Where:
        def __call__(self) -> str:
            return str(ray.get_runtime_context().get_node_id())

    if not _serve_running():
        serve.start(http_options={"host": "127.0.0.1", "port": free_port()})
    handle = serve.run(Where.bind(), name="where", route_prefix=None)  # type: ignore[attr-defined]
    try:
        answered = {handle.remote().result(timeout_s=30) for _ in range(40)}
    finally:
        serve.delete("where")
    assert answered == set(nodes.values())


def _serve_running() -> bool:
    from ray import serve

    try:
        serve.status()
    except Exception:  # noqa: BLE001 - no Serve controller in this Ray
        return False
    return True


def test_a_ray_worker_node_killed_mid_backfill(
    mn_cluster: Cluster, mn_index: str, ray_worker: LocalRay, mn_embed_url: str, mn_embedder: EmbeddingClient
) -> None:
    """The worker node dies mid-backfill: the slices it ran are resubmitted once, from their checkpoints."""
    n = 1500
    create_products(mn_cluster, mn_index, n, shards=3, replicas=1)
    model_id = mn_embedder.info().model_id
    add_vector_field(mn_cluster, mn_index, model_id)
    settings = job_settings(mn_index, page_size=50, ray_task_cpus=0.25)
    job_id = f"{mn_index}-job"
    config = backfill_config(
        mn_index, slices=4, settings=settings, job_id=job_id, ray_address=ray_worker.address, embed_url=mn_embed_url
    )
    store = JobStore(mn_cluster, jobs_index=settings.jobs_index, dead_letter_index=settings.dead_letter_index)
    spec = ClusterSpec(url=mn_cluster.url)
    thread, result = _in_thread(lambda: run_backfill(mn_cluster, config, embedder=mn_embedder, cluster_spec=spec))
    before = _wait_committed(store, job_id, thread, updated=300)
    ray_worker.kill_worker()
    summary = _joined(thread, result)
    assert before.updated < n, "the worker died after the scan had ended"
    resubmitted = (store.get_job(job_id) or {}).get("ray_resubmitted") or []
    assert resubmitted, "no slice was lost with the worker node"
    assert len(resubmitted) == len(set(resubmitted)), f"a slice was resubmitted twice: {resubmitted}"
    main_checkpoints = [cp for cp in store.load_checkpoints(job_id).values() if cp.pass_name == "main"]
    assert len(main_checkpoints) == 4 and all(cp.done for cp in main_checkpoints)
    main = summary.main
    assert main.read == main.updated + main.skipped + main.dead_lettered + main.vanished, main
    assert _dead_letters(store) == 0 and summary.reconciles
    assert _versions(mn_cluster, mn_index) == {2: n}
    check_vectors(mn_cluster, mn_index, mn_embedder, model_id, sample=20)
