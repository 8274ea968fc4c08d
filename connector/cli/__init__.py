"""The ``eshybrid`` command line: argparse and printing only; each command calls a library function."""

from __future__ import annotations

from connector.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
