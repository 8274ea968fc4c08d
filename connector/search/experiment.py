"""Serving an online experiment: two search configurations, interleaved or split, sticky per ``client_id``.

An :class:`ExperimentSpec` (a JSON file: name, mode, two arms) says what each arm searches with
(``fusion``, ``mode``; unset: the search's own). For one search of a shopper:

- ``interleave``: both arms run (page 1 to the requested page, same text and filters); their
  rankings are merged by team draft (:func:`connector.ubi.interleave.team_draft`, seeded by
  experiment, ``client_id`` and text, so a repeated search shows the same list) and the page is cut
  from the merged list; each hit is credited to its arm (``hit_arms`` of the query record);
- ``ab``: the client's arm (:func:`connector.ubi.interleave.assign_arm`) runs alone.

:func:`experiment_search` / :func:`aexperiment_search` drive a ``HybridSearch`` / ``AsyncHybridSearch``;
the planning and the merge are the pure functions they share. With a ``ubi`` logger on the search,
the page shown is recorded once (``query_attributes``: experiment, arm, ``hit_arms``). The reports that read the credit are
in :mod:`connector.feedback.experiment`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from connector.errors import ConfigError
from connector.search.models import FusionConfig, LexicalConfig, SearchResponse
from connector.ubi.interleave import assign_arm, team_draft
from connector.ubi.records import query_record_from_response

__all__ = [
    "ArmConfig",
    "ExperimentSpec",
    "aexperiment_search",
    "arm_options",
    "experiment_search",
    "merge_interleaved",
]

logger = logging.getLogger(__name__)


class ArmConfig(BaseModel):
    """One arm: what it searches with (unset: the search's own). ``lexical`` is recorded for ``promote``;
    a served experiment varies ``fusion`` and ``mode`` per search."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    fusion: FusionConfig | None = None
    lexical: LexicalConfig | None = None
    mode: Literal["bm25", "knn", "hybrid", "hybrid+rerank"] | None = None
    description: str | None = Field(None, max_length=500)


class ExperimentSpec(BaseModel):
    """An experiment: its name, mode and two arms (the first is the control)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(min_length=1, max_length=256)
    mode: Literal["interleave", "ab"] = "interleave"
    arms: dict[str, ArmConfig]
    split: float = Field(0.5, gt=0.0, lt=1.0, description="ab: share of clients on the first arm")
    alpha: float = Field(0.05, gt=0.0, lt=0.5)
    power: float = Field(0.8, gt=0.5, lt=1.0)

    @model_validator(mode="after")
    def _two_arms(self) -> ExperimentSpec:
        if len(self.arms) != 2:
            raise ValueError(f"an experiment has exactly two arms, got {len(self.arms)}")
        return self

    @property
    def arm_names(self) -> tuple[str, str]:
        first, second = self.arms
        return first, second

    @classmethod
    def from_file(cls, path: str | Path) -> ExperimentSpec:
        """Read a spec from JSON; errors name the file and the field."""
        file = Path(path)
        try:
            return cls.model_validate(json.loads(file.read_text(encoding="utf-8")))
        except OSError as e:
            raise ConfigError(f"cannot read the experiment file {file}: {e}", field="experiment", path=str(file)) from e
        except ValueError as e:
            where = ""
            if isinstance(e, ValidationError):
                where = ".".join(str(p) for p in e.errors()[0]["loc"]) + ": "
            raise ConfigError(f"{file}: {where}{e}", field="experiment", path=str(file)) from e


def arm_options(spec: ExperimentSpec, arm: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The search keyword arguments of ``arm``: the caller's, with the arm's ``fusion`` / ``mode`` over them."""
    config = spec.arms[arm]
    out = dict(options)
    if config.fusion is not None:
        out["fusion"] = config.fusion
    if config.mode is not None:
        out["mode"] = config.mode
    return out


def _plan(spec: ExperimentSpec, client_id: str, size: int, page: int) -> tuple[list[str], int, int]:
    """The arms to run and the size/page each runs with."""
    if spec.mode == "ab":
        return [assign_arm(spec.name, client_id, spec.arm_names, split=spec.split)], size, page
    return list(spec.arm_names), size * page, 1


def merge_interleaved(
    spec: ExperimentSpec,
    responses: Mapping[str, SearchResponse],
    *,
    client_id: str,
    text: str,
    size: int,
    page: int,
) -> tuple[SearchResponse, dict[str, Any]]:
    """Team-draft the arms' rankings and cut the page (pure).

    Returns:
        The first arm's response with the merged page as its hits, and the query record attributes
        (``experiment``, ``arm: interleaved``, ``hit_arms`` for the page shown).
    """
    a, b = spec.arm_names
    ra, rb = responses[a], responses[b]
    merged = team_draft(ra.ids, rb.ids, arms=(a, b), seed=f"{spec.name}|{client_id}|{text}", size=size * page)
    by_id = {hit.id: hit for hit in rb.hits} | {hit.id: hit for hit in ra.hits}
    start = size * (page - 1)
    ids, arms = merged.ids[start : start + size], merged.arms[start : start + size]
    hits = [by_id[i].model_copy(update={"rank": start + n + 1}) for n, i in enumerate(ids)]
    response = ra.model_copy(update={"hits": hits, "page": page, "size": size})
    return response, {"experiment": spec.name, "arm": "interleaved", "hit_arms": arms}


def _finish(
    spec: ExperimentSpec,
    runs: Mapping[str, SearchResponse],
    *,
    client_id: str,
    text: str,
    size: int,
    page: int,
) -> tuple[SearchResponse, dict[str, Any]]:
    if spec.mode == "ab":
        ((arm, response),) = runs.items()
        return response, {"experiment": spec.name, "arm": arm}
    return merge_interleaved(spec, runs, client_id=client_id, text=text, size=size, page=page)


def _record(
    search: Any, response: SearchResponse, attrs: Mapping[str, Any], client_id: str, session_id: str | None
) -> None:
    """Queue the query record of the page shown (the arms' own searches carry no ``client_id``: not recorded)."""
    ubi = getattr(search, "ubi", None)
    if ubi is None:
        return
    try:
        record = query_record_from_response(response, client_id=client_id, session_id=session_id, attributes=attrs)
    except Exception:  # a record must never fail the search it describes
        logger.warning("ubi query record of experiment %s not built", attrs.get("experiment"), exc_info=True)
        return
    ubi.log_query(record)


def experiment_search(
    search: Any,
    text: str,
    *,
    spec: ExperimentSpec,
    client_id: str,
    session_id: str | None = None,
    size: int = 10,
    page: int = 1,
    **options: Any,
) -> tuple[SearchResponse, dict[str, Any]]:
    """One search of a shopper in an experiment, with a ``HybridSearch``.

    Args:
        search: the search (its ``search(text, **options)`` runs each arm).
        text: the user's text.
        spec: the experiment.
        client_id: the shopper's browser (sticky arm, sticky interleaving).
        size, page: the page asked for.
        options: the other ``search`` arguments (filters, source...), an arm's own ``fusion``/``mode`` win.

    Returns:
        The response shown and the query record attributes (``query_attributes`` of :mod:`connector.ubi`).
    """
    arms, run_size, run_page = _plan(spec, client_id, size, page)
    runs = {arm: search.search(text, size=run_size, page=run_page, **arm_options(spec, arm, options)) for arm in arms}
    response, attrs = _finish(spec, runs, client_id=client_id, text=text, size=size, page=page)
    _record(search, response, attrs, client_id, session_id)
    return response, attrs


async def aexperiment_search(
    search: Any,
    text: str,
    *,
    spec: ExperimentSpec,
    client_id: str,
    session_id: str | None = None,
    size: int = 10,
    page: int = 1,
    **options: Any,
) -> tuple[SearchResponse, dict[str, Any]]:
    """:func:`experiment_search` with an ``AsyncHybridSearch`` (the arms run one after the other)."""
    arms, run_size, run_page = _plan(spec, client_id, size, page)
    runs = {}
    for arm in arms:
        runs[arm] = await search.search(text, size=run_size, page=run_page, **arm_options(spec, arm, options))
    response, attrs = _finish(spec, runs, client_id=client_id, text=text, size=size, page=page)
    _record(search, response, attrs, client_id, session_id)
    return response, attrs
