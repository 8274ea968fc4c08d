"""Click models that correct for position bias (numpy): COEC, PBM fitted by EM, and SDBN (cascade family).

A shopper clicks a hit only when they looked at it; lower hits are looked at less, so raw
click-through rates confuse "shown low" with "not wanted". Each model estimates a per
query-document *relevance* from the same :class:`ClickLog`:

- ``coec``: clicks over expected clicks (Zhang & Jones 2007). The expected clicks of an impression
  at rank r are the global click-through rate at r; relevance = clicks / sum of those.
- ``pbm``: the position-based model (Craswell et al. 2008): P(click) = gamma_r * alpha_qd, with the
  examination gamma_r per rank and the attractiveness alpha_qd per pair fitted by EM
  (Chuklin, Markov & de Rijke 2015, ch. 4). gamma is scaled so that gamma_1 = 1.
- ``sdbn``: the simplified dynamic Bayesian network (Chapelle & Zhang 2009 with gamma = 1): the
  shopper reads down to the last click; alpha_qd = clicks / reads, sigma_qd (satisfaction) = last
  clicks / clicks, relevance = alpha * sigma. Searches without a click tell it nothing and are skipped.

Counts are smoothed with a Beta(1, 1) prior (``prior``), so a pair seen a few times does not
get an extreme estimate; :mod:`connector.feedback.judgments` turns relevance into grades.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal

import numpy as np
import numpy.typing as npt

from connector.errors import ConfigError

__all__ = ["CLICK_MODELS", "ClickLog", "ClickModelFit", "ClickModelName", "fit_click_model"]

ClickModelName = Literal["coec", "pbm", "sdbn"]
CLICK_MODELS: Final[tuple[ClickModelName, ...]] = ("coec", "pbm", "sdbn")

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]


@dataclass
class ClickLog:
    """Searches as arrays: row s is one search, column r its rank r + 1.

    Attributes:
        pairs: ``(query key, doc id)`` of each pair index.
        shown: ``(searches, depth)`` pair index shown at each rank, -1 where nothing was shown.
        clicks, carts, purchases: ``(searches, depth)`` whether that hit got the action.
    """

    pairs: list[tuple[str, str]]
    shown: IntArray
    clicks: BoolArray
    carts: BoolArray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.bool_))
    purchases: BoolArray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.bool_))

    def __post_init__(self) -> None:
        if self.carts.shape != self.shown.shape:
            self.carts = np.zeros(self.shown.shape, dtype=np.bool_)
        if self.purchases.shape != self.shown.shape:
            self.purchases = np.zeros(self.shown.shape, dtype=np.bool_)
        if self.clicks.shape != self.shown.shape:
            raise ConfigError("clicks must have the shape of shown (searches x depth)", field="clicks")

    @property
    def searches(self) -> int:
        return int(self.shown.shape[0])

    @property
    def depth(self) -> int:
        return int(self.shown.shape[1]) if self.shown.ndim == 2 else 0

    def impressions(self) -> IntArray:
        """Times each pair was shown."""
        valid = self.shown >= 0
        return np.bincount(self.shown[valid], minlength=len(self.pairs)).astype(np.int64)

    def pair_counts(self, flags: BoolArray) -> IntArray:
        """Per pair: how many of its impressions have ``flags`` set."""
        hit = (self.shown >= 0) & flags
        return np.bincount(self.shown[hit], minlength=len(self.pairs)).astype(np.int64)


@dataclass
class ClickModelFit:
    """A fitted model: ``relevance`` per pair (what grades come from) and the model's own parameters."""

    model: ClickModelName
    relevance: FloatArray
    impressions: IntArray
    clicks: IntArray
    attractiveness: FloatArray | None = None
    satisfaction: FloatArray | None = None
    examination: FloatArray | None = None
    iterations: int = 0


def _coec(log: ClickLog, prior: float) -> ClickModelFit:
    valid = log.shown >= 0
    per_rank_ctr = (log.clicks & valid).sum(axis=0) / np.maximum(valid.sum(axis=0), 1)
    expected = np.where(valid, per_rank_ctr[None, :], 0.0)
    exp_per_pair = np.bincount(log.shown[valid], weights=expected[valid], minlength=len(log.pairs))
    clicks = log.pair_counts(log.clicks)
    # The prior adds `prior` expected clicks with `prior` * mean CTR clicks: COEC tends to 1 for rare pairs.
    mean_ctr = float(per_rank_ctr.mean()) if per_rank_ctr.size else 0.0
    relevance = (clicks + prior * mean_ctr) / (exp_per_pair + prior * mean_ctr + 1e-12)
    return ClickModelFit(
        "coec", relevance, log.impressions(), clicks, examination=per_rank_ctr / max(per_rank_ctr[0], 1e-12)
    )


def _pbm(log: ClickLog, prior: float, iterations: int, tol: float) -> ClickModelFit:
    valid = log.shown >= 0
    idx = np.where(valid, log.shown, 0)
    clicked = log.clicks & valid
    n_pair = log.impressions().astype(np.float64)
    n_rank = valid.sum(axis=0).astype(np.float64)
    alpha = np.full(len(log.pairs), 0.5)
    gamma = np.full(log.depth, 0.5)
    done = 0
    for step in range(1, iterations + 1):
        done = step
        a = alpha[idx]
        g = gamma[None, :]
        denom = np.maximum(1.0 - a * g, 1e-12)
        post_a = np.where(clicked, 1.0, a * (1.0 - g) / denom)  # P(attracted | observation)
        post_e = np.where(clicked, 1.0, g * (1.0 - a) / denom)  # P(examined | observation)
        new_alpha = (np.bincount(idx[valid], weights=post_a[valid], minlength=len(alpha)) + prior) / (
            n_pair + 2 * prior
        )
        new_gamma = np.where(valid, post_e, 0.0).sum(axis=0) / np.maximum(n_rank, 1.0)
        change = max(float(np.abs(new_alpha - alpha).max(initial=0.0)), float(np.abs(new_gamma - gamma).max()))
        alpha, gamma = new_alpha, new_gamma
        if change < tol:
            break
    scale = max(float(gamma[0]), 1e-12)  # the product gamma * alpha is what the data fix: gamma_1 = 1
    gamma = gamma / scale
    alpha = np.clip(alpha * scale, 0.0, 1.0)
    return ClickModelFit(
        "pbm",
        alpha,
        log.impressions(),
        log.pair_counts(log.clicks),
        attractiveness=alpha,
        examination=gamma,
        iterations=done,
    )


def _sdbn(log: ClickLog, prior: float) -> ClickModelFit:
    valid = log.shown >= 0
    clicked = log.clicks & valid
    any_click = clicked.any(axis=1)
    ranks = np.arange(log.depth)[None, :]
    last = np.where(any_click, log.depth - 1 - np.argmax(clicked[:, ::-1], axis=1), -1)
    read = valid & (ranks <= last[:, None])
    last_click = clicked & (ranks == last[:, None])
    reads = np.bincount(log.shown[read], minlength=len(log.pairs)).astype(np.float64)
    clicks = log.pair_counts(log.clicks)
    lasts = np.bincount(log.shown[last_click], minlength=len(log.pairs)).astype(np.float64)
    alpha = (clicks + prior) / (reads + 2 * prior)
    sigma = (lasts + prior) / (clicks + 2 * prior)
    return ClickModelFit("sdbn", alpha * sigma, log.impressions(), clicks, attractiveness=alpha, satisfaction=sigma)


def fit_click_model(
    log: ClickLog,
    model: ClickModelName = "pbm",
    *,
    prior: float = 1.0,
    iterations: int = 200,
    tol: float = 1e-6,
) -> ClickModelFit:
    """Fit one click model to a click log.

    Args:
        log: the searches and their clicks.
        model: ``coec``, ``pbm`` or ``sdbn`` (see the module docstring).
        prior: Beta prior pseudo-counts (0: none).
        iterations, tol: EM limits (``pbm``).

    Raises:
        ConfigError: an unknown model, or an empty log.
    """
    if model not in CLICK_MODELS:
        raise ConfigError(f"unknown click model {model!r}; use one of {', '.join(CLICK_MODELS)}", field="click_model")
    if log.searches == 0 or log.depth == 0 or not log.pairs:
        raise ConfigError("the click log is empty: no search with a shown hit", field="click_log")
    if model == "coec":
        return _coec(log, prior)
    if model == "pbm":
        return _pbm(log, prior, iterations, tol)
    return _sdbn(log, prior)
