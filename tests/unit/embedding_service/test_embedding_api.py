"""Request rules of POST /v1/embeddings and the settings object (pure, no Ray)."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from pydantic import ValidationError

from embedding_service.api import EmbeddingRequest, check_request, param_from_loc, render_embeddings
from embedding_service.errors import InvalidInputError, OverloadedError
from embedding_service.settings import EmbeddingServiceSettings

_LIMITS = {"model_id": "org/model-x", "dims": 4, "max_items": 3, "max_chars": 10}


def test_one_string_or_a_list() -> None:
    assert check_request(EmbeddingRequest(input="hi"), **_LIMITS) == ["hi"]
    assert check_request(EmbeddingRequest(input=["a", "b"]), **_LIMITS) == ["a", "b"]
    assert check_request(EmbeddingRequest(input=["a"], model="model-x", dimensions=4), **_LIMITS) == ["a"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"input": ["a", "b", "c", "d"]}, "input"),
        ({"input": ["ok", "x" * 11]}, "input[1]"),
        ({"input": "x" * 11}, "input[0]"),
        ({"input": ["a"], "model": "other/model"}, "model"),
        ({"input": ["a"], "dimensions": 8}, "dimensions"),
    ],
)
def test_limits_name_the_field(body: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInputError) as err:
        check_request(EmbeddingRequest.model_validate(body), **_LIMITS)
    assert err.value.field == field
    assert err.value.status == 422


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": []}, "input"),
        ({"input": ["a", 3]}, "input[1]"),
        ({"input": [["nested"]]}, "input[0]"),
        ({"input": ["a"], "input_type": "passage"}, "input_type"),
        ({"input": ["a"], "unknown": 1}, "unknown"),
        ({}, "input"),
    ],
)
def test_schema_errors_point_at_the_field(body: dict[str, object], param: str) -> None:
    with pytest.raises(ValidationError) as err:
        EmbeddingRequest.model_validate(body)
    locs = [param_from_loc(("body", *e["loc"])) for e in err.value.errors()]
    # The handler reports the most specific (longest) location.
    most_specific = max(err.value.errors(), key=lambda e: len(e["loc"]))
    assert param_from_loc(("body", *most_specific["loc"])) == param, locs


def test_param_from_loc_drops_union_tags() -> None:
    assert param_from_loc(("body", "input", "list[str]", 3)) == "input[3]"
    assert param_from_loc(("body", "input", "str")) == "input"
    assert param_from_loc(("body",)) is None


def test_render_float_and_base64() -> None:
    vectors = np.array([[0.5, -1.0], [0.25, 2.0]], dtype=np.float32)
    as_float = json.loads(render_embeddings(vectors, model_id="m", token_counts=[3, 4], encoding_format="float"))
    assert as_float["object"] == "list" and as_float["model"] == "m"
    assert as_float["usage"] == {"prompt_tokens": 7, "total_tokens": 7}
    assert [d["index"] for d in as_float["data"]] == [0, 1]
    assert as_float["data"][1]["embedding"] == [0.25, 2.0]
    as_b64 = json.loads(render_embeddings(vectors, model_id="m", token_counts=[3, 4], encoding_format="base64"))
    decoded = np.frombuffer(base64.b64decode(as_b64["data"][0]["embedding"]), dtype="<f4")
    assert decoded.tolist() == [0.5, -1.0]


def test_errors_pickle_with_their_details() -> None:
    import pickle

    err = pickle.loads(pickle.dumps(OverloadedError("busy", retry_after_s=2.0, pending_texts=9)))
    assert isinstance(err, OverloadedError) and err.retry_after_s == 2.0 and str(err) == "busy"
    assert isinstance(InvalidInputError("bad", field="input"), ValueError)


def test_settings_are_bounded_and_forbid_unknown_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError):
        EmbeddingServiceSettings(max_batch_sise=3)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        EmbeddingServiceSettings(max_batch_size=0)
    with pytest.raises(ValidationError, match="autoscaling_min_replicas"):
        EmbeddingServiceSettings(autoscaling_min_replicas=4, autoscaling_max_replicas=2)
    with pytest.raises(ValidationError, match="float16"):
        EmbeddingServiceSettings(device="cpu", dtype="float16")
    monkeypatch.setenv("ESHYBRID_EMBED_MAX_BATCH_SIZE", "7")
    monkeypatch.setenv("ESHYBRID_EMBED_API_KEY", "s3cret")
    settings = EmbeddingServiceSettings()
    assert settings.max_batch_size == 7
    assert settings.api_key is not None and "s3cret" not in repr(settings)
