"""What a cluster can do: flavor, version, plugins, license and hybrid forms.

This module is the one place where Elasticsearch and OpenSearch differences
are answered.  Callers (mappings, the query builder, jobs) ask a
:class:`Capabilities` object (``caps.vector_field_type``, ``caps.knn_shape``,
``caps.space_type("cosine")``...) instead of branching on the flavor.

It is pure: :func:`parse_capabilities` turns the raw answers of a cluster
(``GET /``, ``GET /_nodes/plugins``, ``GET /_license``) into a
:class:`Capabilities`, so the rules are unit-tested without a cluster.  Reading
those answers is :func:`connector.cluster.detect.detect_capabilities`.
The types, version gates and tables live in :mod:`connector.cluster._tables`, the steps that read
each answer in :mod:`connector.cluster._answers`; their public names are imported from here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from connector.cluster._answers import (
    check_supported,
    flavor_is_known,
    flavor_of,
    hybrid_forms_of,
    license_of,
    modules_of,
    node_infos,
    parse_version,
    plugins_of,
    version_string_of,
)
from connector.cluster._tables import (
    ANALYSIS_COMMON_MODULE,
    ES_SIMILARITY,
    HYBRID_FORMS,
    KNN_PLUGIN,
    MIN_ELASTICSEARCH,
    MIN_OPENSEARCH,
    OS_COMBINED_FIELDS_SINCE,
    OS_HYBRID_QUERY_SINCE,
    OS_SPACE_TYPE,
    Flavor,
    HybridForm,
    KnnLegShape,
    KnnShape,
    Quantization,
    Similarity,
    VectorEngine,
)
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
        table = ES_SIMILARITY if self.flavor == "elasticsearch" else OS_SPACE_TYPE
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
    node_list = node_infos(nodes)
    flavor = flavor_of(root, nodes=nodes, product_header=product_header, url=url)
    version_string = version_string_of(root, node_list, where)
    version = parse_version(version_string, where)
    plugins, plugins_known = plugins_of(nodes, flavor)
    check_supported(flavor, version, version_string, plugins, plugins_known, where)
    license_type = license_of(license) if flavor == "elasticsearch" else None
    modules = modules_of(node_list)
    forms = hybrid_forms_of(flavor, version, plugins, license_type, modules)
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
