"""``eshybrid profiles build``: shopper profile vectors from interaction events (issue 18).

Argparse and printing only; the work is :func:`connector.jobs.profiles.build_profiles`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from connector.cli.common import add_command_group

__all__ = ["register"]


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add the ``profiles`` command and its ``build`` sub-command."""
    actions = add_command_group(
        subparsers,
        "profiles",
        help="shopper profiles (personalized search) from interaction events",
        description="A profile is the kind-weighted, time-decayed mean of the vectors of the products a user "
        "viewed, put in a cart or bought, read from the product index.",
    )
    build = actions.add_parser(
        "build",
        help="build or update profiles from a JSON-lines events file",
        description='Events: one JSON object per line, {"user_id", "product_id", "kind": view|cart|purchase, '
        '"timestamp": ISO 8601 or epoch seconds}. Existing profiles are updated with the new events. Bad '
        "events are counted and reported, never fatal.",
    )
    build.add_argument("--events", type=Path, required=True, help="events file (JSON lines)")
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
    build.add_argument("--url", help="cluster URL (default $ESHYBRID_URL); credentials from $ESHYBRID_API_KEY "
                       "or $ESHYBRID_USERNAME/$ESHYBRID_PASSWORD, CA from $ESHYBRID_CA_CERTS")  # fmt: skip
    build.add_argument("--json", action="store_true", help="print the report as JSON")
    build.set_defaults(func=_cmd_build)


def _cmd_build(args: argparse.Namespace) -> int:
    from connector.cluster.settings import ConnectionSettings
    from connector.errors import ConfigError
    from connector.jobs.profiles import DEFAULT_HALF_LIFE_DAYS, DEFAULT_KIND_WEIGHTS, build_profiles, read_events

    if not args.events.is_file():
        raise ConfigError(f"events file {str(args.events)!r} does not exist", field="events")
    kind_weights = dict(DEFAULT_KIND_WEIGHTS)
    if args.kind_weights:
        try:
            parsed = json.loads(args.kind_weights)
            kind_weights = {str(k): float(v) for k, v in parsed.items()}
        except (ValueError, TypeError, AttributeError) as e:
            raise ConfigError(f"--kind-weights must be a JSON object of numbers: {e}", field="kind_weights") from e
    half_life = DEFAULT_HALF_LIFE_DAYS if args.half_life_days is None else args.half_life_days
    with ConnectionSettings().connect(args.url) as cluster:
        report = build_profiles(
            cluster,
            read_events(args.events),
            index=args.index,
            profiles_index=args.profiles_index,
            vector_field=args.vector_field,
            kind_weights=kind_weights,
            half_life_days=half_life,
            keep_history=args.keep_history,
        )
    out = report.to_json()
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        bad = ", ".join(f"{k} {v}" for k, v in out["bad_events"].items()) or "none"
        print(
            f"profiles of {args.index} (model {report.model_id}) in {report.profiles_index}: "
            f"{report.profiles_created} created, {report.profiles_updated} updated, {report.profiles_reset} rebuilt "
            f"(other model); events {report.events_used} used of {report.events_read}; bad events: {bad}; "
            f"{report.took_s:.1f}s"
        )
        for sample in report.bad_samples[:5]:
            print(f"  line {sample.line}: {sample.reason_code}: {sample.reason}")
        if report.write_failures:
            print(f"  {report.write_failures} profiles could not be written (see the log)")
    return 1 if report.write_failures else 0
