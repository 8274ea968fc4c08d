"""apply_rerank, RerankConfig, the score cache, the in-process adapter and the CLI flags (no network)."""

from __future__ import annotations

import argparse
import threading
import time
from collections.abc import Sequence

import pytest

from connector.cli.rerank import add_rerank_arguments, rerank_config_from_args
from connector.errors import ConfigError, RerankError, RerankTimeout
from connector.search.fusion import FusedDoc, LegHit
from connector.search.models import SearchHit
from connector.search.rerank import (
    CachedReranker,
    InProcessReranker,
    RerankConfig,
    apply_rerank,
    document_text,
    hit_id,
    hit_source,
)
from connector.services.rerank import RerankClient


class _Length:
    """Scores a document by its length; counts calls."""

    model_id = "length"

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.calls: list[list[str]] = []

    def score(self, query: str, documents: Sequence[str]) -> list[float]:
        self.calls.append(list(documents))
        time.sleep(self.delay_s)
        return [float(len(d)) for d in documents]


class _Broken:
    def __init__(self, scores: list[float] | None = None) -> None:
        self.scores = scores

    def score(self, query: str, documents: Sequence[str]) -> list[float]:
        if self.scores is None:
            raise RuntimeError("CUDA out of memory")
        return self.scores


def _hits(n: int) -> list[dict[str, object]]:
    # fused order 0..n-1; document i has a title of i+1 characters, so the reranker reverses the window
    return [{"_id": f"d{i}", "_source": {"title": "x" * (i + 1), "body": {"text": "y"}}} for i in range(n)]


def test_top_k_reordered_rest_kept_in_fused_order() -> None:
    config = RerankConfig(reranker=_Length(), top_k=3, fields=("title",), cache_size=0)
    outcome = apply_rerank("q", _hits(5), config)
    assert [hit_id(h) for h in outcome.hits] == ["d2", "d1", "d0", "d3", "d4"]
    assert outcome.rerank_scores == [3.0, 2.0, 1.0, None, None]
    assert outcome.scores_by_id == {"d2": 3.0, "d1": 2.0, "d0": 1.0}
    assert (outcome.fallback, outcome.reason, outcome.reranked) == (False, None, 3)


def test_reranked_order_is_sorting_by_score_ties_keep_fused_order() -> None:
    class _Fixed:
        def score(self, query: str, documents: Sequence[str]) -> list[float]:
            return [0.5, 0.9, 0.5, 0.1]

    outcome = apply_rerank("q", _hits(4), RerankConfig(reranker=_Fixed(), cache_size=0))
    assert [hit_id(h) for h in outcome.hits] == ["d1", "d0", "d2", "d3"]


def test_fewer_hits_than_top_k_and_no_hits() -> None:
    config = RerankConfig(reranker=_Length(), top_k=50, fields=("title",))
    assert [hit_id(h) for h in apply_rerank("q", _hits(2), config).hits] == ["d1", "d0"]
    empty = apply_rerank("q", [], config)
    assert empty.hits == [] and not empty.fallback


@pytest.mark.parametrize("reranker", [_Broken(), _Broken([1.0]), _Broken([1.0, float("nan"), 2.0])])
def test_failures_fall_back_to_the_fused_order(reranker: _Broken, caplog: pytest.LogCaptureFixture) -> None:
    hits = _hits(3)
    outcome = apply_rerank("q", hits, RerankConfig(reranker=reranker, cache_size=0))
    assert outcome.hits == hits
    assert outcome.rerank_scores == [None, None, None]
    assert outcome.fallback and outcome.reason
    assert "fused order" in caplog.text


def test_a_plain_reranker_over_budget_falls_back() -> None:
    config = RerankConfig(reranker=_Length(delay_s=0.2), timeout_s=0.05, cache_size=0)
    outcome = apply_rerank("q", _hits(3), config)
    assert outcome.fallback and "RerankTimeout" in (outcome.reason or "")
    assert [hit_id(h) for h in outcome.hits] == ["d0", "d1", "d2"]


def test_in_process_adapter_stops_waiting_at_the_budget() -> None:
    adapter = InProcessReranker(_Length(delay_s=0.5))
    started = time.perf_counter()
    outcome = apply_rerank("q", _hits(3), RerankConfig(reranker=adapter, timeout_s=0.05, cache_size=0))
    assert time.perf_counter() - started < 0.4
    assert outcome.fallback and "RerankTimeout" in (outcome.reason or "")
    with pytest.raises(RerankTimeout):
        adapter.score("q", ["a"], timeout_s=0.01)
    assert adapter.score("q", ["abc"]) == [3.0]
    adapter.close()


def test_in_process_adapter_turns_model_errors_into_rerank_errors() -> None:
    with pytest.raises(RerankError, match="CUDA out of memory"):
        InProcessReranker(_Broken()).score("q", ["a"])


def test_hits_of_every_shape() -> None:
    search_hits = [
        SearchHit(id=f"d{i}", index="i", rank=i + 1, score=1.0, source={"title": "x" * (i + 1)}) for i in range(3)
    ]
    config = RerankConfig(reranker=_Length(), fields=("title",), cache_size=0)
    assert [h.id for h in apply_rerank("q", search_hits, config).hits] == ["d2", "d1", "d0"]
    plain = [{"id": f"d{i}", "source": {"title": "x" * (i + 1)}} for i in range(3)]
    assert [h["id"] for h in apply_rerank("q", plain, config).hits] == ["d2", "d1", "d0"]
    fused = [FusedDoc(id=f"d{i}", score=1.0, hit=LegHit(id=f"d{i}", score=1.0), legs={}) for i in range(3)]
    sources = {f"d{i}": {"title": "x" * (i + 1)} for i in range(3)}
    assert [d.id for d in apply_rerank("q", fused, config, sources=sources).hits] == ["d2", "d1", "d0"]
    assert hit_source({"_id": "a"}) is None
    with pytest.raises(ConfigError):
        hit_id({"title": "no id"})


def test_document_text() -> None:
    source = {"title": "Kindle", "text": "e-reader", "tags": ["a", "b"], "meta": {"brand": "Amazon"}, "n": 3}
    assert document_text(source) == "Kindle\ne-reader"
    # A list field reads as the embedding path renders it ("a b"), not "a, b": one renderer (issue 12).
    assert document_text(source, fields=("title", "meta.brand", "missing", "tags")) == "Kindle\nAmazon\na b"
    assert document_text(source, template="{title} by {meta.brand} ({missing})") == "Kindle by Amazon ()"
    assert document_text(source, fields=("title",), max_chars=3) == "Kin"
    assert document_text(None) == ""


def test_cache_scores_each_query_document_model_once() -> None:
    inner = _Length()
    cached = CachedReranker(inner, size=3)
    assert cached.score("q", ["a", "bb"]) == [1.0, 2.0]
    assert cached.score("q", ["bb", "ccc"]) == [2.0, 3.0]
    assert inner.calls == [["a", "bb"], ["ccc"]]
    cached.score("other query", ["a"])
    assert inner.calls[-1] == ["a"]
    assert (cached.hits, cached.misses) == (1, 4)
    cached.score("q", ["a"])  # evicted: the cache holds 3
    assert inner.calls[-1] == ["a"]


def test_config_builds_one_backend_with_a_cache() -> None:
    inner = _Length()
    config = RerankConfig(reranker=inner, cache_size=10)
    backend = config.backend()
    assert isinstance(backend, CachedReranker) and backend.reranker is inner
    assert config.backend() is backend
    remote = RerankConfig(url="http://127.0.0.1:1/rerank", cache_size=0).backend()
    assert isinstance(remote, RerankClient)
    remote.close()


def test_config_validation_and_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        RerankConfig()
    with pytest.raises(ValueError, match="exactly one"):
        RerankConfig(url="http://x/rerank", model="m")
    with pytest.raises(ValueError):
        RerankConfig(url="http://x/rerank", top_k=0)
    with pytest.raises(ValueError):
        RerankConfig(url="http://x/rerank", bogus=1)  # type: ignore[call-arg]
    monkeypatch.setenv("ESHYBRID_SEARCH_RERANK_URL", "http://env:8000/rerank")
    monkeypatch.setenv("ESHYBRID_SEARCH_RERANK_API_KEY", "s3cret")
    config = RerankConfig(top_k=20)
    assert config.url == "http://env:8000/rerank" and config.top_k == 20
    assert "s3cret" not in repr(config) and "s3cret" not in str(config.model_dump())


def test_in_process_model_needs_a_loadable_checkpoint(tmp_path: object) -> None:
    config = RerankConfig(model=str(tmp_path), cache_size=0)
    outcome = apply_rerank("q", _hits(2), config)
    assert outcome.fallback and "ConfigError" in (outcome.reason or "")


def test_client_rejects_bad_urls() -> None:
    with pytest.raises(ConfigError):
        RerankClient("localhost:8000")


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_rerank_arguments(parser)
    return parser.parse_args(argv)


def test_cli_flags_build_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ESHYBRID_SEARCH_RERANK_URL", raising=False)
    monkeypatch.delenv("ESHYBRID_SEARCH_RERANK_MODEL", raising=False)
    assert rerank_config_from_args(_parse([])) is None
    config = rerank_config_from_args(
        _parse(
            [
                "--rerank-url",
                "http://h:1/rerank",
                "--rerank-top-k",
                "20",
                "--rerank-timeout-s",
                "0.5",
                "--rerank-fields",
                "title, text",
            ]
        )
    )
    assert config is not None
    assert (config.url, config.top_k, config.timeout_s, config.fields) == (
        "http://h:1/rerank",
        20,
        0.5,
        ("title", "text"),
    )
    assert rerank_config_from_args(_parse(["--rerank-model", "/models/ce"])).model == "/models/ce"  # type: ignore[union-attr]
    with pytest.raises(ConfigError):
        rerank_config_from_args(_parse(["--rerank"]))
    monkeypatch.setenv("RERANK_KEY", "k")
    keyed = rerank_config_from_args(_parse(["--rerank-url", "http://h:1/r", "--rerank-api-key-env", "RERANK_KEY"]))
    assert keyed is not None and keyed.api_key is not None and keyed.api_key.get_secret_value() == "k"


def test_cached_reranker_is_thread_safe() -> None:
    cached = CachedReranker(_Length(), size=100)
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(50):
                assert cached.score(f"q{n % 3}", [str(i), str(i) * 2]) == [float(len(str(i))), float(2 * len(str(i)))]
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors


def test_a_model_is_loaded_by_the_loader_it_is_given_once_and_lazily() -> None:
    loaded: list[str] = []

    def loader(model: str) -> _Length:
        loaded.append(model)
        return _Length()

    config = RerankConfig(model="/models/ce", loader=loader, fields=("title",))
    assert loaded == [] and config.source == "/models/ce"
    outcome = apply_rerank("q", _hits(3), config)
    assert not outcome.fallback and [hit_id(h) for h in outcome.hits] == ["d2", "d1", "d0"]
    backend = config.backend()
    assert isinstance(backend, CachedReranker) and isinstance(backend.reranker, InProcessReranker)
    assert backend.model_id == "length"
    apply_rerank("q", _hits(3), config)
    assert loaded == ["/models/ce"]
    assert "loader" not in config.model_dump()


def test_a_model_without_a_loader_or_with_a_failing_one_falls_back() -> None:
    outcome = apply_rerank("q", _hits(2), RerankConfig(model="/models/ce", cache_size=0))
    assert outcome.fallback and "does not load models" in (outcome.reason or "")

    def broken(model: str) -> _Length:
        raise OSError(f"no checkpoint in {model}")

    outcome = apply_rerank("q", _hits(2), RerankConfig(model="/models/ce", loader=broken, cache_size=0))
    assert outcome.fallback and "ConfigError: cannot load reranker '/models/ce': no checkpoint" in (
        outcome.reason or ""
    )


def test_the_library_never_imports_the_rerank_package() -> None:
    import subprocess
    import sys

    code = (
        "import sys, connector, connector.search, connector.search.rerank, connector.services; "
        "from connector import RerankConfig, RerankClient, HybridSearch, EmbeddingClient; "
        "from connector.search.rerank import apply_rerank; "
        "apply_rerank('q', [{'_id': 'a', '_source': {'t': 'x'}}], RerankConfig(model='/nowhere')); "
        "bad = [m for m in sys.modules if m == 'rerank' or m.startswith(('rerank.', 'torch', 'ray'))]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
