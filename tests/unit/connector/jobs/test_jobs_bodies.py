"""Golden-JSON tests of the request bodies jobs and migrations send (pure builders).

Regenerate after an intended change with ``ESHYBRID_UPDATE_GOLDEN=1 pytest tests/unit/test_jobs_bodies.py``
and review the diff.
"""

from __future__ import annotations

import json

import pytest

from connector.jobs.bulk import BulkAction, encode_action, source_with_vector, vector_json
from connector.jobs.dialect import PitDialect, catch_up_search_body, pit_search_body
from connector.jobs.reindex import alias_actions, target_index_body
from connector.jobs.store import DeadLetter, JobCounts, SliceCheckpoint, dead_letter_index_body, jobs_index_body
from migrations.state import migrations_index_body
from tests.unit._golden import GOLDEN_DIR, GoldenFiles

check_golden = GoldenFiles(GOLDEN_DIR / "jobs").check


def test_pit_page_body() -> None:
    body = pit_search_body(
        pit_id="PIT",
        keep_alive="10m",
        size=500,
        source={"includes": ["title", "eshybrid_meta.embedding"]},
        search_after=[17],
        slice_id=2,
        max_slices=4,
    )
    check_golden("pit_page_sliced", body)
    first = pit_search_body(pit_id="PIT", keep_alive="1m", size=10, source=True)
    assert "slice" not in first and "search_after" not in first and first["sort"] == [{"_shard_doc": "asc"}]


def test_pit_page_rejects_a_bad_slice() -> None:
    with pytest.raises(ValueError, match="slice_id"):
        pit_search_body(pit_id="P", keep_alive="1m", size=1, source=True, slice_id=4, max_slices=4)


def test_catch_up_body() -> None:
    check_golden(
        "catch_up_page",
        catch_up_search_body(
            after_seq_no=99, upto_seq_no=250, size=500, source={"includes": ["title"]}, search_after=[120]
        ),
    )


@pytest.mark.parametrize(
    ("flavor", "version", "expected"),
    [
        ("elasticsearch", (9, 5, 4), {"exclude_vectors": False}),
        ("elasticsearch", (8, 19, 9), True),
        ("opensearch", (3, 6, 0), True),
        ("opensearch", (2, 19, 1), True),
    ],
)
def test_whole_source_includes_vectors_on_every_flavor(
    flavor: str, version: tuple[int, int, int], expected: object
) -> None:
    dialect = PitDialect(flavor=flavor, version=version)  # type: ignore[arg-type]
    assert dialect.source_filter(None) == expected
    assert dialect.source_filter(["title"]) == {"includes": ["title"]}
    shard_doc = flavor == "elasticsearch" or version >= (3, 0, 0)
    assert dialect.pit_sort == ([{"_shard_doc": "asc"}] if shard_doc else [{"_id": "asc"}])


def test_system_index_bodies() -> None:
    check_golden("jobs_index", jobs_index_body())
    check_golden("dead_letter_index", dead_letter_index_body())
    check_golden("migrations_index", migrations_index_body())


def test_conditional_partial_update_lines() -> None:
    action = BulkAction(
        "update",
        {"_index": "products", "_id": "7", "if_seq_no": 12, "if_primary_term": 1},
        {"doc": {"embedding": [0.5, -0.25], "eshybrid_meta": {"embedding": {"model_id": "m", "text_hash": "ab"}}}},
    )
    lines = [json.loads(line) for line in encode_action(action)]
    check_golden("bulk_update_lines", lines)
    delete = encode_action(BulkAction("delete", {"_index": "p", "_id": "1"}))
    assert len(delete) == 1


def test_vectors_are_encoded_fast_and_exactly() -> None:
    import struct

    vector = [struct.unpack("<f", struct.pack("<f", x))[0] for x in (0.1, -1e-8, 3.14159265, 123456.789)]
    source = source_with_vector({"eshybrid_meta": {"embedding": {"model_id": "m"}}}, "embedding", vector, wrap="doc")
    decoded = json.loads(source.data)
    assert decoded["doc"]["eshybrid_meta"] == {"embedding": {"model_id": "m"}}
    as_f32 = [struct.unpack("<f", struct.pack("<f", x))[0] for x in decoded["doc"]["embedding"]]
    assert as_f32 == vector  # float32 values survive 9 significant digits exactly
    assert json.loads(source_with_vector({}, "v", [1.0]).data) == {"v": [1.0]}
    lines = encode_action(BulkAction("index", {"_index": "p", "_id": "1"}, source))
    assert lines[1] == source.data
    with pytest.raises(ValueError, match="NaN"):
        vector_json([float("nan")])


def test_lone_surrogates_are_sent_escaped() -> None:
    lines = encode_action(BulkAction("index", {"_index": "p", "_id": "1"}, {"title": "a\ud800b"}))
    assert lines[1] == b'{"title":"a\\ud800b"}'


def test_target_index_body_keeps_mapping_and_analysis() -> None:
    source_mapping = {
        "dynamic": "strict",
        "properties": {"title": {"type": "text", "analyzer": "my_en"}},
        "_meta": {"app": {"owner": "shop"}},
    }
    source_settings = {
        "index": {
            "number_of_shards": "2",
            "number_of_replicas": "1",
            "uuid": "x",
            "creation_date": "1",
            "provided_name": "products",
            "version": {"created": "1"},
            "analysis": {"analyzer": {"my_en": {"type": "english"}}},
        }
    }
    add_vector = {
        "_meta": {"app": {"owner": "shop"}, "eshybrid": {"mapping_version": 1}},
        "properties": {"embedding": {"type": "knn_vector", "dimension": 4}},
    }
    body = target_index_body(
        source_mapping=source_mapping, source_settings=source_settings, add_vector_body=add_vector, knn_setting=True
    )
    check_golden("target_index_body", body)
    assert source_mapping["properties"] == {"title": {"type": "text", "analyzer": "my_en"}}  # not mutated


@pytest.mark.parametrize("kind", ["alias", "concrete", "new"])
def test_alias_swap_actions(kind: str) -> None:
    old = {"products-v1": {"filter": {"term": {"live": True}}, "is_write_index": True}} if kind == "alias" else {}
    check_golden(
        f"alias_swap_{kind}",
        alias_actions(
            alias="products",
            kind=kind,  # type: ignore[arg-type]
            old_indices=old,
            new_index="products-v2",
        ),
    )


def test_checkpoint_round_trip() -> None:
    cp = SliceCheckpoint(
        job_id="j",
        key="main-1",
        pass_name="main",
        slice_id=1,
        max_slices=4,
        cursor=[12, "x"],
        pit_id="P",
        counts=JobCounts(read=5, updated=3, skipped=2),
        done=False,
        commit_seq=7,
    )
    doc = cp.to_doc()
    assert doc["cursor"] == '[12, "x"]'
    again = SliceCheckpoint.from_doc(doc)
    assert again == cp and again.doc_id == "j:checkpoint:main-1"


def test_counts_reconcile() -> None:
    counts = JobCounts(read=10, updated=6, skipped=2, dead_lettered=1, vanished=1, embedded=9)
    assert counts.reconciles()
    counts.add(JobCounts(read=1))
    assert not counts.reconciles()


def test_dead_letter_doc_survives_bad_text() -> None:
    letter = DeadLetter(
        job_id="j",
        index="p",
        doc_id="7",
        reason_code="invalid_utf8",
        reason="lone surrogate",
        vector_field="embedding",
        text_excerpt="a\ud800b",
    )
    doc = letter.to_doc()
    doc["text_excerpt"].encode("utf-8")
    assert letter.letter_id == "j:p:7"
