"""The BEIR writer writes what the reader reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.errors import ConfigError
from connector.quality import read_beir, write_beir


def test_written_judgments_read_back_unchanged(tmp_path: Path) -> None:
    queries = {"q2": "red tent", "q1": "Grüne Jacke"}
    qrels = {"q1": {"d9": 0, "d1": 3}, "q2": {"d2": 1}}
    folder = write_beir(tmp_path / "out", queries=queries, qrels=qrels)
    dataset = read_beir(folder)
    assert dataset.queries == queries and dataset.qrels == qrels
    assert (folder / "qrels" / "test.tsv").read_text().splitlines()[:2] == ["query-id\tcorpus-id\tscore", "q1\td1\t3"]


def test_an_id_with_a_tab_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="tab or line break"):
        write_beir(tmp_path, queries={"q": "x"}, qrels={"q": {"d\t1": 1}})
