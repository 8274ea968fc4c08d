"""Capability detection rules, over raw answers recorded from real servers (no network)."""

from __future__ import annotations

import ast
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any, get_args

import pytest

import connector
from connector.cluster.capabilities import (
    HYBRID_FORMS,
    OS_HYBRID_QUERY_SINCE,
    Capabilities,
    Flavor,
    HybridForm,
    parse_capabilities,
)
from connector.errors import ClusterError, UnsupportedServerError
from connector.jobs.dialect import Flavor as JobsFlavor
from connector.localcluster.distribution import Flavor as LocalFlavor

# The capabilities object and the pure modules it is cut into (version gates and tables; reading the answers).
CAPABILITIES_FILES = [
    Path(connector.__file__).parent / "cluster" / name for name in ("capabilities.py", "_tables.py", "_answers.py")
]


def es_root(number: str) -> dict[str, Any]:
    return {
        "name": "node-1",
        "cluster_name": "shop",
        "version": {"number": number, "build_flavor": "default", "build_type": "tar"},
        "tagline": "You Know, for Search",
    }


def os_root(number: str) -> dict[str, Any]:
    return {
        "name": "node-1",
        "version": {"distribution": "opensearch", "number": number, "build_type": "tar"},
        "tagline": "The OpenSearch Project: https://opensearch.org/",
    }


def nodes(*versions: str, plugins: tuple[str, ...] = (), build_flavor: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for i, version in enumerate(versions):
        node: dict[str, Any] = {"version": version}
        if build_flavor:
            node["build_flavor"] = "default"
        if plugins:
            node["plugins"] = [{"name": p} for p in plugins]
        out[f"n{i}"] = node
    return {"nodes": out}


def license_of(kind: str, status: str = "active") -> dict[str, Any]:
    return {"license": {"status": status, "type": kind, "uid": "x"}}


# -- Elasticsearch --------------------------------------------------------------------


def test_es9_basic_license() -> None:
    caps = parse_capabilities(es_root("9.5.4"), nodes=nodes("9.5.4", build_flavor=True), license=license_of("basic"))
    assert caps.flavor == "elasticsearch"
    assert caps.version == (9, 5, 4)
    assert caps.version_string == "9.5.4"
    assert caps.major == 9
    assert caps.vector_field_type == "dense_vector"
    assert caps.knn_shape == "es_knn_section"
    assert caps.knn_leg_shape == "es_knn_query"
    assert caps.supports_num_candidates
    assert caps.license == "basic"
    assert caps.hybrid_forms == frozenset({"es_query_knn"})
    assert not caps.requires_knn_index_setting
    assert caps.space_type("cosine") == "cosine"


@pytest.mark.parametrize(
    ("version", "license", "expected"),
    [
        ("8.19.9", "enterprise", {"es_query_knn", "es_rrf_retriever", "es_linear_retriever"}),
        ("9.0.0", "trial", {"es_query_knn", "es_rrf_retriever", "es_linear_retriever"}),
        ("8.17.0", "enterprise", {"es_query_knn", "es_rrf_retriever"}),
        ("8.15.0", "enterprise", {"es_query_knn"}),
        ("9.5.4", "platinum", {"es_query_knn"}),
        ("9.5.4", "basic", {"es_query_knn"}),
    ],
)
def test_es_retrievers_need_enterprise_and_version(version: str, license: str, expected: set[str]) -> None:
    caps = parse_capabilities(es_root(version), nodes=nodes(version), license=license_of(license))
    assert caps.hybrid_forms == expected
    assert caps.hybrid_forms <= HYBRID_FORMS


def test_es_retrievers_need_the_rank_rrf_module_when_modules_are_listed() -> None:
    answer = nodes("9.5.4", build_flavor=True)
    answer["nodes"]["n0"]["modules"] = [{"name": "x-pack-core"}, {"name": "x-pack-security"}]
    caps = parse_capabilities(None, nodes=answer, license=license_of("trial"))
    assert caps.hybrid_forms == frozenset({"es_query_knn"})
    answer["nodes"]["n0"]["modules"].append({"name": "rank-rrf"})
    caps = parse_capabilities(None, nodes=answer, license=license_of("trial"))
    assert "es_rrf_retriever" in caps.hybrid_forms


def test_es_without_xpack_has_no_license_and_no_retrievers() -> None:
    caps = parse_capabilities(es_root("9.5.4"), nodes=nodes("9.5.4"), license=None)
    assert caps.license is None
    assert caps.hybrid_forms == frozenset({"es_query_knn"})


def test_es_expired_license_counts_as_none() -> None:
    caps = parse_capabilities(es_root("8.19.9"), license=license_of("enterprise", status="expired"))
    assert caps.license is None
    assert "es_rrf_retriever" not in caps.hybrid_forms


def test_es_without_root_endpoint_is_told_by_node_infos() -> None:
    # The integ-test-zip has no rest-root module: GET / answers 405.
    caps = parse_capabilities(None, nodes=nodes("8.19.9", build_flavor=True), license=license_of("basic"))
    assert (caps.flavor, caps.version) == ("elasticsearch", (8, 19, 9))
    caps = parse_capabilities(None, nodes=nodes("9.5.4"), product_header="Elasticsearch")
    assert caps.flavor == "elasticsearch"


def test_no_root_and_no_node_infos_is_unsupported() -> None:
    with pytest.raises(UnsupportedServerError, match="did not answer GET /"):
        parse_capabilities(None, nodes=None, url="https://search.example:9200")


def test_oldest_node_decides_the_version() -> None:
    caps = parse_capabilities(es_root("9.1.0"), nodes=nodes("9.1.0", "8.19.9", "9.1.0"))
    assert caps.version == (8, 19, 9)
    assert caps.version_string == "8.19.9"


@pytest.mark.parametrize("version", ["7.17.20", "8.3.3", "6.8.0"])
def test_old_elasticsearch_is_unsupported(version: str) -> None:
    with pytest.raises(UnsupportedServerError) as info:
        parse_capabilities(es_root(version), url="http://old:9200")
    message = str(info.value)
    assert f"Elasticsearch {version}" in message
    assert "8.4 or newer" in message
    assert "http://old:9200" in message
    assert info.value.version == version


def test_snapshot_versions_parse() -> None:
    caps = parse_capabilities(es_root("9.2.0-SNAPSHOT"))
    assert caps.version == (9, 2, 0)
    assert caps.version_string == "9.2.0-SNAPSHOT"


# -- OpenSearch -----------------------------------------------------------------------


def test_os3_with_knn_only() -> None:
    caps = parse_capabilities(os_root("3.6.0"), nodes=nodes("3.6.0", plugins=("opensearch-knn",)))
    assert caps.flavor == "opensearch"
    assert caps.vector_field_type == "knn_vector"
    assert caps.knn_shape == "os_knn_query"
    assert caps.knn_leg_shape == "os_knn_query"
    assert not caps.supports_num_candidates
    assert caps.requires_knn_index_setting
    assert caps.license is None
    assert caps.hybrid_forms == frozenset()
    assert caps.plugins == frozenset({"opensearch-knn"})
    assert caps.space_type("cosine") == "cosinesimil"
    assert caps.space_type("dot_product") == "innerproduct"
    assert caps.space_type("l2_norm") == "l2"


def test_os_hybrid_query_needs_neural_search() -> None:
    plugins = ("opensearch-knn", "opensearch-neural-search", "opensearch-ml")
    caps = parse_capabilities(os_root("2.19.1"), nodes=nodes("2.19.1", plugins=plugins))
    assert caps.hybrid_forms == frozenset({"os_hybrid_query"})
    assert caps.supports("os_hybrid_query")
    old = parse_capabilities(os_root("2.9.0"), nodes=nodes("2.9.0", plugins=plugins))
    assert old.hybrid_forms == frozenset()


@pytest.mark.parametrize(
    ("version", "usable"),
    [("2.10.0", False), ("2.17.0", False), ("2.18.9", False), ("2.19.0", True), ("2.19.1", True), ("3.6.0", True)],
)
def test_os_hybrid_query_is_usable_from_2_19(version: str, usable: bool) -> None:
    """One answer: the hybrid query exists since 2.10, but eshybrid uses it from 2.19 (pagination_depth)."""
    plugins = ("opensearch-knn", "opensearch-neural-search")
    caps = parse_capabilities(os_root(version), nodes=nodes(version, plugins=plugins))
    assert caps.supports("os_hybrid_query") is usable
    assert ("os_hybrid_query" in caps.hybrid_forms) is usable
    assert caps.at_least(*OS_HYBRID_QUERY_SINCE) is usable


def test_hybrid_forms_literal_and_set_are_one_definition() -> None:
    assert HYBRID_FORMS == frozenset(get_args(HybridForm))
    assert HYBRID_FORMS == {"es_query_knn", "os_hybrid_query", "es_rrf_retriever", "es_linear_retriever"}


def test_os_plugin_must_be_on_every_node() -> None:
    answer = nodes("2.19.1", "2.19.1", plugins=("opensearch-knn", "opensearch-neural-search"))
    del answer["nodes"]["n1"]["plugins"][1]
    caps = parse_capabilities(os_root("2.19.1"), nodes=answer)
    assert "opensearch-neural-search" not in caps.plugins
    assert caps.hybrid_forms == frozenset()


def test_os_cat_plugins_answer_is_understood() -> None:
    cat = [
        {"name": "node-1", "component": "opensearch-knn", "version": "2.19.1.0"},
        {"name": "node-1", "component": "opensearch-neural-search", "version": "2.19.1.0"},
    ]
    caps = parse_capabilities(os_root("2.19.1"), nodes=cat)
    assert caps.supports("os_hybrid_query")


def test_os_without_knn_plugin_is_unsupported() -> None:
    with pytest.raises(UnsupportedServerError, match="opensearch-knn"):
        parse_capabilities(os_root("2.19.1"), nodes=nodes("2.19.1"))


def test_os_unreadable_plugins_assume_knn() -> None:
    caps = parse_capabilities(os_root("2.19.1"), nodes=None)
    assert not caps.plugins_known
    assert caps.plugins == frozenset({"opensearch-knn"})
    assert caps.hybrid_forms == frozenset()


def test_os_compatibility_mode_reads_the_real_version_from_nodes() -> None:
    root = os_root("7.10.2")  # compatibility.override_main_response_version: true
    caps = parse_capabilities(root, nodes=nodes("2.19.1", plugins=("opensearch-knn",)))
    assert caps.version == (2, 19, 1)
    with pytest.raises(UnsupportedServerError, match="override_main_response_version"):
        parse_capabilities(root, nodes=None)


@pytest.mark.parametrize("version", ["1.3.14", "2.3.0"])
def test_old_opensearch_is_unsupported(version: str) -> None:
    with pytest.raises(UnsupportedServerError) as info:
        parse_capabilities(os_root(version), nodes=nodes(version, plugins=("opensearch-knn",)))
    assert f"OpenSearch {version}" in str(info.value)
    assert "2.4 or newer" in str(info.value)


# -- unknown servers ------------------------------------------------------------------


@pytest.mark.parametrize(
    "root",
    [
        {},
        {"status": "ok"},
        {"version": {"number": "1.0.0", "distribution": "solr"}},
        {"version": {"number": "7.10.2"}, "tagline": "something else"},
    ],
)
def test_unknown_servers_are_unsupported(root: dict[str, Any]) -> None:
    with pytest.raises(UnsupportedServerError):
        parse_capabilities(root)


def test_unsupported_error_pickles_and_is_a_cluster_error() -> None:
    with pytest.raises(UnsupportedServerError) as info:
        parse_capabilities(es_root("7.17.0"))
    err = info.value
    assert isinstance(err, ClusterError)
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is UnsupportedServerError
    assert str(back) == str(err)
    assert back.version == "7.17.0"


# -- offline capabilities and per-server options ---------------------------------------


def test_from_version_goes_through_the_same_rules() -> None:
    es = Capabilities.from_version("elasticsearch", "9.1.0", license="enterprise")
    assert es.hybrid_forms == frozenset({"es_query_knn", "es_rrf_retriever", "es_linear_retriever"})
    os2 = Capabilities.from_version("opensearch", "2.19.1")
    assert os2.plugins == frozenset({"opensearch-knn"})
    with pytest.raises(UnsupportedServerError):
        Capabilities.from_version("elasticsearch", "7.17.0")
    with pytest.raises(UnsupportedServerError, match="unknown flavor"):
        Capabilities.from_version("solr", "9.0.0")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("flavor", "version", "engine", "expected"),
    [
        ("elasticsearch", "8.11.0", None, ("none",)),
        ("elasticsearch", "8.12.0", None, ("none", "int8")),
        ("elasticsearch", "8.19.9", None, ("none", "int8", "int4", "bbq")),
        ("opensearch", "2.15.0", "lucene", ("none",)),
        ("opensearch", "2.19.1", None, ("none", "int8")),
        ("opensearch", "2.13.0", "faiss", ("none", "fp16")),
        ("opensearch", "3.6.0", "faiss", ("none", "fp16", "binary")),
    ],
)
def test_quantizations_per_server(flavor: str, version: str, engine: str | None, expected: tuple[str, ...]) -> None:
    caps = Capabilities.from_version(flavor, version)  # type: ignore[arg-type]
    assert caps.quantizations(engine) == expected


def test_capabilities_are_frozen_hashable_and_printable() -> None:
    caps = Capabilities.from_version("elasticsearch", "9.5.4", license="basic")
    with pytest.raises(AttributeError):
        caps.flavor = "opensearch"  # type: ignore[misc]
    assert hash(caps) == hash(Capabilities.from_version("elasticsearch", "9.5.4", license="basic"))
    assert str(caps) == "Elasticsearch 9.5.4 (license basic; one-request hybrid forms: es_query_knn)"
    assert caps.to_dict()["hybrid_forms"] == ["es_query_knn"]
    assert caps.at_least(9, 5) and not caps.at_least(9, 6)


# -- package surface -------------------------------------------------------------------


def test_connector_exports_are_lazy_and_light() -> None:
    code = (
        "import sys, connector\n"
        "assert 'connector.cluster.client' not in sys.modules, 'import connector must stay cheap'\n"
        "connector.connect; connector.Capabilities\n"
        "heavy = [m for m in ('torch', 'ray', 'transformers') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_connector_unknown_attribute() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        connector.nope  # noqa: B018
    assert "connect" in dir(connector)
    assert connector.connect is connector.cluster.detect.connect
    assert connector.detect_capabilities is connector.cluster.detect.detect_capabilities
    assert connector.parse_capabilities is connector.cluster.capabilities.parse_capabilities


def test_capabilities_module_is_pure() -> None:
    """Parsing and version rules import no client or transport (detection I/O lives in detect.py)."""
    pure = {"connector.errors", "connector.cluster._tables", "connector.cluster._answers"}
    for path in CAPABILITIES_FILES:
        tree = ast.parse(path.read_text())
        imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
        ours = {m for m in imported if m and m.split(".")[0] in ("connector", "elastic_transport", "httpx")}
        assert ours <= pure, path.name


def test_flavors_have_one_definition() -> None:
    assert JobsFlavor is Flavor and LocalFlavor is Flavor
    assert get_args(Flavor) == ("elasticsearch", "opensearch")


@pytest.mark.parametrize(
    ("version", "shape"),
    [("8.4.0", "es_knn_section"), ("8.11.4", "es_knn_section"), ("8.12.0", "es_knn_query"), ("9.5.4", "es_knn_query")],
)
def test_knn_leg_shape_follows_the_es_version(version: str, shape: str) -> None:
    assert Capabilities.from_version("elasticsearch", version).knn_leg_shape == shape
