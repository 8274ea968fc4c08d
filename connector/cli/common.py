"""Small helpers the ``connector/cli/*.py`` modules share (no heavy imports: ``--help`` stays fast)."""

from __future__ import annotations

import argparse
import importlib
from types import ModuleType
from typing import Any

__all__ = [
    "add_command_group",
    "add_managed_cluster_flags",
    "import_optional",
    "managed_cluster_settings",
    "split_csv",
    "unescape_template",
]

_MANAGED_FLAGS = ("cloud_id", "aws_region", "aws_service")


def add_managed_cluster_flags(parser: argparse.ArgumentParser) -> None:
    """``--cloud-id`` (Elastic Cloud) and ``--aws-region`` / ``--aws-service`` (Amazon OpenSearch Service, SigV4)."""
    parser.add_argument(
        "--cloud-id",
        help="Elastic Cloud deployment id, instead of --url (default $ESHYBRID_CLOUD_ID); credentials from "
        "$ESHYBRID_API_KEY or $ESHYBRID_USERNAME/$ESHYBRID_PASSWORD",
    )
    parser.add_argument(
        "--aws-region",
        help="sign every request with AWS SigV4 for Amazon OpenSearch Service in this region (default "
        "$ESHYBRID_AWS_REGION); credentials from the standard AWS chain (env, profile, role); needs eshybrid[aws]",
    )
    parser.add_argument(
        "--aws-service",
        choices=("es", "aoss"),
        help="es: an OpenSearch Service domain (default); aoss: an OpenSearch Serverless collection",
    )


def managed_cluster_settings(settings: Any, args: argparse.Namespace) -> Any:
    """``settings`` (a ``ConnectionSettings``) with the managed-cluster flags given on the command line."""
    update = {name: getattr(args, name) for name in _MANAGED_FLAGS if getattr(args, name, None)}
    return settings.model_copy(update=update) if update else settings


def import_optional(name: str) -> ModuleType | None:
    """The module ``name``, or None when that module itself does not exist (an area not written yet).

    An import that fails *inside* the module (a missing dependency of it, a typo) still raises.
    """
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name == name:
            return None
        raise


def split_csv(value: str) -> tuple[str, ...]:
    """``"title, text,"`` -> ``("title", "text")``: comma-separated names, blanks dropped."""
    return tuple(part.strip() for part in value.split(",") if part.strip())


def add_command_group(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    *,
    help: str,  # noqa: A002 - argparse's own name for it
    description: str,
    metavar: str = "ACTION",
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    """Add ``eshybrid NAME ACTION ...``, a command that needs one of its sub-commands.

    Returns:
        Where its sub-commands are added; the chosen one's name lands in ``args.<name>_command``.
    """
    parser = subparsers.add_parser(name, help=help, description=description)
    actions = parser.add_subparsers(dest=f"{name}_command", metavar=metavar)
    actions.required = True
    return actions


def unescape_template(value: str | None) -> str | None:
    """A text template from the command line: shells pass ``\\n`` / ``\\t`` literally; people mean them."""
    return None if value is None else value.replace("\\n", "\n").replace("\\t", "\t")
