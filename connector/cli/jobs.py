"""``eshybrid backfill`` and ``eshybrid reindex``: the upgrade jobs (see :mod:`connector.jobs`).

The cluster and the embedding service come from ``--url`` / ``--embed-url`` or the
environment (``ESHYBRID_URL``, ``ESHYBRID_API_KEY`` or ``ESHYBRID_USERNAME`` +
``ESHYBRID_PASSWORD``, ``ESHYBRID_CA_CERTS``, ``ESHYBRID_EMBED_URL``); job sizes from
``ESHYBRID_JOB_*`` (see :class:`connector.jobs.settings.JobSettings`), overridden by flags.
"""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

from connector.cli.common import add_managed_cluster_flags, managed_cluster_settings, split_csv, unescape_template

__all__ = ["register"]


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="cluster URL (default $ESHYBRID_URL)")
    add_managed_cluster_flags(parser)
    parser.add_argument("--embed-url", help="embedding service base URL (default $ESHYBRID_EMBED_URL)")
    parser.add_argument(
        "--fields",
        type=split_csv,
        default=(),
        help="source fields to embed, e.g. title,description (default: those the index _meta records)",
    )
    parser.add_argument(
        "--template", help='text template, e.g. "{title}\\n{description}" (default: the _meta one, or fields joined)'
    )
    parser.add_argument("--vector-field", default="embedding", help="vector field (default embedding)")
    parser.add_argument("--slices", type=int, default=1, help="parallel slices of the scan (default 1)")
    parser.add_argument(
        "--ray-address",
        help="run the slices as Ray tasks on this Ray cluster (e.g. auto, or HOST:PORT of its head); "
        "needs --embed-url, which every task calls",
    )
    parser.add_argument("--job-id", help="name of the job (default generated); with --resume the job to continue")
    parser.add_argument(
        "--resume", action="store_true", help="continue a killed job (the named one, or the latest unfinished one)"
    )
    tuning = parser.add_argument_group("tuning (defaults from ESHYBRID_JOB_*)")
    tuning.add_argument("--page-size", type=int, help="documents per page")
    tuning.add_argument("--embed-workers", type=int, help="threads sending texts to the embedding service")
    tuning.add_argument("--write-workers", type=int, help="threads sending bulk requests")
    tuning.add_argument("--max-text-chars", type=int, help="longer texts go to the dead-letter index")
    tuning.add_argument("--pit-keep-alive", help="point-in-time keep-alive, e.g. 10m")
    out = parser.add_argument_group("output")
    out.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bar (default: when stderr is a terminal; else log lines)",
    )
    out.add_argument("--json", action="store_true", help="print the summary as JSON")
    out.add_argument(
        "--metrics-textfile",
        metavar="DIR",
        help="write the run's Prometheus series into DIR (node_exporter's textfile collector)",
    )
    out.add_argument("--pushgateway", metavar="HOST:PORT", help="push the run's Prometheus series to a Pushgateway")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``backfill`` and ``reindex``."""
    backfill = subparsers.add_parser(
        "backfill",
        help="embed the documents of an index and write the vectors into it, in place",
        description="Reads with a sliced point in time, embeds through the embedding service, writes the "
        "vector and eshybrid_meta.<field> with conditional bulk partial updates; resumable; a re-run embeds "
        "only changed documents.",
    )
    backfill.add_argument("--index", required=True, help="index (or alias of one index) to fill")
    _add_common(backfill)
    backfill.add_argument(
        "--no-catch-up",
        dest="catch_up",
        action="store_false",
        help="skip the pass over documents written during the scan",
    )
    cut = backfill.add_argument_group("passages (fill a nested passages field, migration 0006)")
    cut.add_argument(
        "--passages", action="store_true", help="cut each text into passages; --vector-field names the nested field"
    )
    cut.add_argument("--passage-tokens", type=int, help="tokens per passage (default: the model's window)")
    cut.add_argument("--passage-overlap", type=int, default=1, help="sentences shared by neighbours (default 1)")
    cut.add_argument("--max-passages", type=int, default=16, help="passages per document at most (default 16)")
    cut.add_argument("--passage-prefix", help="template put before every passage, e.g. '{title}'")
    backfill.add_argument(
        "--images",
        action="store_true",
        help="--fields names one image URL/path field; embed the images with the image service at --embed-url "
        "into --vector-field (default image_embedding), mapping it first",
    )
    backfill.add_argument("--image-root", help="with --images: folder relative image paths are read under")
    backfill.set_defaults(func=_cmd_backfill)

    reindex = subparsers.add_parser(
        "reindex",
        help="copy into <alias>-v<k> with the hybrid mapping, embed, swap the alias atomically",
        description="Queries through the alias keep answering during the whole run; the old index is kept "
        "unless --delete-old (a concrete index named like the alias is replaced in the swap).",
    )
    reindex.add_argument("--alias", required=True, help="the name the application queries")
    reindex.add_argument("--source", help="index to copy (default: what --alias names now)")
    _add_common(reindex)
    reindex.add_argument("--copy-only", action="store_true", help="copy without embedding")
    reindex.add_argument(
        "--similarity", default="cosine", choices=("cosine", "dot_product", "l2_norm", "max_inner_product")
    )
    reindex.add_argument("--delete-old", action="store_true", help="delete the old index after the swap")
    reindex.set_defaults(func=_cmd_reindex)


def _job_settings(args: argparse.Namespace) -> Any:
    from connector.jobs.settings import JobSettings

    return JobSettings().with_overrides(
        page_size=args.page_size,
        embed_workers=args.embed_workers,
        write_workers=args.write_workers,
        max_text_chars=args.max_text_chars,
        pit_keep_alive=args.pit_keep_alive,
    )


def _connections(args: argparse.Namespace) -> tuple[Any, Any, str | None]:
    from connector.cluster.settings import ConnectionSettings

    settings = managed_cluster_settings(ConnectionSettings(), args)
    spec = settings.cluster_spec(args.url)
    return spec.connect(detect=True), spec, args.embed_url or settings.embed_url


def _embedder(url: str | None, settings: Any) -> Any:
    from connector.cluster.settings import ConnectionSettings
    from connector.services.embedding import EmbeddingClient

    return EmbeddingClient.from_settings(
        ConnectionSettings(), url, timeout_s=60.0, max_retries=settings.embed_max_retries
    )


def _quiet_transport(args: argparse.Namespace) -> None:
    if args.verbose == 0:
        # Progress lines are INFO; the cluster client's per-request lines stay out.
        logging.getLogger("connector.jobs").setLevel(logging.INFO)
        logging.getLogger("elastic_transport").setLevel(logging.WARNING)


def _finish(summary: Any, args: argparse.Namespace) -> int:
    from connector.jobs.metrics import export_job_metrics

    export_job_metrics(summary, textfile_dir=args.metrics_textfile, pushgateway=args.pushgateway)
    return _print_summary(summary, args.json)


def _print_summary(summary: Any, as_json: bool) -> int:
    if as_json:
        print(json.dumps(summary.as_dict()))
    else:
        total = summary.total
        print(
            f"{summary.kind} {summary.job_id}: {summary.status}; read {total.read}, updated {total.updated}, "
            f"skipped {total.skipped}, dead letters {total.dead_lettered} (index {summary.dead_letter_index}), "
            f"vanished {total.vanished}; {summary.docs_per_s:.0f} docs/s; "
            f"{'reconciles' if summary.reconciles else 'DOES NOT RECONCILE'}"
        )
        if summary.alias:
            print(f"alias {summary.alias} -> {summary.target_index}")
    return 0 if summary.reconciles else 1


def _passage_policy(args: argparse.Namespace) -> Any:
    if not args.passages:
        return None
    from connector.jobs.passages import PassagePolicy

    return PassagePolicy(
        max_tokens=args.passage_tokens,
        overlap_sentences=args.passage_overlap,
        max_passages=args.max_passages,
        prefix_template=unescape_template(args.passage_prefix),
    )


def _cmd_backfill(args: argparse.Namespace) -> int:
    from connector.jobs.backfill import BackfillConfig, run_backfill

    _quiet_transport(args)
    settings = _job_settings(args)
    cluster, spec, embed_url = _connections(args)
    images = getattr(args, "images", False)
    config = BackfillConfig(
        index=args.index,
        fields=args.fields,
        template=unescape_template(args.template),
        vector_field="image_embedding" if images and args.vector_field == "embedding" else args.vector_field,
        slices=args.slices,
        job_id=args.job_id,
        resume=args.resume,
        catch_up=args.catch_up,
        ray_address=args.ray_address,
        embed_url=embed_url,
        show_progress=args.progress,
        settings=settings,
        passages=_passage_policy(args),
    )
    embedder = _embedder(embed_url, settings)
    try:
        if images:
            from connector.jobs.images import ImageFetchSettings, run_image_backfill

            fetch = ImageFetchSettings(path_root=args.image_root)
            summary = run_image_backfill(cluster, config, client=embedder, fetch=fetch, cluster_spec=spec)
        else:
            summary = run_backfill(cluster, config, embedder=embedder, cluster_spec=spec)
    finally:
        embedder.close()
        cluster.close()
    return _finish(summary, args)


def _cmd_reindex(args: argparse.Namespace) -> int:
    from connector.jobs.reindex import ReindexConfig, run_reindex

    _quiet_transport(args)
    settings = _job_settings(args)
    cluster, spec, embed_url = _connections(args)
    config = ReindexConfig(
        alias=args.alias,
        source=args.source,
        fields=args.fields,
        template=unescape_template(args.template),
        vector_field=args.vector_field,
        similarity=args.similarity,
        delete_old=args.delete_old,
        copy_only=args.copy_only,
        slices=args.slices,
        job_id=args.job_id,
        resume=args.resume,
        ray_address=args.ray_address,
        embed_url=embed_url,
        show_progress=args.progress,
        settings=settings,
    )
    embedder = None if args.copy_only else _embedder(embed_url, settings)
    try:
        summary = run_reindex(cluster, config, embedder=embedder, cluster_spec=spec)
    finally:
        if embedder is not None:
            embedder.close()
        cluster.close()
    return _finish(summary, args)
