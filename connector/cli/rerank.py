"""Command-line flags that build a :class:`~connector.search.rerank.RerankConfig`.

For ``eshybrid search --rerank`` and ``eshybrid eval --modes ...,hybrid+rerank``::

    add_rerank_arguments(parser)
    ...
    config = rerank_config_from_args(args)   # None when no rerank flag was given

Unset options come from ``ESHYBRID_SEARCH_RERANK_*`` env vars (``..._URL``, ``..._API_KEY``),
then defaults.  No sub-command is registered here.

This is the composition root of reranking: the library (``connector.search``) takes any object with
``score()`` and never imports the :mod:`rerank` package; here ``--rerank-model`` gets a loader from it.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from pydantic import ValidationError

import rerank
from connector.cli.common import split_csv
from connector.errors import ConfigError
from connector.search.rerank import RerankConfig, SupportsScore

__all__ = ["add_rerank_arguments", "rerank_config_from_args", "load_in_process"]


def add_rerank_arguments(parser: argparse.ArgumentParser, *, with_switch: bool = True) -> None:
    """Add the ``--rerank*`` options to ``parser``.

    Args:
        with_switch: also add a bare ``--rerank`` flag (search); eval selects reranking by mode instead.
    """
    group = parser.add_argument_group("reranking")
    if with_switch:
        group.add_argument(
            "--rerank", action="store_true", help="rerank the fused top k (implied by --rerank-url / --rerank-model)"
        )
    group.add_argument(
        "--rerank-url", default=None, metavar="URL", help="rerank service base URL, e.g. http://127.0.0.1:8000/rerank"
    )
    group.add_argument(
        "--rerank-model",
        default=None,
        metavar="PATH_OR_ID",
        help="rerank in-process with this checkpoint (needs eshybrid[serve])",
    )
    group.add_argument("--rerank-top-k", type=int, default=None, metavar="K", help="hits to rerank (default 50)")
    group.add_argument(
        "--rerank-timeout-s",
        type=float,
        default=None,
        metavar="S",
        help="rerank budget; over it the fused order is returned (default 2)",
    )
    group.add_argument(
        "--rerank-fields",
        default=None,
        metavar="F1,F2",
        help="_source fields joined into the document text (default: all string fields)",
    )
    group.add_argument(
        "--rerank-template", default=None, metavar="TEMPLATE", help="document text template, e.g. '{title}\\n{text}'"
    )
    group.add_argument(
        "--rerank-api-key-env",
        default=None,
        metavar="VAR",
        help="read the rerank service's bearer token from this env var",
    )


def rerank_config_from_args(args: argparse.Namespace) -> RerankConfig | None:
    """The :class:`RerankConfig` the flags ask for, or None when reranking was not asked for.

    Raises:
        ConfigError: the flags (or env vars) do not make a valid config, e.g. both or neither
            of ``--rerank-url`` / ``--rerank-model`` (and no ``ESHYBRID_SEARCH_RERANK_URL``).
    """
    url = getattr(args, "rerank_url", None)
    model = getattr(args, "rerank_model", None)
    if not (getattr(args, "rerank", False) or url or model):
        return None
    given: dict[str, Any] = {
        "url": url,
        "model": model,
        "top_k": getattr(args, "rerank_top_k", None),
        "timeout_s": getattr(args, "rerank_timeout_s", None),
        "template": getattr(args, "rerank_template", None),
    }
    fields = getattr(args, "rerank_fields", None)
    if fields:
        given["fields"] = split_csv(fields)
    key_env = getattr(args, "rerank_api_key_env", None)
    if key_env:
        key = os.environ.get(key_env)
        if not key:
            raise ConfigError(
                f"--rerank-api-key-env {key_env}: that environment variable is empty or unset",
                field="rerank_api_key_env",
            )
        given["api_key"] = key
    try:
        return RerankConfig(
            **{name: value for name, value in given.items() if value is not None}, loader=load_in_process
        )
    except ValidationError as e:
        raise ConfigError(f"invalid rerank options: {e}", field="rerank") from e


def load_in_process(model: str) -> SupportsScore:
    """Load ``model`` (checkpoint folder or hub id) with the :mod:`rerank` package, in this process.

    Called by :meth:`RerankConfig.backend` the first time a search reranks, not when the flags are read.

    Raises:
        ConfigError: torch or transformers are not installed (the ``[serve]`` extra).
        rerank.RerankServiceError: the model or its settings cannot be loaded (the search falls back).
    """
    try:
        load = rerank.load_in_process  # imports torch and transformers on first use
    except ImportError as e:
        raise ConfigError(
            "in-process reranking needs torch and transformers (pip install 'eshybrid[serve]'); "
            "or point rerank at a service URL",
            field="model",
        ) from e
    return load(model)
