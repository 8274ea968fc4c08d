"""Reading a cluster's raw answers (``GET /``, ``GET /_nodes/plugins``, ``GET /_license``), one fact at a time.

Pure steps of :func:`connector.cluster.capabilities.parse_capabilities`: the flavor, the oldest node's version,
the plugins and modules on every node, the active license, whether the server is supported, and the one-request
hybrid forms it offers.  Fetching the answers is :mod:`connector.cluster.detect`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from connector.cluster._tables import (
    KNN_PLUGIN,
    MIN_ELASTICSEARCH,
    MIN_OPENSEARCH,
    NEURAL_SEARCH_PLUGIN,
    OS_HYBRID_QUERY_SINCE,
    RANK_RRF_MODULE,
    RETRIEVER_LICENSES,
    Flavor,
    HybridForm,
)
from connector.errors import UnsupportedServerError

__all__ = [
    "check_supported",
    "flavor_is_known",
    "flavor_of",
    "hybrid_forms_of",
    "license_of",
    "modules_of",
    "node_infos",
    "parse_version",
    "plugins_of",
    "version_string_of",
]

logger = logging.getLogger(__name__)

VERSION_RE = re.compile(r"^\s*(\d+)\.(\d+)(?:\.(\d+))?")


def node_infos(nodes: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None) -> list[Mapping[str, Any]]:
    if not isinstance(nodes, Mapping):
        return []
    return [n for n in (nodes.get("nodes") or {}).values() if isinstance(n, Mapping)]


def flavor_is_known(
    nodes: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None, *, product_header: str | None = None
) -> bool:
    """Whether the node infos (``GET /_nodes``) already say Elasticsearch, so ``GET /`` need not be asked.

    Elasticsearch names itself in the ``X-Elastic-Product`` header and in its node infos
    (``build_flavor``, which OpenSearch does not have).
    """
    node_list = node_infos(nodes)
    return bool(node_list) and (product_header == "Elasticsearch" or any("build_flavor" in n for n in node_list))


def flavor_of(
    root: Mapping[str, Any] | None,
    *,
    nodes: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
    product_header: str | None = None,
    url: str | None = None,
) -> Flavor:
    """The flavor from ``GET /`` (``root``, ``None`` when unavailable) or else the node infos.

    Raises:
        UnsupportedServerError: the answers are neither Elasticsearch's nor OpenSearch's.
    """
    where = f" at {url}" if url else ""
    version = root.get("version") if isinstance(root, Mapping) else None
    if isinstance(version, Mapping) and "number" in version:
        distribution = version.get("distribution")
        if distribution == "opensearch":
            return "opensearch"
        if distribution is None and (
            root is not None
            and root.get("tagline") == "You Know, for Search"
            or version.get("build_flavor") is not None
        ):
            return "elasticsearch"
        raise UnsupportedServerError(
            f"unknown search server{where}: distribution {distribution!r}, version "
            f"{version.get('number')!r}; eshybrid supports Elasticsearch 8.4+ and OpenSearch 2.4+",
            version=str(version.get("number")),
        )
    # No usable GET / (ES without the rest-root module): ES says who it is in a
    # header and in its node infos.
    if flavor_is_known(nodes, product_header=product_header):
        return "elasticsearch"
    raise UnsupportedServerError(
        f"the server{where} did not answer GET / like Elasticsearch or OpenSearch "
        "(no version.number) and its node infos could not be read; is the URL pointing at "
        "the cluster and not at a proxy page?",
        version=None,
    )


def version_string_of(
    root: Mapping[str, Any] | None,
    node_list: Sequence[Mapping[str, Any]],
    where: str,
) -> str:
    """The oldest node's version when known, else ``GET /``'s.

    Why the nodes: during a rolling upgrade the oldest node decides what a
    mapping may use, and OpenSearch with ``compatibility.override_main_response_version``
    answers ``7.10.2`` on ``GET /`` while its nodes report the real version.
    """
    versions: list[tuple[tuple[int, ...], str]] = []
    for node in node_list:
        text = node.get("version")
        match = VERSION_RE.match(text) if isinstance(text, str) else None
        if match and isinstance(text, str):
            versions.append((tuple(int(g or 0) for g in match.groups()), text))
    if versions:
        return min(versions)[1]
    if root is None:  # flavor_of only lets this through with node infos
        raise UnsupportedServerError(f"cannot read the server version{where}", version=None)
    return str(root["version"]["number"])


def parse_version(version_string: str, where: str) -> tuple[int, int, int]:
    match = VERSION_RE.match(version_string)
    if match is None:
        raise UnsupportedServerError(
            f"cannot read the server version {version_string!r}{where}", version=version_string
        )
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)


def plugins_of(
    nodes: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None, flavor: Flavor
) -> tuple[frozenset[str], bool]:
    """Plugins installed on every node (a plugin missing on one node is not usable)."""
    if nodes is None:
        # Unreadable (no monitor privilege): assume what eshybrid cannot work without.
        return (frozenset({KNN_PLUGIN}) if flavor == "opensearch" else frozenset()), False
    per_node: list[set[str]] = []
    if isinstance(nodes, Mapping):
        for node in (nodes.get("nodes") or {}).values():
            names = {str(p.get("name")) for p in (node.get("plugins") or []) if isinstance(p, Mapping)}
            per_node.append(names)
    else:  # _cat/plugins?format=json: one row per (node, plugin)
        by_node: dict[str, set[str]] = {}
        for row in nodes:
            by_node.setdefault(str(row.get("name", "")), set()).add(str(row.get("component")))
        per_node = list(by_node.values())
    if not per_node:
        return frozenset(), True
    return frozenset(set.intersection(*per_node)), True


def license_of(license: Mapping[str, Any] | None) -> str | None:
    if not isinstance(license, Mapping) or not isinstance(license.get("license"), Mapping):
        return None
    info = license["license"]
    if info.get("status") != "active":
        logger.warning("the cluster's %s license is %s", info.get("type"), info.get("status"))
        return None
    kind = info.get("type")
    return str(kind) if kind else None


def check_supported(
    flavor: Flavor,
    version: tuple[int, int, int],
    version_string: str,
    plugins: frozenset[str],
    plugins_known: bool,
    where: str,
) -> None:
    reason = None
    if flavor == "elasticsearch" and version < MIN_ELASTICSEARCH:
        reason = (
            f"Elasticsearch {version_string}{where} is not supported: eshybrid needs Elasticsearch "
            "8.4 or newer (the knn option of _search and the query + knn blend); upgrade the cluster"
        )
    elif flavor == "opensearch" and version[0] == 7:
        # OpenSearch never shipped a 7.x: that is the compatibility override talking.
        reason = (
            f"OpenSearch{where} reports version {version_string} (compatibility.override_main_response_version "
            "is on) and its node versions could not be read; grant the monitor privilege or turn the "
            "override off so eshybrid can see the real version"
        )
    elif flavor == "opensearch" and version < MIN_OPENSEARCH:
        reason = (
            f"OpenSearch {version_string}{where} is not supported: eshybrid needs OpenSearch "
            "2.4 or newer with the k-NN plugin (lucene engine with efficient filtering); upgrade the cluster"
        )
    elif flavor == "opensearch" and plugins_known and KNN_PLUGIN not in plugins:
        reason = (
            f"OpenSearch {version_string}{where} has no k-NN plugin ({KNN_PLUGIN}) on every node; "
            "install it (bin/opensearch-plugin install opensearch-knn) to store knn_vector fields"
        )
    if reason is not None:
        raise UnsupportedServerError(reason, flavor=flavor, version=version_string)


def modules_of(node_list: Sequence[Mapping[str, Any]]) -> frozenset[str] | None:
    """Modules present on every node, or ``None`` when the answer did not list them."""
    listed = [n["modules"] for n in node_list if isinstance(n.get("modules"), list)]
    if not listed:
        return None
    names = [{str(m.get("name")) for m in modules if isinstance(m, Mapping)} for modules in listed]
    return frozenset(set.intersection(*names))


def hybrid_forms_of(
    flavor: Flavor,
    version: tuple[int, int, int],
    plugins: frozenset[str],
    license_type: str | None,
    modules: frozenset[str] | None = None,
) -> frozenset[HybridForm]:
    forms: set[HybridForm] = set()
    if flavor == "elasticsearch":
        forms.add("es_query_knn")  # every supported ES (8.4+)
        # Retrievers live in the rank-rrf module, which minimal builds (integ-test-zip) lack.
        has_rank_module = modules is None or RANK_RRF_MODULE in modules
        if license_type in RETRIEVER_LICENSES and has_rank_module:
            if version >= (8, 16, 0):  # retrievers GA; rrf retriever since 8.14 (preview)
                forms.add("es_rrf_retriever")
            if version >= (8, 18, 0):
                forms.add("es_linear_retriever")
    elif NEURAL_SEARCH_PLUGIN in plugins and version >= OS_HYBRID_QUERY_SINCE:
        forms.add("os_hybrid_query")
    return frozenset(forms)
