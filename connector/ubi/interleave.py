"""Team-draft interleaving and the A/B split: pure functions, seeded, sticky per ``client_id``.

Here, below the search path, so a search can serve an interleaved list; the reports that read the
credit are in :mod:`connector.feedback.experiment`.

Team-draft interleaving (Radlinski, Kurup & Joachims 2008): two captains pick in turns, the one
with fewer picks first (a coin decides when they have as many); each picks its highest-ranked hit
not already in the merged list. Each hit is credited to the arm that picked it; a search is a win
for the arm whose hits got more clicks. The coins are drawn from a hash of the experiment, the
``client_id`` and the query, so a shopper who repeats a search sees the same list.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from connector.errors import ConfigError

__all__ = ["Interleaved", "SearchOutcome", "assign_arm", "credit_clicks", "team_draft"]

SearchOutcome = Literal["win", "loss", "tie", "no_click"]


@dataclass(frozen=True)
class Interleaved:
    """The merged list and, for each hit, the arm that put it there."""

    ids: list[str]
    arms: list[str]


def _seed(*parts: str) -> int:
    return int.from_bytes(hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()[:8], "big")


def team_draft(
    a: Sequence[str],
    b: Sequence[str],
    *,
    arms: tuple[str, str] = ("a", "b"),
    seed: int | str = 0,
    size: int | None = None,
) -> Interleaved:
    """Merge two rankings by team draft.

    Args:
        a, b: the two arms' rankings (ids, best first).
        arms: the arms' names, credited in ``Interleaved.arms``.
        seed: the coins' seed; a string is hashed (give ``experiment|client_id|query`` for sticky lists).
        size: length of the merged list (default: every distinct id).
    """
    rng = random.Random(seed if isinstance(seed, int) else _seed(seed))
    limit = len(set(a) | set(b)) if size is None else min(size, len(set(a) | set(b)))
    ids: list[str] = []
    credit: list[str] = []
    seen: set[str] = set()
    pos = [0, 0]
    picks = [0, 0]
    lists = (a, b)
    while len(ids) < limit:
        if picks[0] != picks[1]:
            order = (0, 1) if picks[0] < picks[1] else (1, 0)
        else:
            order = (0, 1) if rng.random() < 0.5 else (1, 0)
        picked = False
        for team in order:
            ranking = lists[team]
            while pos[team] < len(ranking) and ranking[pos[team]] in seen:
                pos[team] += 1
            if pos[team] < len(ranking):
                doc = ranking[pos[team]]
                seen.add(doc)
                ids.append(doc)
                credit.append(arms[team])
                picks[team] += 1
                picked = True
                break
        if not picked:
            break
    return Interleaved(ids, credit)


def assign_arm(experiment: str, client_id: str, arms: Sequence[str] = ("a", "b"), *, split: float = 0.5) -> str:
    """The A/B arm of a client: a hash of experiment and ``client_id`` (sticky); ``split`` goes to the first arm."""
    if len(arms) != 2:
        raise ConfigError("an A/B split needs exactly two arms", field="arms")
    if not 0.0 < split < 1.0:
        raise ConfigError("split must be within (0, 1)", field="split")
    bucket = _seed(experiment, client_id) / 2.0**64
    return arms[0] if bucket < split else arms[1]


def credit_clicks(hit_arms: Sequence[str], clicked_ranks: Sequence[int], arm: str) -> SearchOutcome:
    """The outcome of one interleaved search for ``arm``: more clicks on its hits than the other's wins.

    Args:
        hit_arms: the arm credited with each shown hit (``Interleaved.arms``).
        clicked_ranks: 0-based ranks clicked (each counted once).
        arm: the arm whose outcome is returned.
    """
    ranks = {r for r in clicked_ranks if 0 <= r < len(hit_arms)}
    if not ranks:
        return "no_click"
    mine = sum(1 for r in ranks if hit_arms[r] == arm)
    other = len(ranks) - mine
    return "win" if mine > other else "loss" if mine < other else "tie"
