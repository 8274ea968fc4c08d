"""A search answered without some shards says so: the trace counts ``_shards.failed`` of every answer."""

from __future__ import annotations

from connector.search.ops import ClusterMsearch, ClusterRequest, ClusterSearch, Embed, Together, Trace


def _answer(failed: int) -> dict[str, object]:
    return {"_shards": {"total": 3, "successful": 3 - failed, "failed": failed}, "hits": {"hits": []}}


def test_the_trace_counts_failed_shards_of_every_answer() -> None:
    trace = Trace()
    search = ClusterSearch(index="i", body={})
    msearch = ClusterMsearch(index="i", searches=[({}, {}), ({}, {})])
    trace.after(search, _answer(0))
    assert trace.shards_failed == 0
    trace.after(search, _answer(1))
    trace.after(msearch, [_answer(1), _answer(2)])
    trace.after(ClusterRequest(method="POST", path="/_mget"), {"docs": []})  # no _shards: nothing counted
    assert trace.shards_failed == 4
    embed = Embed(text="shoe")  # not a cluster request: its result is never looked at
    trace.after(Together(ops=(search, embed)), (_answer(1), [0.1, 0.2]))
    assert trace.shards_failed == 5
