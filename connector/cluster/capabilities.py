"""What a cluster can do: flavor, version, plugins, license and hybrid forms.

This module is the one place where Elasticsearch and OpenSearch differences
are answered.  Callers (mappings, the query builder, jobs) ask a
:class:`Capabilities` object (``caps.vector_field_type``, ``caps.knn_shape``,
``caps.space_type("cosine")``...) instead of branching on the flavor.

It is pure: :func:`parse_capabilities` turns the raw answers of a cluster
(``GET /``, ``GET /_nodes/plugins``, ``GET /_license``) into a
:class:`Capabilities`, so the rules are unit-tested without a cluster.  Reading
those answers is :func:`connector.cluster.detect.detect_capabilities`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from connector.errors import UnsupportedServerError

__all__ = [
    "Capabilities",
    "Flavor",
    "HybridForm",
    "KnnLegShape",
    "KnnShape",
    "Quantization",
    "Similarity",
    "VectorEngine",
    "HYBRID_FORMS",
    "MIN_ELASTICSEARCH",
    "MIN_OPENSEARCH",
    "OS_COMBINED_FIELDS_SINCE",
    "OS_HYBRID_QUERY_SINCE",
    "flavor_of",
    "flavor_is_known",
    "parse_capabilities",
]

logger = logging.getLogger(__name__)

Flavor = Literal["elasticsearch", "opensearch"]
# How a kNN leg is written: ES puts a ``knn`` section beside ``query`` (field,
# query_vector, k, num_candidates, filter); OpenSearch puts a ``knn`` clause
# inside ``query`` ({"knn": {field: {vector, k, filter}}}).
KnnShape = Literal["es_knn_section", "os_knn_query"]
# How a client-side kNN *leg* (a search of its own) is written: ES >= 8.12 as a ``knn``
# query clause (one query phase; the top-level ``knn`` section adds a DFS round before it,
# for the same hits and scores), older ES as the section, OpenSearch as its ``knn`` query.
KnnLegShape = Literal["es_knn_query", "es_knn_section", "os_knn_query"]
# Similarities in the search engineer's words; each flavor spells them its own way.
Similarity = Literal["cosine", "dot_product", "l2_norm", "max_inner_product"]
Quantization = Literal["none", "int8", "int4", "bbq", "fp16", "binary"]
VectorEngine = Literal["lucene", "faiss"]

# The one-request hybrid forms a :class:`Capabilities` may offer (``caps.supports(form)``).
HybridForm = Literal["es_query_knn", "os_hybrid_query", "es_rrf_retriever", "es_linear_retriever"]
HYBRID_FORMS: frozenset[HybridForm] = frozenset(get_args(HybridForm))

# ES 8.4 brought the ``knn`` option of ``_search`` (with ``filter``) and the
# ``query`` + ``knn`` blend; before that kNN was a separate, experimental API.
MIN_ELASTICSEARCH = (8, 4, 0)
# OpenSearch 2.4 brought efficient filtering for the lucene engine, which the
# default mapping uses; 1.x lacks the lucene engine altogether.
MIN_OPENSEARCH = (2, 4, 0)
# The OpenSearch version from which the neural-search ``hybrid`` query is usable by eshybrid
# (the query exists since 2.10): 2.19 brought ``pagination_depth`` (a page beyond the first
# stays consistent), the ``score-ranker-processor`` (RRF), and is where the missing-document
# rule of ``arithmetic_mean`` was measured.  Before it, hybrid fusion runs client-side.
OS_HYBRID_QUERY_SINCE = (2, 19, 0)
# OpenSearch added the combined_fields query (Lucene's CombinedFieldQuery, BM25F) in 3.2.
OS_COMBINED_FIELDS_SINCE = (3, 2, 0)
# The Elasticsearch module with the language analyzers and stemmers.
ANALYSIS_COMMON_MODULE = "analysis-common"

KNN_PLUGIN = "opensearch-knn"
NEURAL_SEARCH_PLUGIN = "opensearch-neural-search"
RANK_RRF_MODULE = "rank-rrf"

# Licenses under which Elastic enables RRF and linear retrievers (ENTERPRISE
# operation mode; a trial enables everything).
_RETRIEVER_LICENSES = frozenset({"enterprise", "trial"})

_ES_SIMILARITY: dict[str, str] = {
    "cosine": "cosine",
    "dot_product": "dot_product",
    "l2_norm": "l2_norm",
    "max_inner_product": "max_inner_product",
}
_OS_SPACE_TYPE: dict[str, str] = {
    "cosine": "cosinesimil",
    # OpenSearch has one inner-product space; it does not require unit vectors.
    "dot_product": "innerproduct",
    "max_inner_product": "innerproduct",
    "l2_norm": "l2",
}

_VERSION_RE = re.compile(r"^\s*(\d+)\.(\d+)(?:\.(\d+))?")


@dataclass(frozen=True)
class Capabilities:
    """What one cluster supports, as detected (or assumed for offline use).

    Build one with :func:`connector.connect` / :func:`connector.cluster.detect.detect_capabilities`
    (a live cluster), :func:`parse_capabilities` (raw answers) or :meth:`from_version` (offline,
    e.g. to print a mapping for a given server).  It pickles, so a process that has detected
    it can hand it to another (``Cluster(..., capabilities=caps)``).
    """

    flavor: Flavor
    version: tuple[int, int, int]
    version_string: str
    vector_field_type: Literal["dense_vector", "knn_vector"]
    plugins: frozenset[str]
    license: str | None
    # The one-request hybrid forms eshybrid can use on this server (see :meth:`supports`).
    hybrid_forms: frozenset[HybridForm]
    # False when the plugin list could not be read (no ``monitor`` privilege):
    # ``plugins`` then holds what was assumed.
    plugins_known: bool = True
    # Modules present on every node; ``None`` when the nodes answer did not list them
    # (then a full distribution is assumed).
    modules: frozenset[str] | None = None

    # -- version ---------------------------------------------------------------
    @property
    def major(self) -> int:
        return self.version[0]

    @property
    def minor(self) -> int:
        return self.version[1]

    def at_least(self, major: int, minor: int = 0, patch: int = 0) -> bool:
        """Whether the server version is ``major.minor.patch`` or newer."""
        return self.version >= (major, minor, patch)

    @property
    def display_name(self) -> str:
        """``"Elasticsearch 9.5.4"`` / ``"OpenSearch 3.6.0"``."""
        name = "Elasticsearch" if self.flavor == "elasticsearch" else "OpenSearch"
        return f"{name} {self.version_string}"

    # -- search request shapes -------------------------------------------------
    @property
    def knn_shape(self) -> KnnShape:
        """How a kNN section sits in a search beside a ``query`` (see :data:`KnnShape`)."""
        return "es_knn_section" if self.flavor == "elasticsearch" else "os_knn_query"

    @property
    def knn_leg_shape(self) -> KnnLegShape:
        """How a kNN leg searched on its own is written (see :data:`KnnLegShape`)."""
        if self.flavor == "elasticsearch":
            return "es_knn_query" if self.at_least(8, 12) else "es_knn_section"
        return "os_knn_query"

    @property
    def supports_num_candidates(self) -> bool:
        """Whether the kNN leg takes ``num_candidates`` (ES) or only ``k`` (OpenSearch)."""
        return self.flavor == "elasticsearch"

    def supports(self, form: str) -> bool:
        """Whether a one-request hybrid form (a member of :data:`HYBRID_FORMS`) is usable here.

        The one answer to "can this server compute the hybrid in one request": e.g.
        ``os_hybrid_query`` needs neural-search on OpenSearch :data:`OS_HYBRID_QUERY_SINCE`
        or newer, the ES retrievers an enterprise/trial license, 8.16+ (RRF) / 8.18+ (linear).
        """
        return form in self.hybrid_forms

    @property
    def supports_combined_fields(self) -> bool:
        """Whether the ``combined_fields`` query (BM25F over several text fields) exists here.

        Elasticsearch since 7.13 (every supported version); OpenSearch since 3.2
        (``OS_COMBINED_FIELDS_SINCE``).
        """
        return self.flavor == "elasticsearch" or self.version >= OS_COMBINED_FIELDS_SINCE

    # -- mapping shapes --------------------------------------------------------
    @property
    def language_analyzers(self) -> bool:
        """Whether the language analyzers (``english``...) and stemmers exist here.

        Elasticsearch ships them in the ``analysis-common`` module, which minimal builds
        (the Maven integ-test-zip) lack; OpenSearch has them in core.
        """
        if self.flavor == "opensearch" or self.modules is None:
            return True
        return ANALYSIS_COMMON_MODULE in self.modules

    @property
    def requires_knn_index_setting(self) -> bool:
        """Whether vector fields need the static index setting ``index.knn: true``."""
        return self.flavor == "opensearch"

    @property
    def max_vector_dims(self) -> int:
        """The largest vector dimension the server accepts."""
        return 4096 if self.flavor == "elasticsearch" else 16000

    @property
    def vector_engines(self) -> tuple[str, ...]:
        """The ANN engines a mapping may name (empty: the server has one, unnamed)."""
        return () if self.flavor == "elasticsearch" else ("lucene", "faiss")

    @property
    def default_vector_engine(self) -> str | None:
        """The engine used when none is named (lucene: efficient filtering on 2.x and 3.x)."""
        return None if self.flavor == "elasticsearch" else "lucene"

    def space_type(self, similarity: str) -> str:
        """The server's spelling of a similarity (``cosine`` -> ``cosinesimil`` on OpenSearch).

        Raises:
            KeyError: for a similarity outside :data:`Similarity`.
        """
        table = _ES_SIMILARITY if self.flavor == "elasticsearch" else _OS_SPACE_TYPE
        return table[similarity]

    def quantizations(self, engine: str | None = None) -> tuple[Quantization, ...]:
        """The vector quantizations this server offers (for OpenSearch: per engine).

        ES: ``int8`` (``int8_hnsw``, 8.12+), ``int4`` (8.15+), ``bbq`` (``bbq_hnsw``, 8.16+).
        OpenSearch: lucene ``int8`` (scalar quantizer, 2.16+); faiss ``fp16``
        (2.13+) and ``binary`` (on-disk 32x, 2.17+).
        """
        gates: tuple[tuple[Quantization, tuple[int, int, int]], ...]
        if self.flavor == "elasticsearch":
            gates = (("int8", (8, 12, 0)), ("int4", (8, 15, 0)), ("bbq", (8, 16, 0)))
        elif (engine or self.default_vector_engine) == "faiss":
            gates = (("fp16", (2, 13, 0)), ("binary", (2, 17, 0)))
        else:
            gates = (("int8", (2, 16, 0)),)
        offered: tuple[Quantization, ...] = ("none",)
        return offered + tuple(name for name, since in gates if self.version >= since)

    # -- construction ----------------------------------------------------------
    @classmethod
    def from_version(
        cls,
        flavor: Flavor,
        version: str,
        *,
        plugins: Sequence[str] | None = None,
        license: str | None = None,
    ) -> Capabilities:
        """Capabilities assumed for a server that is not at hand (offline builders, tests).

        Args:
            flavor: ``"elasticsearch"`` or ``"opensearch"``.
            version: e.g. ``"9.5.4"`` or ``"2.19.1"``.
            plugins: installed plugins; OpenSearch defaults to ``opensearch-knn`` only.
            license: ES license type (``"basic"``, ``"enterprise"``...), active.

        Raises:
            UnsupportedServerError: for an unknown flavor or a too old version.
        """
        if flavor not in ("elasticsearch", "opensearch"):
            raise UnsupportedServerError(
                f"unknown flavor {flavor!r}: use 'elasticsearch' or 'opensearch'", flavor=flavor
            )
        if flavor == "opensearch":
            root: dict[str, Any] = {"version": {"number": version, "distribution": "opensearch"}}
            names = [KNN_PLUGIN] if plugins is None else list(plugins)
        else:
            root = {"version": {"number": version, "build_flavor": "default"}}
            names = list(plugins or ())
        nodes = {"nodes": {"assumed": {"version": version, "plugins": [{"name": n} for n in names]}}}
        lic = {"license": {"type": license, "status": "active"}} if license else None
        return parse_capabilities(root, nodes=nodes, license=lic)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able summary (for ``eshybrid cluster info`` and logs)."""
        return {
            "flavor": self.flavor,
            "version": self.version_string,
            "vector_field_type": self.vector_field_type,
            "knn_shape": self.knn_shape,
            "knn_leg_shape": self.knn_leg_shape,
            "plugins": sorted(self.plugins),
            "plugins_known": self.plugins_known,
            "license": self.license,
            "hybrid_forms": sorted(self.hybrid_forms),
        }

    def __str__(self) -> str:
        forms = ", ".join(sorted(self.hybrid_forms)) or "none"
        license = f"license {self.license}; " if self.license else ""
        return f"{self.display_name} ({license}one-request hybrid forms: {forms})"


# -- parsing (pure) ----------------------------------------------------------------


def parse_capabilities(
    root: Mapping[str, Any] | None,
    *,
    nodes: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
    license: Mapping[str, Any] | None = None,
    product_header: str | None = None,
    url: str | None = None,
) -> Capabilities:
    """Turn the raw answers of a cluster into :class:`Capabilities`.

    Args:
        root: the body of ``GET /``; ``None`` when the server has no root endpoint
            (Elasticsearch without the ``rest-root`` module, e.g. the integ-test-zip).
        nodes: the body of ``GET /_nodes/plugins`` (a dict with ``nodes``) or of
            ``GET /_cat/plugins?format=json`` (a list); ``None`` when it could not be read.
        license: the body of ``GET /_license`` (ES); ``None`` when absent (no x-pack) or unreadable.
        product_header: the ``X-Elastic-Product`` response header, if any.
        url: the cluster URL, only used in error messages.

    Returns:
        The capabilities.

    Raises:
        UnsupportedServerError: for an unknown server, ES < 8.4 or OpenSearch < 2.4,
            or OpenSearch without the k-NN plugin.
    """
    where = f" at {url}" if url else ""
    node_list = _node_infos(nodes)
    flavor = flavor_of(root, nodes=nodes, product_header=product_header, url=url)
    version_string = _version_string(root, node_list, where)
    version = _parse_version(version_string, where)
    plugins, plugins_known = _plugins_of(nodes, flavor)
    _check_supported(flavor, version, version_string, plugins, plugins_known, where)
    license_type = _license_of(license) if flavor == "elasticsearch" else None
    modules = _modules_of(node_list)
    forms = _hybrid_forms(flavor, version, plugins, license_type, modules)
    return Capabilities(
        flavor=flavor,
        version=version,
        version_string=version_string,
        vector_field_type="dense_vector" if flavor == "elasticsearch" else "knn_vector",
        plugins=plugins,
        license=license_type,
        hybrid_forms=forms,
        plugins_known=plugins_known,
        modules=modules,
    )


def _node_infos(nodes: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None) -> list[Mapping[str, Any]]:
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
    node_list = _node_infos(nodes)
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


def _version_string(
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
        match = _VERSION_RE.match(text) if isinstance(text, str) else None
        if match and isinstance(text, str):
            versions.append((tuple(int(g or 0) for g in match.groups()), text))
    if versions:
        return min(versions)[1]
    if root is None:  # flavor_of only lets this through with node infos
        raise UnsupportedServerError(f"cannot read the server version{where}", version=None)
    return str(root["version"]["number"])


def _parse_version(version_string: str, where: str) -> tuple[int, int, int]:
    match = _VERSION_RE.match(version_string)
    if match is None:
        raise UnsupportedServerError(
            f"cannot read the server version {version_string!r}{where}", version=version_string
        )
    major, minor, patch = match.groups()
    return int(major), int(minor), int(patch or 0)


def _plugins_of(
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


def _license_of(license: Mapping[str, Any] | None) -> str | None:
    if not isinstance(license, Mapping) or not isinstance(license.get("license"), Mapping):
        return None
    info = license["license"]
    if info.get("status") != "active":
        logger.warning("the cluster's %s license is %s", info.get("type"), info.get("status"))
        return None
    kind = info.get("type")
    return str(kind) if kind else None


def _check_supported(
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


def _modules_of(node_list: Sequence[Mapping[str, Any]]) -> frozenset[str] | None:
    """Modules present on every node, or ``None`` when the answer did not list them."""
    listed = [n["modules"] for n in node_list if isinstance(n.get("modules"), list)]
    if not listed:
        return None
    names = [{str(m.get("name")) for m in modules if isinstance(m, Mapping)} for modules in listed]
    return frozenset(set.intersection(*names))


def _hybrid_forms(
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
        if license_type in _RETRIEVER_LICENSES and has_rank_module:
            if version >= (8, 16, 0):  # retrievers GA; rrf retriever since 8.14 (preview)
                forms.add("es_rrf_retriever")
            if version >= (8, 18, 0):
                forms.add("es_linear_retriever")
    elif NEURAL_SEARCH_PLUGIN in plugins and version >= OS_HYBRID_QUERY_SINCE:
        forms.add("os_hybrid_query")
    return frozenset(forms)
