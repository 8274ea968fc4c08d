"""The HTTP error rules and replica options both model services share (pure: no Ray, no FastAPI)."""

from __future__ import annotations

import pytest

from connector.services.wire import error_reply, error_type, param_from_loc, replica_options, retry_after_header
from embedding_service.errors import AuthError, InvalidInputError, ModelLoadError, OverloadedError
from embedding_service.settings import EmbeddingServiceSettings
from rerank.errors import RerankOverloaded, RerankServiceError, RerankUnauthorized
from rerank.settings import RerankSettings


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (422, "invalid_request_error"),
        (429, "rate_limit_error"),
        (500, "server_error"),
        (503, "server_error"),
    ],
)
def test_error_type_per_status(status: int, kind: str) -> None:
    assert error_type(status) == kind


@pytest.mark.parametrize(("seconds", "header"), [(0.0, "1"), (0.5, "1"), (1.0, "1"), (1.2, "2"), (2.5, "3")])
def test_retry_after_is_whole_seconds_rounded_up(seconds: float, header: str) -> None:
    assert retry_after_header(seconds) == header


def test_overloaded_gets_retry_after_from_the_error_or_the_default() -> None:
    reply = error_reply(OverloadedError("busy", retry_after_s=2.0, pending_texts=9), retry_after_s=7.0)
    assert (reply.status, reply.headers) == (429, {"Retry-After": "2"})
    assert reply.body == {"error": {"message": "busy", "type": "rate_limit_error", "param": None, "code": None}}
    assert error_reply(RerankOverloaded("full"), retry_after_s=7.0).headers == {"Retry-After": "7"}


def test_unauthorized_asks_for_a_bearer_token() -> None:
    for err in (AuthError("no token"), RerankUnauthorized("no token")):
        reply = error_reply(err, retry_after_s=1.0)
        assert reply.status == 401 and reply.headers == {"WWW-Authenticate": "Bearer"}
        assert reply.body["error"]["type"] == "authentication_error"


def test_a_bad_field_is_named_and_a_bug_is_a_server_error() -> None:
    reply = error_reply(InvalidInputError("too long", field="input[3]"), retry_after_s=1.0)
    assert (reply.status, reply.headers, reply.body["error"]["param"]) == (422, {}, "input[3]")
    for err in (ModelLoadError("gone"), RerankServiceError("bug")):
        reply = error_reply(err, retry_after_s=1.0)
        assert (reply.status, reply.body["error"]["type"]) == (500, "server_error")


def test_param_from_loc_drops_body_and_only_the_given_union_tags() -> None:
    assert param_from_loc(("body", "documents", 3)) == "documents[3]"
    assert param_from_loc(("body", "a", "b")) == "a.b"
    assert param_from_loc(("body",)) is None
    assert param_from_loc(("body", "input", "list[str]", 3)) == "input.list[str][3]"
    assert param_from_loc(("body", "input", "list[str]", 3), union_tags=("str", "list[str]")) == "input[3]"


@pytest.mark.parametrize(
    "settings",
    [
        EmbeddingServiceSettings(num_cpus_per_replica=0.5, max_queued_requests=7, retry_after_s=3.0),
        RerankSettings(model="m", num_cpus_per_replica=0.5, max_queued_requests=7, retry_after_s=3.0),
    ],
    ids=["embed", "rerank"],
)
def test_replica_options_are_the_same_for_both_services(settings: EmbeddingServiceSettings | RerankSettings) -> None:
    options = replica_options(settings, name="D", cluster_gpus=0)
    assert options == {
        "name": "D",
        "ray_actor_options": {"num_cpus": 0.5},
        "max_ongoing_requests": 32,
        "max_queued_requests": 7,
        "backpressure_config": {"status_code": 429, "retry_after_s": 3.0},
        "health_check_period_s": 10.0,
        "graceful_shutdown_timeout_s": 20.0,
    }
    assert replica_options(settings, name="D", cluster_gpus=1)["ray_actor_options"]["num_gpus"] == 1.0
    niced = replica_options(settings.model_copy(update={"niceness": 19}), name="D", cluster_gpus=0)
    assert niced["ray_actor_options"]["runtime_env"] == {"env_vars": {"RAY_worker_niceness": "19"}}
