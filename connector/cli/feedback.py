"""``eshybrid judgments | experiment report|promote | events import|export``: the feedback loop.

Records come from the UBI indexes (``--url``; ``--queries-index`` / ``--events-index``, default
``ubi_queries`` / ``ubi_events``) or from JSON lines (``--queries-jsonl Q --events-jsonl E``, no
cluster needed).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from connector.cli.common import add_command_group, add_managed_cluster_flags, managed_cluster_settings

__all__ = ["register"]


def _add_sources(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("records (JSON lines, or the UBI indexes of --url)")
    group.add_argument("--queries-jsonl", help="query records, one a line (with --events-jsonl: no cluster needed)")
    group.add_argument("--events-jsonl", help="event records, one a line")
    group.add_argument("--url", help="cluster URL (default $ESHYBRID_URL)")
    add_managed_cluster_flags(parser)
    group.add_argument("--queries-index", default="ubi_queries", help="query records index (default ubi_queries)")
    group.add_argument("--events-index", default="ubi_events", help="event records index (default ubi_events)")


def _cluster(args: argparse.Namespace) -> Any:
    from connector.cluster.settings import ConnectionSettings

    return managed_cluster_settings(ConnectionSettings(), args).connect(args.url)


def _records(args: argparse.Namespace) -> tuple[list[Any], list[Any]]:
    from connector.errors import ConfigError

    if bool(args.queries_jsonl) != bool(args.events_jsonl):
        raise ConfigError("give both --queries-jsonl and --events-jsonl, or neither (read the indexes)", field="jsonl")
    if args.queries_jsonl:
        from connector.ubi.jsonl import read_events_jsonl, read_queries_jsonl

        return list(read_queries_jsonl(args.queries_jsonl)), list(read_events_jsonl(args.events_jsonl))
    from connector.feedback.store import read_events, read_queries

    with _cluster(args) as cluster:
        return list(read_queries(cluster, args.queries_index)), list(read_events(cluster, args.events_index))


def _judgments(args: argparse.Namespace) -> int:
    from connector.feedback.judgments import build_judgments, write_beir

    queries, events = _records(args)
    judgments = build_judgments(
        queries,
        events,
        model=args.click_model,
        depth=args.depth,
        min_impressions=args.min_impressions,
        cart_weight=args.cart_weight,
        purchase_weight=args.purchase_weight,
    )
    root = write_beir(judgments, args.out)
    summary = judgments.to_json()
    print(json.dumps({**summary, "out": str(root)}) if args.json else _judgments_text(summary, str(root)))
    return 0


def _judgments_text(summary: dict[str, Any], root: str) -> str:
    grades = ", ".join(f"{g}: {n}" for g, n in summary["grades"].items())
    return (
        f"{summary['judged_pairs']} graded pairs for {summary['queries']} queries from {summary['searches']} searches "
        f"(click model {summary['model']}; grades {grades})\nwrote {root} (queries.jsonl, qrels/test.tsv); "
        f"evaluate with: eshybrid eval INDEX --dataset {root}"
    )


def _report(args: argparse.Namespace) -> tuple[Any, Any]:
    from connector.feedback.experiment import ExperimentSpec, report_experiment

    spec = ExperimentSpec.from_file(args.experiment)
    queries, events = _records(args)
    return spec, report_experiment(spec, queries, events)


def _experiment_report(args: argparse.Namespace) -> int:
    _, report = _report(args)
    print(json.dumps(report.to_json()) if args.json else report.format_text())
    return 0


def _experiment_promote(args: argparse.Namespace) -> int:
    from connector.feedback.experiment import promote

    spec, report = _report(args)
    with _cluster(args) as cluster:
        written = promote(cluster, args.index, spec, report, force=args.force)
    print(json.dumps(written) if args.json else f"{report.format_text()}\nwrote search_defaults of {args.index}")
    return 0


def _events_import(args: argparse.Namespace) -> int:
    from connector.feedback.store import import_records

    with _cluster(args) as cluster:
        counts = import_records(
            cluster,
            queries_jsonl=args.queries_jsonl,
            events_jsonl=args.events_jsonl,
            queries_index=args.queries_index,
            events_index=args.events_index,
        )
    print(json.dumps(counts.to_json()))
    return 1 if counts.failed else 0


def _events_export(args: argparse.Namespace) -> int:
    from connector.feedback.store import export_records

    with _cluster(args) as cluster:
        counts = export_records(
            cluster,
            queries_jsonl=args.queries_jsonl,
            events_jsonl=args.events_jsonl,
            queries_index=args.queries_index,
            events_index=args.events_index,
        )
    print(json.dumps(counts.to_json()))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``judgments``, ``experiment`` and ``events``."""
    from connector.feedback.clickmodels import CLICK_MODELS
    from connector.feedback.judgments import DEFAULT_CLICK_MODEL

    judge = subparsers.add_parser(
        "judgments",
        help="graded judgments (a BEIR folder) from shoppers' clicks, corrected for position bias",
        description="Read UBI query and event records, fit a click model and write queries.jsonl + "
        "qrels/test.tsv (grades 0-3) that eval and tune take.",
    )
    judge.add_argument("--out", required=True, help="the BEIR folder to write")
    judge.add_argument("--click-model", choices=CLICK_MODELS, default=DEFAULT_CLICK_MODEL, help="default %(default)s")
    judge.add_argument("--depth", type=int, default=10, help="hits a shopper could see per search (default 10)")
    judge.add_argument("--min-impressions", type=int, default=10, help="impressions before a pair is graded")
    judge.add_argument("--cart-weight", type=float, default=1.0, help="weight of add-to-carts per click")
    judge.add_argument("--purchase-weight", type=float, default=2.0, help="weight of purchases per click")
    judge.add_argument("--json", action="store_true", help="print the summary as JSON")
    _add_sources(judge)
    judge.set_defaults(func=_judgments)

    experiment = add_command_group(
        subparsers,
        "experiment",
        help="interleaving and A/B experiments: report, promote the winner",
        description="Compare two search configurations on shoppers' clicks (EXPERIMENT.json names the arms).",
    )
    report = experiment.add_parser("report", help="wins/losses/ties, the preference, p-value, searches needed")
    promote = experiment.add_parser("promote", help="write the winner into the index's search_defaults (_meta)")
    for parser in (report, promote):
        parser.add_argument("experiment", help="the experiment file (JSON: name, mode, arms)")
        parser.add_argument("--json", action="store_true", help="print JSON")
        _add_sources(parser)
    promote.add_argument("--index", required=True, help="the product index whose search_defaults change")
    promote.add_argument("--force", action="store_true", help="promote the leader even without significance")
    report.set_defaults(func=_experiment_report)
    promote.set_defaults(func=_experiment_promote)

    events = add_command_group(
        subparsers,
        "events",
        help="UBI query and event records: JSON lines <-> the ubi_queries / ubi_events indexes",
        description="Import records from JSON lines (validated) or export the indexes to JSON lines.",
    )
    imp = events.add_parser("import", help="bulk-index JSON lines into the UBI indexes")
    exp = events.add_parser("export", help="write the UBI indexes as JSON lines")
    for parser in (imp, exp):
        _add_sources(parser)
    imp.set_defaults(func=_events_import)
    exp.set_defaults(func=_events_export)
