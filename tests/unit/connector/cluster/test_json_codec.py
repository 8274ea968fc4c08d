"""The transport's orjson codec: the same bytes as the standard library's path where orjson refuses."""

from __future__ import annotations

import elastic_transport
import numpy as np

from connector.cluster._json import SERIALIZERS


def test_bodies_and_answers_round_trip() -> None:
    body = {"query": {"match": {"title": "tent"}}, "knn": {"query_vector": np.array([0.5, -1.0], dtype=np.float32)}}
    json = SERIALIZERS["application/json"]
    assert json.loads(json.dumps(body)) == {"query": {"match": {"title": "tent"}}, "knn": {"query_vector": [0.5, -1.0]}}
    assert json.loads(json.dumps({1: "a"})) == {"1": "a"}  # non-string keys, as the standard library


def test_what_orjson_refuses_goes_as_the_standard_library_sends_it() -> None:
    lines = [{"index": {"_id": "bad"}}, {"title": "broken \ud800 text", "big": 2**70}]
    expected = elastic_transport.NdjsonSerializer().dumps(lines)
    assert SERIALIZERS["application/x-ndjson"].dumps(lines) == expected
    assert SERIALIZERS["application/json"].dumps(lines[1]) == elastic_transport.JsonSerializer().dumps(lines[1])


def test_answers_orjson_refuses_are_read_as_the_standard_library_reads_them() -> None:
    answer = b'{"hits":{"hits":[{"_source":{"title":"broken \\uD800 text"}}]}}'
    assert SERIALIZERS["application/json"].loads(answer) == elastic_transport.JsonSerializer().loads(answer)
