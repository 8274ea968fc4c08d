"""``eshybrid calibration-sample`` against real servers: a seeded sample of the index's texts, rendered exactly as
the backfill renders them (the fields and template the index ``_meta`` records), read back by the embedding
service's ``calibration_texts``."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.cluster.client import Cluster
from connector.jobs.calibration import calibration_sample
from embedding_service.backends import calibration_texts
from tests.integration._jobs_helpers import (
    add_vector_field,
    create_products,
    expected_text,
    only_on,
    product,
    run_cli,
)

pytestmark = [pytest.mark.integration]

N_DOCS = 120


@only_on("es9", "os3")
def test_calibration_sample_from_the_index(cluster: Cluster, index_name: str, tmp_path: Path) -> None:
    create_products(cluster, index_name, N_DOCS)
    add_vector_field(cluster, index_name, "sentence-transformers/all-MiniLM-L6-v2")  # _meta: fields and template
    rendered = {expected_text(product(i)) for i in range(N_DOCS)}
    env = {"ESHYBRID_URL": cluster.url}
    out = tmp_path / "calibration.jsonl"
    args = ["calibration-sample", "--index", index_name, "--size", "40", "--seed", "5"]
    finished = run_cli([*args, "--out", str(out)], env=env, timeout_s=120)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert f"wrote 40 texts of {index_name}" in finished.stdout
    texts = calibration_texts(str(out))
    assert len(texts) == 40 and len(set(texts)) == 40
    assert set(texts) <= rendered and all("\n" in t for t in texts)  # title + description, as the backfill embeds

    # The same seed draws the same sample; another seed another one; a whole index when asked for more.
    assert calibration_sample(cluster, index=index_name, size=40, seed=5) == texts
    assert calibration_sample(cluster, index=index_name, size=40, seed=6) != texts
    assert set(calibration_sample(cluster, index=index_name, size=500, seed=0)) == rendered

    plain = tmp_path / "calibration.txt"
    finished = run_cli([*args, "--out", str(plain)], env=env, timeout_s=120)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert calibration_texts(str(plain)) == [" ".join(t.split()) for t in texts]


@only_on("es9", "os3")
def test_an_index_without_recorded_fields_says_what_to_pass(cluster: Cluster, index_name: str, tmp_path: Path) -> None:
    create_products(cluster, index_name, 10)
    out = tmp_path / "calibration.jsonl"
    finished = run_cli(
        ["calibration-sample", "--index", index_name, "--out", str(out)],
        env={"ESHYBRID_URL": cluster.url},
        timeout_s=120,
    )
    assert finished.returncode == 2 and "pass --fields" in finished.stderr and not out.exists()
    finished = run_cli(
        ["calibration-sample", "--index", index_name, "--out", str(out), "--fields", "title", "--size", "5"],
        env={"ESHYBRID_URL": cluster.url},
        timeout_s=120,
    )
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert set(calibration_texts(str(out))) <= {product(i)["title"] for i in range(10)}
