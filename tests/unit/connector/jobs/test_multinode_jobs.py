"""What the jobs do when a node goes: a page missing shards is an error, lost Ray tasks are told apart, the
descriptions a Ray task receives pickle (passages cut, the image embedder's factory)."""

from __future__ import annotations

import pickle

import pytest

from connector.jobs.dialect import ShardFailuresError, check_shards
from connector.jobs.images import ImageEmbedderFactory, ImageFetchSettings
from connector.jobs.passages import PassagePolicy
from connector.jobs.slices import PassageCut


def test_a_page_without_some_shards_is_an_error() -> None:
    check_shards({"_shards": {"total": 3, "successful": 3, "skipped": 0, "failed": 0}}, url="u", what="a page")
    check_shards({}, url="u", what="a page")  # no _shards (a msearch item of an older server): nothing to check
    partial = {
        "_shards": {
            "total": 3,
            "successful": 2,
            "failed": 1,
            "failures": [{"shard": 1, "reason": {"type": "search_context_missing_exception", "reason": "x"}}],
        }
    }
    with pytest.raises(ShardFailuresError) as err:
        check_shards(partial, url="http://c", what="a point-in-time page")
    assert err.value.status == 503 and err.value.error_type == "search_context_missing_exception"
    assert "1 of 3 shards failed" in str(err.value)
    assert pickle.loads(pickle.dumps(err.value)).error_type == "search_context_missing_exception"


def test_lost_ray_tasks_are_told_from_failed_ones() -> None:
    ray_exceptions = pytest.importorskip("ray.exceptions")
    from connector.jobs._ray import _died_with_its_process

    assert _died_with_its_process(ray_exceptions.WorkerCrashedError())
    assert _died_with_its_process(ray_exceptions.NodeDiedError("node gone"))
    assert not _died_with_its_process(ray_exceptions.TaskCancelledError())
    assert not _died_with_its_process(ray_exceptions.RayTaskError("fn", "traceback", ValueError("bad doc")))
    assert not _died_with_its_process(ValueError("bad doc"))


def test_what_a_ray_task_is_handed_pickles() -> None:
    cut = PassageCut(policy=PassagePolicy(max_tokens=64, prefix_template="{title}"), max_length=256, fields=("title",))
    assert pickle.loads(pickle.dumps(cut)) == cut
    factory = ImageEmbedderFactory("http://127.0.0.1:1/image", ImageFetchSettings(path_root="/images"))
    assert pickle.loads(pickle.dumps(factory)) == factory
