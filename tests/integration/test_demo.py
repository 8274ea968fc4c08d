"""The ``make demo`` flow end to end (``python -m connector.demo up`` / ``down``) on a small
catalogue, against a real Elasticsearch and the real embedding service, so it cannot silently break."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.ray, pytest.mark.es9]

REPO = Path(__file__).resolve().parents[2]


def _small_catalogue(folder: Path, *, docs: int = 60) -> Path:
    source = REPO / "examples" / "catalogue"
    (folder / "qrels").mkdir(parents=True)
    lines = (source / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    # every 5th product: all kinds are represented
    kept = [line for i, line in enumerate(lines) if i % 5 == 0][:docs]
    (folder / "corpus.jsonl").write_text("\n".join(kept) + "\n", encoding="utf-8")
    ids = {json.loads(line)["_id"] for line in kept}
    (folder / "queries.jsonl").write_text((source / "queries.jsonl").read_text(encoding="utf-8"), encoding="utf-8")
    qrels = (source / "qrels" / "test.tsv").read_text(encoding="utf-8").splitlines()
    (folder / "qrels" / "test.tsv").write_text(
        "\n".join([qrels[0], *[q for q in qrels[1:] if q.split("\t")[1] in ids]]) + "\n", encoding="utf-8"
    )
    return folder


def test_demo_runs_start_to_finish(es9_url: str, embed_url: str, tmp_path: Path, index_name: str) -> None:
    env = {
        **os.environ,
        "ESHYBRID_URL": es9_url,
        "ESHYBRID_EMBED_URL": embed_url,
        "DATASET": str(_small_catalogue(tmp_path / "catalogue")),
        "ESHYBRID_DEMO_INDEX": index_name,
        "ESHYBRID_HOME": str(tmp_path / "home"),
    }
    up = subprocess.run(
        [sys.executable, "-m", "connector.demo", "up"], cwd=REPO, env=env, text=True, capture_output=True, timeout=600
    )
    assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
    out = up.stdout
    for expected in (
        "eshybrid load",
        "eshybrid migrate up",
        "eshybrid backfill",
        "reconciles",
        "hybrid fused with ",
        "lex.rank",
        f"GET {index_name}/_msearch",
        "make demo-down",
    ):
        assert expected in out, f"{expected!r} missing from the demo output"
    down = subprocess.run(
        [sys.executable, "-m", "connector.demo", "down"], cwd=REPO, env=env, text=True, capture_output=True, timeout=120
    )
    assert down.returncode == 0, down.stderr
