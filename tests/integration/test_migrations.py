"""Migrations against the real servers: the upgrade path, the lock between two processes, takeover."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from connector.cluster.client import Cluster
from connector.errors import MigrationError, MigrationLockedError
from connector.jobs.backfill import BackfillConfig, run_backfill
from connector.jobs.reindex import ReindexConfig, run_reindex
from connector.services.embedding import EmbeddingClient
from migrations import MigrationLock, MigrationSettings, Migrator
from tests.integration._jobs_helpers import (
    MODEL_DIMS,
    REPO_ROOT,
    check_vectors,
    cli_env,
    create_products,
    job_settings,
    only_on,
)

pytestmark = [pytest.mark.integration]


def _settings(index_name: str, **overrides: object) -> MigrationSettings:
    return MigrationSettings(state_index=f"{index_name}-migrations", **overrides)  # type: ignore[arg-type]


def _meta(cluster: Cluster, index: str) -> dict[str, object]:
    return dict(cluster.get_mapping(index)["_meta"]["eshybrid"])


def _backfill(cluster: Cluster, index: str, embedder: EmbeddingClient, vector_field: str) -> None:
    config = BackfillConfig(
        index=index,
        fields=("title", "description"),
        template="{title}\n{description}",
        vector_field=vector_field,
        settings=job_settings(index),
        show_progress=False,
    )
    assert run_backfill(cluster, config, embedder=embedder).reconciles


@pytest.mark.ray
def test_upgrade_path(cluster: Cluster, index_name: str, embed_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Add the field, move behind an alias, backfill, change model (new field, switch, drop), downgrade."""
    # The copy made by 0002 records its job in job indices named after the test index (cleaned up with it).
    monkeypatch.setenv("ESHYBRID_JOB_JOBS_INDEX", f"{index_name}-jobs")
    monkeypatch.setenv("ESHYBRID_JOB_DEAD_LETTER_INDEX", f"{index_name}-dead")
    create_products(cluster, index_name, 120)
    with EmbeddingClient(embed_url, timeout_s=120) as embedder:
        info = embedder.info()
        params = {
            "dims": info.dims,
            "model_id": info.model_id,
            "source_fields": "title,description",
            "template": "{title}\n{description}",
        }
        migrator = Migrator(cluster, index_name, params=params, settings=_settings(index_name))
        assert migrator.status().pending == ["0001", "0002", "0003", "0004", "0005", "0006"]
        plan = migrator.plan("head")
        assert [s.missing_params for s in plan][2:] == [
            ("new_vector_field", "new_dims", "new_model_id"),
            ("new_vector_field",),
            ("drop_vector_field",),
            (),
        ]

        assert migrator.upgrade("0001") == ["0001"]
        meta = _meta(cluster, index_name)
        assert meta["vector_fields"]["embedding"]["dims"] == info.dims  # type: ignore[index]
        assert meta["migrations"] == {"current": "0001"}
        assert migrator.upgrade("0001") == []  # idempotent

        assert migrator.upgrade("0002") == ["0002"]
        assert sorted(cluster.request("GET", f"/_alias/{index_name}").body) == [f"{index_name}-v1"]
        assert cluster.count(index_name) == 120
        _backfill(cluster, index_name, embedder, "embedding")

        change = Migrator(
            cluster,
            index_name,
            params={**params, "new_vector_field": "embedding_v2", "new_dims": info.dims, "new_model_id": info.model_id},
            settings=_settings(index_name),
        )
        assert change.upgrade("0003") == ["0003"]
        with pytest.raises(MigrationError, match="backfill"):
            change.upgrade("0004")  # the new field is still empty
        _backfill(cluster, index_name, embedder, "embedding_v2")
        assert change.upgrade("0004") == ["0004"]
        assert _meta(cluster, index_name)["active_vector_field"] == "embedding_v2"

        drop = Migrator(cluster, index_name, params={"drop_vector_field": "embedding"}, settings=_settings(index_name))
        assert drop.upgrade("0005") == ["0005"]
        cluster.refresh(index_name)
        assert cluster.count(index_name, {"exists": {"field": "eshybrid_meta.embedding.text_hash"}}) == 0
        assert cluster.count(index_name, {"exists": {"field": "embedding"}}) == 0
        check_vectors(cluster, index_name, embedder, info.model_id, sample=10, vector_field="embedding_v2")
        meta = _meta(cluster, index_name)
        assert list(meta["vector_fields"]) == ["embedding_v2"]  # type: ignore[arg-type]
        assert meta["retired_vector_fields"]["embedding"]["status"] == "dropped"  # type: ignore[index]

        passages = Migrator(
            cluster, index_name, params={**params, "passage_tokens": 128}, settings=_settings(index_name)
        )
        assert passages.upgrade() == ["0006"]
        mapping = cluster.request("GET", f"/{index_name}/_mapping").body
        [props] = [m["mappings"]["properties"] for m in mapping.values()]
        assert props["passages"]["type"] == "nested" and "vector" in props["passages"]["properties"]
        cut = _meta(cluster, index_name)["passage_fields"]["passages"]["cut"]  # type: ignore[index]
        assert cut["max_tokens"] == 128 and cut["overlap_sentences"] == 1

        assert drop.downgrade("0003") == ["0006", "0005", "0004"]
        meta = _meta(cluster, index_name)
        assert meta["active_vector_field"] == "embedding" and meta["migrations"] == {"current": "0003"}
        status = drop.status()
        assert status.current == "0003" and [h["direction"] for h in status.history][-2:] == ["down", "down"]


def _slow_revision(folder: Path, index: str) -> None:
    (folder / "a1_count.py").write_text(f'''"""Count how many times it runs, slowly."""
import time
revision = "a1"
down_revision = None

def upgrade(ctx):
    ctx.cluster.request("POST", "/{index}/_update/counter", params={{"refresh": "true"}},
                        body={{"script": {{"source": "ctx._source.n += 1"}}, "upsert": {{"n": 1}}}})
    time.sleep(4)

def downgrade(ctx):
    pass
''')


def _two_runners(cluster: Cluster, index: str, folder: Path, *extra: str) -> list[subprocess.CompletedProcess[str]]:
    env = cli_env({"ESHYBRID_URL": cluster.url, "ESHYBRID_MIGRATE_STATE_INDEX": f"{index}-migrations"})
    args = [
        sys.executable,
        "-m",
        "connector.cli",
        "migrate",
        "up",
        "--index",
        index,
        "--versions-dir",
        str(folder),
        "--json",
        *extra,
    ]
    procs = [
        subprocess.Popen(args, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(args, proc.returncode, out, err))
    return results


@pytest.mark.parametrize(
    "cluster_url",
    [pytest.param("es9", marks=pytest.mark.es9, id="es9"), pytest.param("os2", marks=pytest.mark.os2, id="os2")],
    indirect=True,
)
def test_two_runners_started_together_apply_once(cluster: Cluster, index_name: str, tmp_path: Path) -> None:
    create_products(cluster, index_name, 1)
    _slow_revision(tmp_path, index_name)
    results = _two_runners(cluster, index_name, tmp_path)
    ok = [r for r in results if r.returncode == 0]
    refused = [r for r in results if r.returncode != 0]
    assert len(ok) == 1 and len(refused) == 1, [(r.returncode, r.stderr[-500:]) for r in results]
    assert json.loads(ok[0].stdout.strip().splitlines()[-1]) == {"applied": ["a1"]}
    assert "is being migrated by" in refused[0].stderr and "--lock-wait" in refused[0].stderr
    counter = cluster.request("GET", f"/{index_name}/_doc/counter").body["_source"]["n"]
    assert counter == 1


@pytest.mark.parametrize("cluster_url", [pytest.param("os3", marks=pytest.mark.os3, id="os3")], indirect=True)
def test_a_waiting_runner_finds_nothing_left_to_do(cluster: Cluster, index_name: str, tmp_path: Path) -> None:
    create_products(cluster, index_name, 1)
    _slow_revision(tmp_path, index_name)
    results = _two_runners(cluster, index_name, tmp_path, "--lock-wait", "60")
    assert all(r.returncode == 0 for r in results), [r.stderr[-500:] for r in results]
    applied = sorted(json.loads(r.stdout.strip().splitlines()[-1])["applied"] for r in results)
    assert applied == [[], ["a1"]]
    assert cluster.request("GET", f"/{index_name}/_doc/counter").body["_source"]["n"] == 1


@pytest.mark.parametrize("cluster_url", [pytest.param("es8", marks=pytest.mark.es8, id="es8")], indirect=True)
def test_a_dead_runners_lock_is_taken_over(cluster: Cluster, index_name: str, tmp_path: Path) -> None:
    create_products(cluster, index_name, 1)
    _slow_revision(tmp_path, index_name)
    settings = _settings(index_name, versions_dir=str(tmp_path), lock_ttl_s=2.0)
    migrator = Migrator(cluster, index_name, settings=settings)
    migrator.store.ensure_index()
    live = MigrationLock(cluster, index_name, owner="other-host:42", ttl_s=60, index=settings.state_index)
    live.acquire()
    try:
        with pytest.raises(MigrationLockedError, match="other-host:42") as err:
            migrator.upgrade()
        assert err.value.owner == "other-host:42"
    finally:
        live.release()
    # A runner that died: its lock expired and nobody renews it.
    dead = MigrationLock(cluster, index_name, owner="dead-host:7", ttl_s=1, index=settings.state_index)
    dead.acquire()
    dead._stop.set()  # simulate the process dying: no more heartbeats, no release
    time.sleep(1.5)
    assert migrator.upgrade() == ["a1"]
    assert MigrationLock(cluster, index_name, owner="x", index=settings.state_index).holder() is None


def _field_params() -> dict[str, object]:
    """Parameters of 0001/0002 without an embedding service (nothing is embedded by them)."""
    return {"dims": MODEL_DIMS, "model_id": "test/model", "source_fields": "title,description"}


@only_on("es9", "os2")
def test_state_belongs_to_the_index_not_its_name(cluster: Cluster, index_name: str) -> None:
    """``make demo`` twice: the index is deleted and created again; ``migrate up`` applies 0001 again."""
    create_products(cluster, index_name, 5)
    migrator = Migrator(cluster, index_name, params=_field_params(), settings=_settings(index_name))
    assert migrator.upgrade("0001") == ["0001"]
    assert migrator.status().current == "0001"

    cluster.delete_index(index_name)
    create_products(cluster, index_name, 5)
    assert migrator.current() is None
    assert migrator.status().pending[0] == "0001"
    assert migrator.upgrade("0001") == ["0001"]
    assert _meta(cluster, index_name)["migrations"] == {"current": "0001"}
    assert "embedding" in cluster.get_mapping(index_name)["properties"]
    history = migrator.status().history
    assert [h["revision"] for h in history] == ["0001", "0001"]
    assert history[0]["index_uuid"] != history[1]["index_uuid"]


@only_on("es8", "os3")
def test_state_follows_the_index_behind_an_alias(
    cluster: Cluster, index_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """0002 and a later reindex copy the index (new UUIDs): the state goes with the copy, then with its deletion."""
    monkeypatch.setenv("ESHYBRID_JOB_JOBS_INDEX", f"{index_name}-jobs")
    monkeypatch.setenv("ESHYBRID_JOB_DEAD_LETTER_INDEX", f"{index_name}-dead")
    create_products(cluster, index_name, 20)
    migrator = Migrator(cluster, index_name, params=_field_params(), settings=_settings(index_name))
    assert migrator.upgrade("0002") == ["0001", "0002"]
    assert sorted(cluster.request("GET", f"/_alias/{index_name}").body) == [f"{index_name}-v1"]
    assert migrator.current() == "0002"
    assert _meta(cluster, f"{index_name}-v1")["migrations"] == {"current": "0002"}

    # `eshybrid reindex` behind the alias: NAME -> NAME-v2, the _meta (and so the state) is copied.
    config = ReindexConfig(alias=index_name, copy_only=True, settings=job_settings(index_name), show_progress=False)
    assert run_reindex(cluster, config).target_index == f"{index_name}-v2"
    assert migrator.current() == "0002"
    assert migrator.upgrade("0002") == []

    cluster.delete_index(f"{index_name}-v1")
    cluster.delete_index(f"{index_name}-v2")  # the alias goes with it
    create_products(cluster, index_name, 3)
    assert migrator.current() is None
    assert migrator.upgrade("0001") == ["0001"]
    with pytest.raises(MigrationError, match="no such index"):
        Migrator(cluster, f"{index_name}-absent", settings=_settings(index_name)).stamp("0001")
