"""``eshybrid migrate status|plan|up|down|stamp --index NAME``: versioned mapping migrations.

Revision parameters come from flags (``--vector-field``, ``--dims``, ``--model-id``...,
``--param key=value`` for any other); ``--embed-url`` fills ``dims`` and ``model_id`` from
the embedding service's ``/info``. State and lock live in the cluster (see :mod:`migrations`).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from connector.cli.common import (
    add_command_group,
    add_managed_cluster_flags,
    managed_cluster_settings,
    unescape_template,
)

__all__ = ["register"]


def _add_target(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--index", required=True, help="target index or alias")
    parser.add_argument("--url", help="cluster URL (default $ESHYBRID_URL)")
    add_managed_cluster_flags(parser)
    parser.add_argument("--versions-dir", help="folder of revision files (default: the shipped ones)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def _add_params(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("revision parameters")
    group.add_argument("--vector-field", help="vector field (default embedding)")
    group.add_argument("--dims", type=int, help="vector dimension")
    group.add_argument("--model-id", help="embedding model id")
    group.add_argument("--embed-url", help="read dims and model id from this embedding service's /info")
    group.add_argument("--similarity", choices=("cosine", "dot_product", "l2_norm", "max_inner_product"))
    group.add_argument("--source-fields", help="fields the embedded text is built from, e.g. title,description")
    group.add_argument("--template", help='text template, e.g. "{title}\\n{description}"')
    group.add_argument("--new-vector-field", help="model change: the new field")
    group.add_argument("--new-dims", type=int, help="model change: the new dimension")
    group.add_argument("--new-model-id", help="model change: the new model")
    group.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="any other parameter")
    lock = parser.add_argument_group("lock")
    lock.add_argument("--lock-wait", type=float, help="seconds to wait for another runner (default 0: exit)")
    lock.add_argument("--lock-ttl", type=float, help="seconds a lock lives without heartbeat (default 60)")


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``migrate`` and its sub-commands."""
    actions = add_command_group(
        subparsers,
        "migrate",
        help="versioned mapping migrations (state and lock in the cluster)",
        description="Apply the revisions of migrations/versions to one index: add the vector field, move the "
        "index behind an alias, change models. Two runners never apply the same revision at once.",
    )

    _add_action(actions, "status", _cmd_status, params=False, help="current revision, head, pending revisions, history")

    plan = _add_action(actions, "plan", _cmd_plan, help="what up/down would run (dry run)")
    plan.add_argument("--to", default=None, help="target revision (default head; with --down: required)")
    plan.add_argument("--down", action="store_true", help="plan a downgrade")

    up = _add_action(actions, "up", _cmd_up, help="apply revisions up to --to (default head)")
    up.add_argument("--to", default="head", help="target revision (default head)")

    down = _add_action(actions, "down", _cmd_down, help="undo revisions down to --to (base: all)")
    down.add_argument("--to", required=True, help="target revision, or base")

    stamp = _add_action(actions, "stamp", _cmd_stamp, help="record a revision as applied without running it")
    stamp.add_argument("revision", help="revision id, head or base")


def _add_action(
    actions: argparse._SubParsersAction,  # type: ignore[type-arg]
    name: str,
    func: Callable[[argparse.Namespace], int],
    *,
    help: str,  # noqa: A002 - argparse's own name for it
    params: bool = True,
) -> argparse.ArgumentParser:
    """One ``migrate`` action: the target options, the revision parameters unless ``params=False``."""
    parser: argparse.ArgumentParser = actions.add_parser(name, help=help)
    _add_target(parser)
    if params:
        _add_params(parser)
    parser.set_defaults(func=func)
    return parser


def _params(args: argparse.Namespace) -> dict[str, Any]:
    from connector.errors import ConfigError

    params: dict[str, Any] = {}
    for name in (
        "vector_field",
        "dims",
        "model_id",
        "similarity",
        "source_fields",
        "template",
        "new_vector_field",
        "new_dims",
        "new_model_id",
    ):
        value = getattr(args, name, None)
        if value is not None:
            params[name] = value
    if params.get("template"):
        params["template"] = unescape_template(str(params["template"]))
    for item in getattr(args, "param", []) or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--param takes KEY=VALUE, got {item!r}", field="param")
        params[key.strip()] = value
    embed_url = getattr(args, "embed_url", None)
    if embed_url:
        from connector.cluster.settings import ConnectionSettings
        from connector.services.embedding import EmbeddingClient

        with EmbeddingClient.from_settings(ConnectionSettings(), embed_url) as client:  # ESHYBRID_EMBED_API_KEY too
            info = client.info()
        key_dims, key_model = ("new_dims", "new_model_id") if "new_vector_field" in params else ("dims", "model_id")
        params.setdefault(key_dims, info.dims)
        params.setdefault(key_model, info.model_id)
    return params


def _migrator(args: argparse.Namespace, *, with_params: bool = True) -> Any:
    from connector.cluster.settings import ConnectionSettings
    from migrations import MigrationSettings, Migrator

    cluster = managed_cluster_settings(ConnectionSettings(), args).connect(args.url)
    overrides = {
        "versions_dir": args.versions_dir,
        "lock_wait_s": getattr(args, "lock_wait", None),
        "lock_ttl_s": getattr(args, "lock_ttl", None),
    }
    base = MigrationSettings()
    settings = MigrationSettings.model_validate(
        {**base.model_dump(), **{k: v for k, v in overrides.items() if v is not None}}
    )
    log = (lambda line: None) if args.json else print
    return Migrator(cluster, args.index, params=_params(args) if with_params else {}, settings=settings, log=log)


def _cmd_status(args: argparse.Namespace) -> int:
    migrator = _migrator(args, with_params=False)
    status = migrator.status()
    if args.json:
        print(json.dumps(status.as_dict()))
        return 0
    print(
        f"{status.index}: at {status.current or 'base'}, head {status.head}; "
        + ("up to date" if not status.pending else f"pending: {', '.join(status.pending)}")
    )
    for entry in status.history[-10:]:
        print(f"  {entry.get('at')} {entry.get('direction'):5} {entry.get('revision')} by {entry.get('owner')}")
    return 0


def _cmd_plan(args: argparse.Namespace) -> int:
    from connector.errors import ConfigError

    migrator = _migrator(args)
    if args.down and args.to is None:
        raise ConfigError("plan --down needs --to (a revision or base)", field="to")
    steps = migrator.plan(args.to or "head", direction="down" if args.down else "up")
    if args.json:
        print(json.dumps([step.__dict__ for step in steps]))
        return 0
    if not steps:
        print("nothing to run")
    for step in steps:
        missing = f"  (missing: {', '.join(step.missing_params)})" if step.missing_params else ""
        print(f"{step.direction:4} {step.name}: {step.description}{missing}")
    return 0


def _cmd_up(args: argparse.Namespace) -> int:
    return _print_revisions("applied", _migrator(args).upgrade(args.to), as_json=args.json)


def _cmd_down(args: argparse.Namespace) -> int:
    return _print_revisions("undone", _migrator(args).downgrade(args.to), as_json=args.json)


def _print_revisions(done: str, revisions: list[str], *, as_json: bool) -> int:
    if as_json:
        print(json.dumps({done: revisions}))
    elif revisions:
        print(f"{done} {', '.join(revisions)}")
    return 0


def _cmd_stamp(args: argparse.Namespace) -> int:
    _migrator(args).stamp(args.revision)
    if args.json:
        print(json.dumps({"stamped": args.revision}))
    return 0
