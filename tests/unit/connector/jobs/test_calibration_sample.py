"""The pure parts of ``eshybrid calibration-sample``: the seeded sample's search body and the file it writes
(read back by the embedding service's ``calibration_texts``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from connector.jobs.calibration import sample_body, write_calibration_file
from embedding_service.backends import calibration_texts
from embedding_service.errors import ModelLoadError
from tests.unit._golden import GoldenFiles

GOLDEN = GoldenFiles(prefix="calibration_")
TEXTS = ["Kindle Paperwhite\nWaterproof, 300 ppi", 'a "quoted" title\twith a tab', "plain"]


def test_sample_body_is_seeded_and_reads_only_the_text_fields() -> None:
    body = sample_body(source_fields=("title", "bullets.text"), size=300, seed=7)
    GOLDEN.check("sample_body", body)
    assert sample_body(source_fields=("title",), size=9000, seed=0)["size"] == 10_000  # the default result window


def test_jsonl_keeps_each_text_exactly(tmp_path: Path) -> None:
    path = tmp_path / "calibration.jsonl"
    write_calibration_file(path, TEXTS)
    assert len(path.read_text(encoding="utf-8").splitlines()) == len(TEXTS)
    assert calibration_texts(str(path)) == TEXTS


def test_plain_lines_join_whitespace(tmp_path: Path) -> None:
    path = tmp_path / "calibration.txt"
    write_calibration_file(path, TEXTS)
    assert calibration_texts(str(path)) == [" ".join(t.split()) for t in TEXTS]


def test_a_jsonl_file_of_other_json_says_what_to_write(tmp_path: Path) -> None:
    path = tmp_path / "calibration.jsonl"
    path.write_text('{"text": "x"}\n', encoding="utf-8")
    with pytest.raises(ModelLoadError, match="not a JSON string"):
        calibration_texts(str(path))
    path.write_text("plain text\n", encoding="utf-8")
    with pytest.raises(ModelLoadError, match="one JSON string a line"):
        calibration_texts(str(path))
