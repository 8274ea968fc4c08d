"""``eshybrid calibration-sample``: the texts ``eshybrid serve embed --calibration-file`` calibrates static int8 on,
drawn from the shop's own index and rendered as the backfill renders them (see :mod:`connector.jobs.calibration`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from connector.cli.common import add_managed_cluster_flags, managed_cluster_settings, split_csv, unescape_template

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``calibration-sample``."""
    parser = subparsers.add_parser(
        "calibration-sample",
        help="write a seeded random sample of an index's texts, rendered as the backfill renders them",
        description="Draws --size documents of the index at random (seeded: the same seed draws the same "
        "sample), renders each with the fields and template the backfill uses and writes them for "
        "`eshybrid serve embed --backend openvino --quantize int8 --calibration-file FILE`. A name ending in "
        ".jsonl keeps each text exactly (one JSON string a line); any other name gets one text a line.",
    )
    parser.add_argument("--index", required=True, help="the index (or alias) the backfill reads")
    parser.add_argument("--out", required=True, type=Path, help="the file to write, e.g. calibration.jsonl")
    parser.add_argument("--size", type=int, default=300, help="texts in the sample (default 300)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random draw (default 0)")
    parser.add_argument("--url", help="cluster URL (default $ESHYBRID_URL)")
    add_managed_cluster_flags(parser)
    parser.add_argument(
        "--fields",
        type=split_csv,
        default=(),
        help="source fields of the text (default: those the index _meta records)",
    )
    parser.add_argument("--template", help="text template (default: the _meta one, or the fields joined)")
    parser.add_argument("--vector-field", default="embedding", help="vector field whose _meta names the fields")
    parser.set_defaults(func=_cmd_calibration_sample)


def _cmd_calibration_sample(args: argparse.Namespace) -> int:
    from connector.cluster.settings import ConnectionSettings
    from connector.errors import ConfigError
    from connector.jobs.calibration import calibration_sample, write_calibration_file

    cluster = managed_cluster_settings(ConnectionSettings(), args).cluster_spec(args.url).connect(detect=True)
    try:
        texts = calibration_sample(
            cluster,
            index=args.index,
            vector_field=args.vector_field,
            fields=args.fields,
            template=unescape_template(args.template),
            size=args.size,
            seed=args.seed,
        )
    finally:
        cluster.close()
    if not texts:
        raise ConfigError(f"{args.index} gave no text to sample; backfill it first or pass --fields", field="index")
    write_calibration_file(args.out, texts)
    print(f"wrote {len(texts)} texts of {args.index} (seed {args.seed}) to {args.out}")
    return 0
