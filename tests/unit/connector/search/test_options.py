"""The search object's options, declared once (SearchOptions): keywords or options=, the signature built from it."""

from __future__ import annotations

import dataclasses
import inspect

import pytest

from connector.cluster.capabilities import Capabilities
from connector.errors import ConfigError
from connector.search import AsyncHybridSearch, HybridSearch, SearchOptions


class _Cluster:
    capabilities = Capabilities.from_version("elasticsearch", "9.1.0", license="basic")


def test_the_signature_lists_every_option_once() -> None:
    parameters = inspect.signature(HybridSearch.__init__).parameters
    names = [f.name for f in dataclasses.fields(SearchOptions)]
    assert list(parameters) == ["self", "cluster", "index", "options", *names]
    assert all(parameters[f.name].default == f.default for f in dataclasses.fields(SearchOptions))
    assert inspect.signature(AsyncHybridSearch.__init__) == inspect.signature(HybridSearch.__init__)


def test_keywords_and_options_build_the_same_search() -> None:
    by_keywords = HybridSearch(_Cluster(), "shop", max_depth=40, correct="off", reranker=None)
    by_options = HybridSearch(_Cluster(), "shop", options=SearchOptions(max_depth=40, correct="off"))
    assert by_keywords.options == by_options.options
    assert (by_options.max_depth, by_options.num_candidates, by_options.correct) == (40, 100, "off")
    assert by_options.profiles_index == "eshybrid-profiles-shop"


def test_bad_options_name_the_option() -> None:
    with pytest.raises(ConfigError) as caught:
        HybridSearch(_Cluster(), "shop", max_depth=0)
    assert caught.value.field == "max_depth"
    with pytest.raises(ConfigError, match="not both"):
        HybridSearch(_Cluster(), "shop", options=SearchOptions(), max_depth=10)
    with pytest.raises(TypeError):
        HybridSearch(_Cluster(), "shop", max_dept=10)
    with pytest.raises(ConfigError):
        HybridSearch(_Cluster(), "", max_depth=10)
