"""Online experiments: two search configurations compared on shoppers' clicks, reported and promoted.

An experiment (:class:`~connector.search.experiment.ExperimentSpec`, a JSON file) names two arms, each a search configuration
(fusion, lexical leg, mode). Its searches carry ``query_attributes.experiment`` (its name) and, by
mode:

- ``interleave`` (default): one team-draft list per search, ``query_attributes.hit_arms`` crediting
  each hit to its arm; a search is a win for the arm whose hits got more clicks. Report: wins,
  losses and ties of the first arm, the preference ``(wins + ties / 2) / (wins + losses + ties) - 0.5``
  and a two-sided sign (binomial) test on wins vs losses;
- ``ab``: each client sees one arm (``query_attributes.arm``); report per arm: clicks per search,
  CTR (share of searches with a click), MRR@10 of the first click, purchases per search, and a
  two-sample z test on clicks per search.

"How many more searches": the searches at which the observed effect would be significant at
``alpha`` with ``power`` (normal approximation), minus the searches so far.
:func:`promote` writes the winner into the index's ``search_defaults`` with the same writer as
``eshybrid tune`` (:func:`connector.quality.tuning.write_recommendation`), recording the evidence.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

from connector.errors import ConfigError
from connector.quality.tuning import write_recommendation
from connector.search.experiment import ArmConfig, ExperimentSpec
from connector.ubi.interleave import credit_clicks
from connector.ubi.records import UbiEvent, UbiQuery
from mappings.search_defaults import build_search_defaults, search_defaults_of

__all__ = [
    "ArmConfig",
    "ArmStats",
    "ExperimentReport",
    "ExperimentSpec",
    "promote",
    "report_experiment",
    "searches_needed_ab",
    "searches_needed_interleave",
    "sign_test_p",
]

_CLICKS = ("click", "add_to_cart", "purchase")


def sign_test_p(wins: int, losses: int) -> float:
    """Two-sided exact binomial (sign) test of ``wins`` vs ``losses`` against a fair coin."""
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    log_half = n * math.log(0.5)
    tail = sum(
        math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) + log_half) for i in range(k + 1)
    )
    return min(1.0, 2.0 * tail)


def _z(alpha: float, power: float) -> tuple[float, float]:
    return NormalDist().inv_cdf(1.0 - alpha / 2.0), NormalDist().inv_cdf(power)


def searches_needed_interleave(
    wins: int, losses: int, searches: int, *, alpha: float = 0.05, power: float = 0.8
) -> int | None:
    """Searches at which a sign test would detect the observed win rate (None: no effect seen yet)."""
    decisive = wins + losses
    if decisive == 0 or searches == 0 or wins == losses:
        return None
    p = wins / decisive
    z_a, z_b = _z(alpha, power)
    n_decisive = ((z_a * 0.5 + z_b * math.sqrt(p * (1.0 - p))) / (p - 0.5)) ** 2
    return math.ceil(n_decisive * searches / decisive)


def searches_needed_ab(
    mean_a: float, var_a: float, mean_b: float, var_b: float, *, alpha: float = 0.05, power: float = 0.8
) -> int | None:
    """Total searches (both arms, split evenly) at which a z test detects the observed difference."""
    delta = abs(mean_b - mean_a)
    if delta <= 0:
        return None
    z_a, z_b = _z(alpha, power)
    per_arm = (z_a + z_b) ** 2 * (var_a + var_b) / delta**2
    return math.ceil(2 * per_arm)


@dataclass
class ArmStats:
    """Per-arm figures of an A/B experiment."""

    searches: int = 0
    clicks: int = 0
    searches_with_click: int = 0
    reciprocal_ranks: float = 0.0
    purchases: int = 0
    clicks_sq: int = 0

    @property
    def clicks_per_search(self) -> float:
        return self.clicks / self.searches if self.searches else 0.0

    @property
    def clicks_var(self) -> float:
        if self.searches < 2:
            return 0.0
        mean = self.clicks_per_search
        return max(0.0, (self.clicks_sq - self.searches * mean * mean) / (self.searches - 1))

    def to_json(self) -> dict[str, Any]:
        n = max(self.searches, 1)
        return {
            "searches": self.searches,
            "clicks_per_search": round(self.clicks / n, 6),
            "ctr": round(self.searches_with_click / n, 6),
            "mrr@10": round(self.reciprocal_ranks / n, 6),
            "purchases_per_search": round(self.purchases / n, 6),
        }


@dataclass
class ExperimentReport:
    """What the searches of an experiment say so far."""

    experiment: str
    mode: str
    arms: tuple[str, str]
    searches: int
    wins: int = 0
    losses: int = 0
    ties: int = 0
    no_click: int = 0
    per_arm: dict[str, ArmStats] = field(default_factory=dict)
    p_value: float = 1.0
    preference: float = 0.0
    winner: str | None = None
    leader: str = ""
    searches_needed: int | None = None
    alpha: float = 0.05

    @property
    def more_searches_needed(self) -> int | None:
        return None if self.searches_needed is None else max(0, self.searches_needed - self.searches)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "experiment": self.experiment,
            "mode": self.mode,
            "arms": list(self.arms),
            "searches": self.searches,
            "p_value": self.p_value,
            "alpha": self.alpha,
            "winner": self.winner,
            "leader": self.leader,
            "searches_needed": self.searches_needed,
            "more_searches_needed": self.more_searches_needed,
        }
        if self.mode == "interleave":
            out.update(
                wins=self.wins, losses=self.losses, ties=self.ties, no_click=self.no_click, preference=self.preference
            )
        else:
            out["per_arm"] = {arm: stats.to_json() for arm, stats in self.per_arm.items()}
        return out

    def format_text(self) -> str:
        a, b = self.arms
        lines = [f"experiment {self.experiment} ({self.mode}): {self.searches} searches"]
        if self.mode == "interleave":
            lines.append(
                f"  {a} vs {b}: wins {self.wins}, losses {self.losses}, ties {self.ties}, no click {self.no_click}; "
                f"preference for {a} {self.preference:+.4f}"
            )
            lines.append(f"  sign test p = {self.p_value:.4g}")
        else:
            for arm, stats in self.per_arm.items():
                s = stats.to_json()
                lines.append(
                    f"  {arm}: {s['searches']} searches, clicks/search {s['clicks_per_search']:.4f}, CTR {s['ctr']:.4f}, "
                    f"MRR@10 {s['mrr@10']:.4f}, purchases/search {s['purchases_per_search']:.4f}"
                )
            lines.append(f"  z test on clicks per search: p = {self.p_value:.4g}")
        verdict = f"winner: {self.winner}" if self.winner else f"no winner at alpha {self.alpha:g} yet"
        more = self.more_searches_needed
        needed = "unknown (no difference seen yet)" if more is None else f"about {more} more searches"
        lines.append(f"  {verdict}; to detect the observed effect: {needed}")
        return "\n".join(lines)


def _clicked_ranks(queries: list[UbiQuery], events: Iterable[UbiEvent]) -> dict[str, tuple[set[int], int]]:
    """``{query_id: (clicked 0-based ranks, purchases)}`` for the given searches."""
    wanted = {q.query_id: q for q in queries}
    out: dict[str, tuple[set[int], int]] = {q: (set(), 0) for q in wanted}
    for e in events:
        record = wanted.get(e.query_id or "")
        if record is None or e.action_name not in _CLICKS:
            continue
        ranks, purchases = out[record.query_id]
        ids = record.query_response_hit_ids
        rank = ids.index(e.object_id) if e.object_id in ids else (e.ordinal - 1 if e.ordinal else None)
        if rank is not None:
            ranks.add(rank)
        out[record.query_id] = (ranks, purchases + (e.action_name == "purchase"))
    return out


def report_experiment(
    spec: ExperimentSpec, queries: Iterable[UbiQuery], events: Iterable[UbiEvent]
) -> ExperimentReport:
    """Count an experiment's searches and clicks (see the module docstring for the figures)."""
    a, b = spec.arm_names
    mine = [q for q in queries if q.query_attributes is not None and q.query_attributes.experiment == spec.name]
    clicked = _clicked_ranks(mine, events)
    report = ExperimentReport(spec.name, spec.mode, (a, b), searches=len(mine), alpha=spec.alpha)
    if spec.mode == "interleave":
        counts: dict[str, int] = defaultdict(int)
        for q in mine:
            arms = (q.query_attributes.hit_arms if q.query_attributes else None) or []
            counts[credit_clicks(arms, sorted(clicked[q.query_id][0]), a)] += 1
        report.wins, report.losses, report.ties, report.no_click = (
            counts[k] for k in ("win", "loss", "tie", "no_click")
        )
        decided = report.wins + report.losses + report.ties
        report.preference = (report.wins + report.ties / 2) / decided - 0.5 if decided else 0.0
        report.p_value = sign_test_p(report.wins, report.losses)
        report.searches_needed = searches_needed_interleave(
            report.wins, report.losses, report.searches, alpha=spec.alpha, power=spec.power
        )
        better = a if report.wins > report.losses else b
    else:
        report.per_arm = {a: ArmStats(), b: ArmStats()}
        for q in mine:
            stats = report.per_arm.get((q.query_attributes.arm if q.query_attributes else None) or "")
            if stats is None:
                continue
            ranks, purchases = clicked[q.query_id]
            stats.searches += 1
            stats.clicks += len(ranks)
            stats.clicks_sq += len(ranks) ** 2
            stats.searches_with_click += bool(ranks)
            stats.reciprocal_ranks += 1.0 / (min(ranks) + 1) if ranks and min(ranks) < 10 else 0.0
            stats.purchases += purchases
        sa, sb = report.per_arm[a], report.per_arm[b]
        se = math.sqrt(sa.clicks_var / max(sa.searches, 1) + sb.clicks_var / max(sb.searches, 1))
        diff = sb.clicks_per_search - sa.clicks_per_search
        report.p_value = 2.0 * (1.0 - NormalDist().cdf(abs(diff) / se)) if se > 0 else 1.0
        report.searches_needed = searches_needed_ab(
            sa.clicks_per_search, sa.clicks_var, sb.clicks_per_search, sb.clicks_var, alpha=spec.alpha, power=spec.power
        )
        better = b if diff > 0 else a
    report.leader = better
    report.winner = better if report.p_value < spec.alpha else None
    return report


def promote(
    cluster: Any, index: str, spec: ExperimentSpec, report: ExperimentReport, *, force: bool = False
) -> dict[str, Any]:
    """Write the winning arm's configuration into ``index``'s ``search_defaults`` (``_meta``), with the evidence.

    Keys the arm leaves unset keep the index's current recommendation.

    Args:
        force: promote the better arm even when the test is not significant (recorded as such).

    Returns:
        The ``search_defaults`` written.

    Raises:
        ConfigError: no significant winner (and not ``force``), or the arm names nothing to write.
    """
    winner = report.winner
    if winner is None:
        if not force:
            more = report.more_searches_needed
            raise ConfigError(
                f"experiment {spec.name!r} has no significant winner (p = {report.p_value:.4g} >= {spec.alpha:g}); "
                f"wait for {'more' if more is None else f'about {more} more'} searches, or pass force=True (--force)",
                field="experiment",
            )
        winner = report.leader
    arm = spec.arms[winner]
    current = search_defaults_of(cluster.get_mapping(index).get("_meta")) or {}
    fusion = arm.fusion.model_dump() if arm.fusion else current.get("fusion")
    lexical = arm.lexical.model_dump(exclude_none=True) if arm.lexical else current.get("lexical") or {}
    if not fusion:
        raise ConfigError(
            f"arm {winner!r} of {spec.name!r} names no fusion and the index has none recorded; add 'fusion' to the arm",
            field=f"arms.{winner}.fusion",
        )
    now = dt.datetime.now(dt.UTC)
    defaults = build_search_defaults(
        fusion=fusion,
        lexical=lexical,
        judgments={"name": f"experiment {spec.name}", "date": now.date().isoformat(), "searches": report.searches},
        chosen_at=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        chosen_by="eshybrid experiment promote",
        evidence={**report.to_json(), "winner": winner, "forced": report.winner is None},
    )
    write_recommendation(cluster, index, defaults)
    return defaults
