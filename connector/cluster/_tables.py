"""The vocabulary of capabilities: the literal types, version gates, plugin and module names, similarity spellings.

Pure constants, no I/O; :mod:`connector.cluster.capabilities` (the :class:`Capabilities` object and
:func:`parse_capabilities`) and :mod:`connector.cluster._answers` (reading a cluster's raw answers) share them.
Import them from :mod:`connector.cluster.capabilities`, which re-exports the public ones.
"""

from __future__ import annotations

from typing import Literal, get_args

__all__ = [
    "ANALYSIS_COMMON_MODULE",
    "ES_SIMILARITY",
    "HYBRID_FORMS",
    "KNN_PLUGIN",
    "MIN_ELASTICSEARCH",
    "MIN_OPENSEARCH",
    "NEURAL_SEARCH_PLUGIN",
    "OS_COMBINED_FIELDS_SINCE",
    "OS_HYBRID_QUERY_SINCE",
    "OS_SPACE_TYPE",
    "RANK_RRF_MODULE",
    "RETRIEVER_LICENSES",
    "Flavor",
    "HybridForm",
    "KnnLegShape",
    "KnnShape",
    "Quantization",
    "Similarity",
    "VectorEngine",
]

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
RETRIEVER_LICENSES = frozenset({"enterprise", "trial"})

ES_SIMILARITY: dict[str, str] = {
    "cosine": "cosine",
    "dot_product": "dot_product",
    "l2_norm": "l2_norm",
    "max_inner_product": "max_inner_product",
}
OS_SPACE_TYPE: dict[str, str] = {
    "cosine": "cosinesimil",
    # OpenSearch has one inner-product space; it does not require unit vectors.
    "dot_product": "innerproduct",
    "max_inner_product": "innerproduct",
    "l2_norm": "l2",
}
