"""HybridSearch and AsyncHybridSearch: the same public surface, and close/aclose close the same things."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

from connector.cluster.capabilities import Capabilities
from connector.search.hybrid import AsyncHybridSearch, HybridSearch
from connector.search.images import ImageSignal

# What only one side has by nature: the context-manager protocol and the closing verb.
_SYNC_ONLY = {"close", "__enter__", "__exit__"}
_ASYNC_ONLY = {"aclose", "__aenter__", "__aexit__"}


def _public(cls: type) -> dict[str, Any]:
    names = {n for n in dir(cls) if not n.startswith("_") or n in _SYNC_ONLY | _ASYNC_ONLY}
    return {n: getattr(cls, n) for n in names}


def _signature(member: Any) -> str:
    target = member.fget if isinstance(member, property) else member
    return str(inspect.signature(target)) if callable(target) else type(member).__name__


def test_the_public_surfaces_are_the_same() -> None:
    sync, async_ = _public(HybridSearch), _public(AsyncHybridSearch)
    assert set(sync) - _SYNC_ONLY == set(async_) - _ASYNC_ONLY
    for name in set(sync) - _SYNC_ONLY:
        assert _signature(sync[name]) == _signature(async_[name]), name
        if callable(async_[name]) and name not in ("fusion", "lexical_form"):
            assert inspect.iscoroutinefunction(async_[name]) == (name in ("search", "retrieve_legs", "load_profile"))
    assert str(inspect.signature(HybridSearch.__init__)) == str(inspect.signature(AsyncHybridSearch.__init__))


class _Closeable:
    def __init__(self, log: list[str], name: str, *, is_async: bool = False) -> None:
        self.log, self.name, self.is_async = log, name, is_async

    def embed_query(self, text: str) -> list[float]:
        return [1.0]

    def rewrite(self, text: str) -> str:
        return text

    def close(self) -> None:
        self.log.append(self.name)


class _AsyncCloseable(_Closeable):
    async def aclose(self) -> None:
        self.log.append(self.name)


class _Cluster:
    capabilities = Capabilities.from_version("opensearch", "3.6.0")


def _parts(log: list[str], embedder_cls: type[_Closeable]) -> dict[str, Any]:
    return {
        "embedder": embedder_cls(log, "embedder"),
        "image": ImageSignal(embedder=_Closeable(log, "image embedder")),  # type: ignore[arg-type]
        "rewriter": _Closeable(log, "rewriter"),
    }


def test_close_and_aclose_close_the_same_things() -> None:
    closed_sync: list[str] = []
    HybridSearch(_Cluster(), "shop", **_parts(closed_sync, _Closeable)).close()
    closed_async: list[str] = []
    asyncio.run(AsyncHybridSearch(_Cluster(), "shop", **_parts(closed_async, _AsyncCloseable)).aclose())
    assert closed_sync == closed_async == ["embedder", "image embedder"]
