"""``eshybrid migrate status|plan|up|down|stamp --index NAME``: versioned mapping migrations.

Revision parameters come from flags (``--vector-field``, ``--dims``, ``--model-id``...,
``--param key=value`` for any other); ``--embed-url`` fills ``dims`` and ``model_id`` from
the embedding service's ``/info``. State and lock live in the cluster (see :mod:`migrations`).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["register"]


def _add_target(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--index", required=True, help="target index or alias")
    parser.add_argument("--url", help="cluster URL (default $ESHYBRID_URL)")
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
    migrate = subparsers.add_parser(
        "migrate", help="versioned mapping migrations (state and lock in the cluster)",
        description="Apply the revisions of migrations/versions to one index: add the vector field, move the "
        "index behind an alias, change models. Two runners never apply the same revision at once.")
    actions = migrate.add_subparsers(dest="migrate_command", metavar="ACTION")
    actions.required = True

    status = actions.add_parser("status", help="current revision, head, pending revisions, history")
    _add_target(status)
    status.set_defaults(func=_cmd_status)

    plan = actions.add_parser("plan", help="what up/down would run (dry run)")
    _add_target(plan)
    _add_params(plan)
    plan.add_argument("--to", default=None, help="target revision (default head; with --down: required)")
    plan.add_argument("--down", action="store_true", help="plan a downgrade")
    plan.set_defaults(func=_cmd_plan)

    up = actions.add_parser("up", help="apply revisions up to --to (default head)")
    _add_target(up)
    _add_params(up)
    up.add_argument("--to", default="head", help="target revision (default head)")
    up.set_defaults(func=_cmd_up)

    down = actions.add_parser("down", help="undo revisions down to --to (base: all)")
    _add_target(down)
    _add_params(down)
    down.add_argument("--to", required=True, help="target revision, or base")
    down.set_defaults(func=_cmd_down)

    stamp = actions.add_parser("stamp", help="record a revision as applied without running it")
    _add_target(stamp)
    _add_params(stamp)
    stamp.add_argument("revision", help="revision id, head or base")
    stamp.set_defaults(func=_cmd_stamp)


def _params(args: argparse.Namespace) -> dict[str, Any]:
    from connector.errors import ConfigError

    params: dict[str, Any] = {}
    for name in ("vector_field", "dims", "model_id", "similarity", "source_fields", "template",
                 "new_vector_field", "new_dims", "new_model_id"):
        value = getattr(args, name, None)
        if value is not None:
            params[name] = value
    if params.get("template"):
        params["template"] = str(params["template"]).replace("\\n", "\n")
    for item in getattr(args, "param", []) or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--param takes KEY=VALUE, got {item!r}", field="param")
        params[key.strip()] = value
    embed_url = getattr(args, "embed_url", None)
    if embed_url:
        from connector.embedding_client import EmbeddingClient

        with EmbeddingClient(embed_url) as client:
            info = client.info()
        key_dims, key_model = ("new_dims", "new_model_id") if "new_vector_field" in params else ("dims", "model_id")
        params.setdefault(key_dims, info.dims)
        params.setdefault(key_model, info.model_id)
    return params


def _migrator(args: argparse.Namespace, *, with_params: bool = True) -> Any:
    from connector._connect import connect
    from connector.jobs.settings import ConnectionSettings
    from migrations import MigrationSettings, Migrator

    spec = ConnectionSettings().cluster_spec(args.url)
    basic = (spec.username, spec.password) if spec.username else None
    cluster = connect(spec.url, api_key=spec.api_key, basic_auth=basic, ca_certs=spec.ca_certs,
                      verify_certs=spec.verify_certs)
    overrides = {"versions_dir": args.versions_dir, "lock_wait_s": getattr(args, "lock_wait", None),
                 "lock_ttl_s": getattr(args, "lock_ttl", None)}
    base = MigrationSettings()
    settings = MigrationSettings.model_validate(
        {**base.model_dump(), **{k: v for k, v in overrides.items() if v is not None}})
    log = (lambda line: None) if args.json else print
    return Migrator(cluster, args.index, params=_params(args) if with_params else {}, settings=settings, log=log)


def _cmd_status(args: argparse.Namespace) -> int:
    migrator = _migrator(args, with_params=False)
    status = migrator.status()
    if args.json:
        print(json.dumps(status.as_dict()))
        return 0
    print(f"{status.index}: at {status.current or 'base'}, head {status.head}; "
          + ("up to date" if not status.pending else f"pending: {', '.join(status.pending)}"))
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
    applied = _migrator(args).upgrade(args.to)
    if args.json:
        print(json.dumps({"applied": applied}))
    elif applied:
        print(f"applied {', '.join(applied)}")
    return 0


def _cmd_down(args: argparse.Namespace) -> int:
    undone = _migrator(args).downgrade(args.to)
    if args.json:
        print(json.dumps({"undone": undone}))
    elif undone:
        print(f"undone {', '.join(undone)}")
    return 0


def _cmd_stamp(args: argparse.Namespace) -> int:
    _migrator(args).stamp(args.revision)
    if args.json:
        print(json.dumps({"stamped": args.revision}))
    return 0
