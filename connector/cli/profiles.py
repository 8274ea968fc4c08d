"""``eshybrid profiles build``: shopper profile vectors from interaction events (issue 18).

Argparse and printing only; the work is :func:`connector.jobs.profiles.build_profiles`.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from connector.cli.common import add_command_group

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``profiles`` command and its ``build`` sub-command."""
    actions = add_command_group(
        subparsers,
        "profiles",
        help="shopper profiles (personalized search) from interaction events",
        description="A profile is the kind-weighted, time-decayed mean of the vectors of the products a user "
        "viewed, put in a cart or bought, read from the product index, and the same weights summed per value of "
        "the affinity fields (brand, category, price band...).",
    )
    build = actions.add_parser(
        "build",
        help="build or update profiles from a JSON-lines events file or the UBI events index",
        description='Events: one JSON object per line, {"user_id", "product_id", "kind": view|cart|purchase, '
        '"timestamp": ISO 8601 or epoch seconds}. Existing profiles are updated with the new events. Bad '
        "events are counted and reported, never fatal.",
    )
    source = build.add_mutually_exclusive_group(required=True)
    source.add_argument("--events", type=Path, help="events file (JSON lines)")
    source.add_argument(
        "--ubi-events",
        nargs="?",
        const="ubi_events",
        metavar="INDEX",
        help="read the UBI events index instead (default ubi_events): client_id is the shopper, clicks are "
        "views, add_to_cart carts, purchases purchases",
    )
    build.add_argument("--index", required=True, help="the product index (or alias) whose vectors make the profiles")
    build.add_argument("--profiles-index", help="where profiles are stored (default eshybrid-profiles-<index>)")
    build.add_argument("--vector-field", help="product vector field (default: the one the index _meta records)")
    build.add_argument(
        "--half-life-days", type=float, default=None, help="decay half-life in days (default 30; 0: none)"
    )
    build.add_argument(
        "--kind-weights", help='weights per kind as JSON (default {"view": 1, "cart": 3, "purchase": 5})'
    )
    build.add_argument("--keep-history", action="store_true", help="also store the raw events in each profile")
    build.add_argument(
        "--affinity-fields",
        help="comma-separated keyword fields whose values make the affinities (e.g. brand.keyword,category); "
        "default: the keyword fields with a moderate number of distinct values; '' for none",
    )
    build.add_argument("--url", help="cluster URL (default $ESHYBRID_URL); credentials from $ESHYBRID_API_KEY "
                       "or $ESHYBRID_USERNAME/$ESHYBRID_PASSWORD, CA from $ESHYBRID_CA_CERTS")  # fmt: skip
    build.add_argument("--json", action="store_true", help="print the report as JSON")
    build.set_defaults(func=_cmd_build)


def _cmd_build(args: argparse.Namespace) -> int:
    from connector.cluster.settings import ConnectionSettings
    from connector.errors import ConfigError
    from connector.jobs.profiles import DEFAULT_HALF_LIFE_DAYS, DEFAULT_KIND_WEIGHTS, build_profiles, read_events

    if args.events is not None and not args.events.is_file():
        raise ConfigError(f"events file {str(args.events)!r} does not exist", field="events")
    kind_weights = dict(DEFAULT_KIND_WEIGHTS)
    if args.kind_weights:
        try:
            parsed = json.loads(args.kind_weights)
            kind_weights = {str(k): float(v) for k, v in parsed.items()}
        except (ValueError, TypeError, AttributeError) as e:
            raise ConfigError(f"--kind-weights must be a JSON object of numbers: {e}", field="kind_weights") from e
    half_life = DEFAULT_HALF_LIFE_DAYS if args.half_life_days is None else args.half_life_days
    fields = None if args.affinity_fields is None else [f.strip() for f in args.affinity_fields.split(",") if f.strip()]
    with ConnectionSettings().connect(args.url) as cluster:
        report = build_profiles(
            cluster,
            read_events(args.events) if args.events is not None else _ubi_events(cluster, args.ubi_events),
            index=args.index,
            profiles_index=args.profiles_index,
            vector_field=args.vector_field,
            kind_weights=kind_weights,
            half_life_days=half_life,
            keep_history=args.keep_history,
            affinity_fields=fields,
        )
    out = report.to_json()
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        bad = ", ".join(f"{k} {v}" for k, v in out["bad_events"].items()) or "none"
        print(
            f"profiles of {args.index} (model {report.model_id}, affinity fields "
            f"{', '.join(report.affinity_fields) or 'none'}) in {report.profiles_index}: "
            f"{report.profiles_created} created, {report.profiles_updated} updated, {report.profiles_reset} rebuilt "
            f"(other model); events {report.events_used} used of {report.events_read}; bad events: {bad}; "
            f"{report.took_s:.1f}s"
        )
        for sample in report.bad_samples[:5]:
            print(f"  line {sample.line}: {sample.reason_code}: {sample.reason}")
        if report.write_failures:
            print(f"  {report.write_failures} profiles could not be written (see the log)")
    return 1 if report.write_failures else 0


def _ubi_events(cluster: Any, index: str) -> Iterator[tuple[int, Any]]:
    from connector.feedback.store import read_events
    from connector.jobs.affinities import profile_events_from_ubi

    return profile_events_from_ubi(read_events(cluster, index))
