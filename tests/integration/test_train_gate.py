"""The gated model switch end to end (issue 27): train on the shop's judgments, re-embed into a shadow field
(0003 + backfill), compare on the held-out queries, switch (0004) only when the new model is not worse.

Tiny and seeded, for the CI budget: the catalogue (308 products, 30 queries), 64 tokens, one short epoch from the
bundled all-MiniLM-L6-v2, every model in this process (no Ray). The negative control is a model trained on
shuffled labels at a learning rate that wrecks it: the gate must refuse it and switch to the tuned one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.cluster.client import Cluster
from connector.jobs.backfill import BackfillConfig, run_backfill
from connector.quality.load import load_corpus, plain_index_body, read_beir
from connector.search import HybridSearch
from connector.train import FitSettings, shuffled_qrels, train_embedder
from connector.train.commands import default_base
from connector.train.data import corpus_texts
from connector.train.fit import LocalEmbedder, encode, load_embedder
from connector.train.gate import gated_switch
from mappings import VectorField
from migrations import MigrationSettings, Migrator
from tests.integration._jobs_helpers import job_settings, only_on

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CATALOGUE = Path(__file__).resolve().parents[2] / "examples" / "catalogue"
TEMPLATE = "{title}\n{text}"
TOKENS = 64
# Wider than the default 0.01: 9 held-out queries are a noisy sample; the wrecked model loses far more.
MARGIN = 0.05


def _shadow(cluster: Cluster, index: str, field: str, model_dir: Path, migrations: MigrationSettings) -> LocalEmbedder:
    embedder = LocalEmbedder(load_embedder(model_dir, max_length=TOKENS))
    params = {
        "new_vector_field": field,
        "new_dims": 384,
        "new_model_id": model_dir.name,
        "source_fields": "title,text",
        "template": TEMPLATE,
    }
    assert Migrator(cluster, index, params=params, settings=migrations).upgrade("0003") == ["0003"]
    config = BackfillConfig(
        index=index,
        fields=("title", "text"),
        template=TEMPLATE,
        vector_field=field,
        settings=job_settings(index),
        show_progress=False,
    )
    assert run_backfill(cluster, config, embedder=embedder, model_id=model_dir.name, dims=384).reconciles
    return embedder


@only_on("es9")
def test_the_gate_refuses_a_wrecked_model_and_switches_to_the_tuned_one(
    cluster: Cluster, index_name: str, tmp_path: Path
) -> None:
    dataset = read_beir(CATALOGUE)
    base = load_embedder(default_base(), max_length=TOKENS)
    old = LocalEmbedder(base)
    rows = corpus_texts(dataset.corpus_path)
    vectors = dict(zip(rows, encode(base, list(rows.values())).tolist()))
    vector = VectorField(dims=384, model_id="base", source_fields=("title", "text"), template=TEMPLATE)
    body = plain_index_body(cluster.capabilities, analyzer="standard", vector_fields=[vector])
    load_corpus(cluster, index_name, dataset.corpus_path, index_body=body, vectors=vectors)
    migrations = MigrationSettings(state_index=f"{index_name}-migrations")  # type: ignore[call-arg]
    Migrator(cluster, index_name, settings=migrations).stamp("0002")

    search = HybridSearch(cluster, index_name, embedder=old, embed_budget_s=None)
    tiny = {"epochs": 1.0, "batch_size": 8, "max_length": TOKENS, "seed": 13}
    common = {"depth": 10, "max_positives_per_query": 4, "score_heldout": False}
    wrecked = train_embedder(
        search,
        dataset,
        out=tmp_path / "wrecked",
        settings=FitSettings(**tiny, learning_rate=1e-3),  # type: ignore[arg-type]
        qrels=shuffled_qrels(dataset.qrels, seed=13),
        **common,  # type: ignore[arg-type]
    )
    tuned = train_embedder(
        search,
        dataset,
        out=tmp_path / "tuned",
        settings=FitSettings(**tiny),
        **common,  # type: ignore[arg-type]
    )
    assert tuned.card["split"]["heldout_queries"] == wrecked.card["split"]["heldout_queries"]

    bad = _shadow(cluster, index_name, "embedding_wrecked", wrecked.out, migrations)
    refused = gated_switch(
        cluster, index_name, dataset, old_embedder=old, new_embedder=bad, new_vector_field="embedding_wrecked",
        new_model=wrecked.out, margin=MARGIN, migration_settings=migrations,
    )  # fmt: skip
    assert not refused.accepted and not refused.switched, refused.to_json()
    assert refused.reason.startswith("refused: the new model loses")
    assert refused.queries == len(tuned.card["split"]["heldout_queries"])
    meta = cluster.get_mapping(index_name)["_meta"]["eshybrid"]
    assert meta["active_vector_field"] == "embedding"

    assert Migrator(cluster, index_name, settings=migrations).downgrade("0002") == ["0003"]
    good = _shadow(cluster, index_name, "embedding_tuned", tuned.out, migrations)
    accepted = gated_switch(
        cluster, index_name, dataset, old_embedder=old, new_embedder=good, new_vector_field="embedding_tuned",
        new_model=tuned.out, margin=MARGIN, migration_settings=migrations,
    )  # fmt: skip
    assert accepted.accepted and accepted.switched and accepted.applied == ["0004"], accepted.to_json()
    assert cluster.get_mapping(index_name)["_meta"]["eshybrid"]["active_vector_field"] == "embedding_tuned"
