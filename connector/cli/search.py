"""``eshybrid search | eval | load | tune``: hybrid search, quality figures and BEIR loading.

Where the cluster and the embedding service are comes from flags or the
environment (``ESHYBRID_URL``, ``ESHYBRID_API_KEY`` / ``ESHYBRID_USERNAME`` +
``ESHYBRID_PASSWORD``, ``ESHYBRID_CA_CERTS``, ``ESHYBRID_EMBED_URL``,
``ESHYBRID_EMBED_API_KEY``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from connector.cli.common import add_managed_cluster_flags, managed_cluster_settings, split_csv
from connector.cli.images import add_image_search_arguments, image_signal_from_args, query_image_from_args
from connector.cli.rerank import add_rerank_arguments
from connector.cluster.settings import ConnectionSettings

__all__ = ["register"]

# The library's default (connector.search.options.DEFAULT_EMBED_BUDGET_S), shown in --help; not imported: the CLI
# imports the library lazily (a unit test holds the two equal when ESHYBRID_SEARCH_EMBED_BUDGET_S is unset).
EMBED_BUDGET_S = 0.2


def _add_connection(parser: argparse.ArgumentParser, *, embed: bool = True) -> None:
    parser.add_argument("--url", help="cluster URL (default $ESHYBRID_URL)")
    add_managed_cluster_flags(parser)
    if embed:
        parser.add_argument("--embed-url", help="embedding service base URL (default $ESHYBRID_EMBED_URL)")


def _add_personal(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("personalization")
    group.add_argument("--user", help="shopper id: personalize with their profile (eshybrid profiles build)")
    group.add_argument("--personal-weight", type=float, help="weight of the personal signal (default 0.1)")
    group.add_argument("--profiles-index", help="profiles index (default eshybrid-profiles-<index>)")


def _add_fusion(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("fusion (default: the index's tune recommendation, else the library default)")
    group.add_argument(
        "--fusion", choices=("rrf", "linear", "adaptive"), help="fusion method (adaptive: leg weights per query)"
    )
    group.add_argument("--rank-constant", type=int, help="RRF k")
    group.add_argument("--weights", metavar="LEX,VEC", help="leg weights, e.g. 0.3,0.7")
    group.add_argument("--normalizer", choices=("min_max", "z_score", "l2", "dbsf", "none"), help="linear normalizer")
    group.add_argument("--missing", choices=("zero", "ignore"), help="linear: how a doc absent from a leg counts")
    group.add_argument(
        "--strategy",
        choices=("auto", "client", "server"),
        default="auto",
        help="fuse in Python (client) or in the cluster (server); auto picks",
    )
    group.add_argument("--max-depth", type=int, default=100, help="candidates per leg = deepest rank (default 100)")
    _add_lexical(parser)


def _add_lexical(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("lexical leg (defaults: the index's tune recommendation, else combined_fields)")
    group.add_argument("--fields", metavar="F^B,...", help="lexical fields with boosts, e.g. title^2,text")
    group.add_argument(
        "--lexical-form",
        choices=("combined_fields", "best_fields", "most_fields", "cross_fields"),
        help="how the text matches several fields (combined_fields: BM25F over them as one field)",
    )
    group.add_argument("--tie-breaker", type=float, help="multi_match tie breaker (0..1)")


def _add_embed_budget(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--embed-budget-s",
        type=float,
        default=None,
        help=f"the query embedding's budget in seconds, no retries (default $ESHYBRID_SEARCH_EMBED_BUDGET_S, else "
        f"{EMBED_BUDGET_S}); over it, or with the embedding service down, the search answers the lexical result, "
        "flagged vector_fallback",
    )


def _add_correct(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--correct",
        choices=("off", "auto", "force"),
        default=None,
        help="spelling correction from the index's vocabulary: off, auto (confident changes only) or force "
        "(every rare or absent word); default: the library's (README 'Typo tolerance')",
    )


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``search``, ``eval``, ``load`` and ``tune``."""
    search = subparsers.add_parser(
        "search",
        help="hybrid (BM25 + kNN) search of an index",
        description="Search an index; --explain shows how each score was made, "
        "--console prints what ran in Kibana / Dashboards Dev Tools syntax.",
    )
    search.add_argument("text", nargs="?", default="", help="the query text (may be omitted with --image)")
    search.add_argument("--index", required=True)
    search.add_argument("--mode", choices=("bm25", "knn", "hybrid"), default="hybrid")
    search.add_argument("--vector-field", help="vector field, or a nested passages field (best passage per document)")
    search.add_argument(
        "--filter",
        action="append",
        default=[],
        metavar="EXPR",
        help="FIELD=VALUE, FIELD!=VALUE, FIELD>=N, FIELD<N... or a JSON clause (repeatable, ANDed)",
    )
    search.add_argument("--size", type=int, default=10)
    search.add_argument("--page", type=int, default=1, help="1-based page")
    search.add_argument("--explain", action="store_true", help="per-leg scores, ranks, weights, fused score")
    _add_personal(search)
    out = search.add_mutually_exclusive_group()
    out.add_argument("--console", action="store_true", help="print what ran as Dev Tools console text")
    out.add_argument("--json", action="store_true", help="print the response as JSON")
    _add_connection(search)
    _add_fusion(search)
    _add_correct(search)
    add_rerank_arguments(search)
    add_image_search_arguments(search)
    _add_embed_budget(search)
    search.set_defaults(func=_cmd_search)

    ev = subparsers.add_parser(
        "eval",
        help="nDCG@10 / recall@100 / MRR@10 per mode on a BEIR folder",
        description="Runs each judged query in each mode and compares modes pairwise "
        "(per-query differences, paired t-test and Wilcoxon).",
    )
    ev.add_argument("--index", required=True)
    ev.add_argument("--dataset", required=True, help="BEIR folder (corpus.jsonl, queries.jsonl, qrels/test.tsv)")
    ev.add_argument("--modes", default="bm25,knn,hybrid", help="comma-separated modes (default bm25,knn,hybrid)")
    ev.add_argument("--queries", help="queries.jsonl to use instead of the dataset's")
    ev.add_argument("--qrels", help="qrels .tsv to use instead of the dataset's qrels/test.tsv")
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.add_argument("--per-query", action="store_true", help="with --json: include per-query differences")
    _add_personal(ev)
    add_rerank_arguments(ev, with_switch=False)
    _add_correct(ev)
    _add_connection(ev)
    _add_fusion(ev)
    add_image_search_arguments(ev, example=False)  # the judged queries are texts: text-to-image only
    ev.set_defaults(func=_cmd_eval)

    load = subparsers.add_parser(
        "load",
        help="load a BEIR corpus as a plain BM25 index",
        description="Creates INDEX (title and text as BM25 fields, other keys kept) "
        "and bulk-loads corpus.jsonl in chunks.",
    )
    load.add_argument("--dataset", required=True, help="BEIR folder or corpus.jsonl")
    load.add_argument("--index", required=True)
    load.add_argument("--chunk-size", type=int, default=500, help="documents per _bulk (default 500)")
    load.add_argument("--shards", type=int, default=1)
    load.add_argument("--replicas", type=int, default=0)
    load.add_argument("--replace", action="store_true", help="delete the index first if it exists")
    load.add_argument(
        "--analyzer",
        choices=("english", "standard"),
        default="english",
        help="analyzer of every text field (default english: stemming and stopwords, as a real shop has; "
        "on an Elasticsearch without analysis-common: the standard analyzer with English stopwords)",
    )
    _add_connection(load, embed=False)
    load.set_defaults(func=_cmd_load)

    tune = subparsers.add_parser(
        "tune",
        help="choose the index's lexical form and fusion from judgments; record them in its _meta",
        description="Scores each lexical form alone, then every fusion candidate on the chosen lexical leg "
        "(nDCG@10, recall@100, and the share of bootstrap resamples of the queries in which each is within "
        "epsilon of the best), chooses the steadiest, and writes it to _meta.eshybrid.search_defaults "
        "(with the judgments' name and date), which HybridSearch then uses.",
    )
    tune.add_argument("--index", required=True)
    tune.add_argument("--dataset", required=True)
    tune.add_argument("--queries")
    tune.add_argument("--qrels")
    tune.add_argument("--epsilon", type=float, default=0.01, help="nDCG@10 distance that counts as holding")
    tune.add_argument("--bootstrap", type=int, default=1000, help="resamples of the queries")
    tune.add_argument("--seed", type=int, default=13)
    tune.add_argument("--dry-run", action="store_true", help="report only; leave _meta as it is")
    tune.add_argument("--json", action="store_true")
    _add_correct(tune)
    _add_connection(tune)
    tune.add_argument("--max-depth", type=int, default=100)
    _add_lexical(tune)
    tune.set_defaults(func=_cmd_tune)


# -- helpers -------------------------------------------------------------------------------


def _settings() -> ConnectionSettings:
    return ConnectionSettings()


def _cluster(args: argparse.Namespace) -> Any:
    return managed_cluster_settings(_settings(), args).connect(args.url)


def _embedder(args: argparse.Namespace, *, needed: bool) -> Any:
    """The query embedder; on the search path (``--embed-budget-s``) one try, no retries."""
    settings = _settings()
    url = getattr(args, "embed_url", None) or settings.embed_url
    if not url and not needed:
        return None
    from connector.services.embedding import EmbeddingClient

    # On the search path the search enforces the budget; the client makes one try (its own timeout is a bound on
    # an abandoned call, and the first call, which also checks the model, may take longer than the budget).
    options: dict[str, Any] = {"max_retries": 0} if hasattr(args, "embed_budget_s") else {}
    return EmbeddingClient.from_settings(settings, url, missing="knn and hybrid modes embed the query", **options)


def _embed_budget(args: argparse.Namespace) -> float | None:
    """``--embed-budget-s``, else the library's default; None (no budget) for commands without the flag."""
    if not hasattr(args, "embed_budget_s"):
        return None
    if args.embed_budget_s is not None:
        return float(args.embed_budget_s)
    from connector.search.options import DEFAULT_EMBED_BUDGET_S

    return DEFAULT_EMBED_BUDGET_S


def _parse_fields(spec: str | None) -> dict[str, float] | None:
    from connector.errors import ConfigError

    if not spec:
        return None
    fields: dict[str, float] = {}
    for part in spec.split(","):
        name, _, boost = part.strip().partition("^")
        try:
            fields[name] = float(boost) if boost else 1.0
        except ValueError as e:
            raise ConfigError(f"--fields: bad boost in {part!r}", field="fields") from e
    return fields


def _fusion(args: argparse.Namespace) -> Any:
    """The fusion the flags ask for, or ``None`` when they ask for none (the index's or library default)."""
    from connector.errors import ConfigError
    from connector.search.models import DEFAULT_FUSION, FusionConfig

    values: dict[str, Any] = {}
    for key in ("fusion", "rank_constant", "normalizer", "missing"):
        value = getattr(args, key, None)
        if value is not None:
            values["method" if key == "fusion" else key] = value
    if getattr(args, "weights", None):
        try:
            lexical, vector = (float(x) for x in args.weights.split(","))
        except ValueError as e:
            raise ConfigError("--weights must be two numbers: LEX,VEC", field="weights") from e
        values.update(lexical_weight=lexical, vector_weight=vector)
    elif values.get("method") == "linear":
        values.update(lexical_weight=0.5, vector_weight=0.5)
    elif values.get("method") == "adaptive":  # the library default's base weights
        values.update(lexical_weight=DEFAULT_FUSION.lexical_weight, vector_weight=DEFAULT_FUSION.vector_weight)
    if not values:
        return None
    try:
        return FusionConfig(**values)
    except ValueError as e:
        raise ConfigError(f"bad fusion settings: {e}", field="fusion") from e


@contextmanager
def _hybrid_search(args: argparse.Namespace, *, embed: bool) -> Iterator[Any]:
    """The ``HybridSearch`` the flags describe, on its own cluster connection; both closed afterwards.

    Args:
        embed: the command embeds queries (knn or hybrid mode), so an embedding service is required.
    """
    from connector.cli.rerank import rerank_config_from_args
    from connector.search import HybridSearch

    with _cluster(args) as cluster:
        embedder = _embedder(args, needed=embed)
        search = HybridSearch(
            cluster,
            args.index,
            embedder=embedder,
            fusion=_fusion(args),
            lexical_form=getattr(args, "lexical_form", None),
            tie_breaker=getattr(args, "tie_breaker", None),
            strategy=getattr(args, "strategy", "auto"),
            max_depth=args.max_depth,
            lexical_fields=_parse_fields(args.fields),
            rerank=rerank_config_from_args(args),
            vector_field=getattr(args, "vector_field", None),
            profiles_index=getattr(args, "profiles_index", None),
            correct=getattr(args, "correct", None),
            image=image_signal_from_args(args, _settings()),
            # eval and tune measure the vector leg: no budget there (a failure is an error, not a fallback)
            embed_budget_s=_embed_budget(args),
        )
        try:
            yield search
        finally:
            search.close()


def _dataset(args: argparse.Namespace) -> Any:
    from connector.quality.load import read_beir

    return read_beir(args.dataset, queries=getattr(args, "queries", None), qrels=getattr(args, "qrels", None))


# -- commands --------------------------------------------------------------------------------


def _cmd_search(args: argparse.Namespace) -> int:
    from connector.search.console import render_response
    from connector.search.explain import format_hits
    from connector.search.filters import parse_filter_expression
    from connector.search.request import SearchRequest

    filters = [parse_filter_expression(expr) for expr in args.filter]
    with _hybrid_search(args, embed=args.mode != "bm25") as search:
        request = SearchRequest(
            text=args.text,
            mode="hybrid+rerank" if search.rerank is not None and args.mode == "hybrid" else args.mode,
            filters=filters,
            size=args.size,
            page=args.page,
            explain=args.explain,
            user=args.user,
            personal_weight=args.personal_weight,
            image=query_image_from_args(args),
        )
        response = search.search(request.text, **request.options())
    if args.console:
        print(render_response(response), end="")
    elif args.json:
        print(response.model_dump_json(indent=2, exclude={"requests"}))
    else:
        print(format_hits(response))
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from connector.errors import ConfigError
    from connector.quality.commands import evaluate_dataset
    from connector.search.models import SEARCH_MODES

    modes = list(split_csv(args.modes))
    unknown = [m for m in modes if m not in SEARCH_MODES]
    if unknown or not modes:
        raise ConfigError(f"--modes: unknown {unknown}; use {', '.join(SEARCH_MODES)}", field="modes")
    dataset = _dataset(args)
    with _hybrid_search(args, embed=any(m != "bm25" for m in modes)) as search:
        report = evaluate_dataset(
            search, dataset, modes=modes, strategy=args.strategy, user=args.user, personal_weight=args.personal_weight
        )
    if args.json:
        print(json.dumps(report.to_json(per_query=args.per_query)))
    else:
        print(report.format_table())
    return 0


def _cmd_load(args: argparse.Namespace) -> int:
    from connector.quality.commands import load_beir_corpus

    with _cluster(args) as cluster:
        report = load_beir_corpus(
            cluster,
            args.index,
            args.dataset,
            shards=args.shards,
            replicas=args.replicas,
            chunk_size=args.chunk_size,
            replace=args.replace,
            analyzer=args.analyzer,
        )
    print(
        f"loaded {report.docs} documents into {report.index} in {report.chunks} chunks, {report.took_s:.1f}s"
        + (f"; {report.failed} failed" if report.failed else "")
    )
    for failure in report.failures[:5]:
        print(f"  failed {failure['_id']}: {failure['status']} {failure['error']}", file=sys.stderr)
    return 1 if report.failed else 0


def _cmd_tune(args: argparse.Namespace) -> int:
    from connector.quality.commands import tune_dataset

    dataset = _dataset(args)
    # tune has no fusion, strategy or rerank flags: it compares the fusions itself (it only fetches legs).
    with _hybrid_search(args, embed=True) as search:
        report = tune_dataset(
            search,
            dataset,
            qrels_path=args.qrels,
            write=not args.dry_run,
            epsilon=args.epsilon,
            bootstrap=args.bootstrap,
            seed=args.seed,
        )
    if args.json:
        print(json.dumps(report.to_json()))
        return 0
    print(report.lexical.format_table())
    print()
    print(report.fusion.format_table())
    chosen = report.search_defaults
    print(
        f"\nchosen: lexical {report.lexical.chosen.describe()}; fusion {report.fusion.best.fusion.describe()} "
        f"(judgments {chosen['judgments']['name']}, {chosen['judgments']['date']})"
    )
    where = f"written to {args.index} _meta.eshybrid.search_defaults" if report.written else "not written (--dry-run)"
    print(where)
    return 0
