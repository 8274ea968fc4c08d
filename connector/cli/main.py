"""The ``eshybrid`` command line.

Each area registers its own sub-commands from a ``connector/cli/<area>.py``
module (``register(subparsers)``), imported lazily so ``--help`` stays fast and
the base install never imports torch or ray.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from connector.cli.common import import_optional
from connector.errors import EshybridError

__all__ = ["main", "build_parser"]

# (module, what it adds); a module that does not exist yet is skipped.
_AREAS = (
    "connector.cli.cluster",
    "connector.cli.serve",
    "connector.cli.search",
    "connector.cli.jobs",
    "connector.cli.calibration",
    "connector.cli.migrate",
    "connector.cli.kibana",
    "connector.cli.profiles",
    "connector.cli.query_encoder",
    "connector.cli.feedback",
    "connector.cli.workbench",
    "connector.cli.train",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="eshybrid",
        description="Upgrade Elasticsearch / OpenSearch to hybrid search in place.",
    )
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in _AREAS:
        module = import_optional(name)
        if module is not None:
            module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.verbose < 2:
        # elastic_transport logs every retried connection failure with its traceback at WARNING;
        # the command's own one-line error says the same (-vv shows them).
        logging.getLogger("elastic_transport").setLevel(logging.ERROR)
    try:
        rc = args.func(args)
    except EshybridError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
