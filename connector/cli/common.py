"""Small helpers the ``connector/cli/*.py`` modules share (no heavy imports: ``--help`` stays fast)."""

from __future__ import annotations

import argparse
import importlib
from types import ModuleType

__all__ = ["add_command_group", "import_optional", "split_csv", "unescape_template"]


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
