"""The click models recover known parameters from simulated clicks (seeded numpy simulations)."""

from __future__ import annotations

import numpy as np
import pytest

from connector.errors import ConfigError
from connector.feedback.clickmodels import ClickLog, fit_click_model

QUERIES, DOCS, DEPTH, SEARCHES = 12, 10, 10, 24_000


def _layout(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Each search: a query and a random order of its documents (so every doc is seen at every rank)."""
    query = rng.integers(0, QUERIES, SEARCHES)
    order = np.argsort(rng.random((SEARCHES, DOCS)), axis=1)[:, :DEPTH]
    return query, query[:, None] * DOCS + order


def _pairs() -> list[tuple[str, str]]:
    return [(f"q{q}", f"d{d}") for q in range(QUERIES) for d in range(DOCS)]


def _pbm_log(seed: int) -> tuple[ClickLog, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    alpha = rng.uniform(0.05, 0.9, QUERIES * DOCS)
    gamma = 1.0 / np.arange(1, DEPTH + 1) ** 0.8
    _, shown = _layout(rng)
    clicks = rng.random(shown.shape) < gamma[None, :] * alpha[shown]
    return ClickLog(_pairs(), shown, clicks), alpha, gamma


def test_pbm_recovers_attractiveness_and_examination() -> None:
    log, alpha, gamma = _pbm_log(7)
    fit = fit_click_model(log, "pbm")
    assert fit.examination is not None and fit.attractiveness is not None
    assert np.abs(fit.examination - gamma).max() < 0.05
    assert np.abs(fit.attractiveness - alpha).mean() < 0.03
    assert np.corrcoef(fit.attractiveness, alpha)[0, 1] > 0.98
    assert 1 < fit.iterations <= 200


def test_coec_corrects_for_position() -> None:
    log, alpha, _ = _pbm_log(8)
    fit = fit_click_model(log, "coec")
    assert np.corrcoef(fit.relevance, alpha)[0, 1] > 0.95
    # Raw CTR of a pair always shown low would be far below its attractiveness; COEC is not.
    assert fit.examination is not None and fit.examination[0] == pytest.approx(1.0)
    assert fit.examination[-1] < 0.5


def test_sdbn_recovers_attractiveness_and_satisfaction() -> None:
    rng = np.random.default_rng(9)
    alpha = rng.uniform(0.05, 0.8, QUERIES * DOCS)
    sigma = rng.uniform(0.1, 0.9, QUERIES * DOCS)
    _, shown = _layout(rng)
    clicks = np.zeros(shown.shape, dtype=bool)
    reading = np.ones(SEARCHES, dtype=bool)
    for r in range(DEPTH):  # cascade: read down until a satisfying click
        a = alpha[shown[:, r]]
        click = reading & (rng.random(SEARCHES) < a)
        clicks[:, r] = click
        reading &= ~(click & (rng.random(SEARCHES) < sigma[shown[:, r]]))
    fit = fit_click_model(ClickLog(_pairs(), shown, clicks), "sdbn")
    assert fit.attractiveness is not None and fit.satisfaction is not None
    # SDBN reads only up to the last click, so alpha is a little high; the order is what grades use.
    assert np.corrcoef(fit.attractiveness, alpha)[0, 1] > 0.95
    assert np.corrcoef(fit.satisfaction, sigma)[0, 1] > 0.9
    assert np.corrcoef(fit.relevance, alpha * sigma)[0, 1] > 0.95


def test_unshown_slots_and_errors() -> None:
    shown = np.array([[0, 1, -1], [1, 0, -1]])
    clicks = np.array([[True, False, False], [False, False, False]])
    log = ClickLog([("q", "a"), ("q", "b")], shown, clicks)
    assert log.impressions().tolist() == [2, 2]
    for model in ("coec", "pbm", "sdbn"):
        fit = fit_click_model(log, model)  # type: ignore[arg-type]
        assert fit.relevance[0] > fit.relevance[1]
    with pytest.raises(ConfigError, match="unknown click model"):
        fit_click_model(log, "ubm")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="empty"):
        fit_click_model(ClickLog([], np.zeros((0, 0), dtype=np.int64), np.zeros((0, 0), dtype=bool)), "pbm")
