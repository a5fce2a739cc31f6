"""Is the best of a grid real or fitted to noise? PBO and the deflated Sharpe ratio.

**Probability of backtest overfitting** (Bailey, Borwein, López de Prado & Zhu, "The
Probability of Backtest Overfitting", 2016), by combinatorially symmetric cross-validation
(CSCV): the grid's per-bar returns (bars × combinations) are cut into ``n_splits`` blocks of
consecutive bars; for every way of choosing half of the blocks as the in-sample set, the
combination with the best in-sample Sharpe ratio is ranked among all combinations on the other
half. PBO is the share of those splits where it ranks at or below the median out of sample
(logit of its relative rank ≤ 0). A grid of pure noise comes out near 0.5; a real edge near 0.

**Deflated Sharpe ratio** (Bailey & López de Prado, "The Deflated Sharpe Ratio", 2014): the
probability that the selected strategy's true Sharpe ratio is above zero, after correcting its
estimate for the number of trials it was chosen from (the expected maximum Sharpe ratio of
``n_trials`` skill-less strategies), for the length of the sample, and for the skewness and
kurtosis of its returns. Sharpe ratios here are per bar, not annualized.

>>> import numpy as np, pandas as pd
>>> noise = pd.DataFrame(np.random.default_rng(0).normal(0, 0.01, (2000, 40)))
>>> 0.25 < probability_of_overfitting(noise).pbo < 0.75
True
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
import pandas as pd

EULER_GAMMA = 0.5772156649015329  # Euler–Mascheroni constant, in the expected maximum of N normals
MAX_SPLITS = 20  # C(20, 10) = 184,756 splits


@dataclass
class OverfittingResult:
    """``pbo``; per split the in-sample best's ``logits`` of its out-of-sample relative rank."""

    pbo: float
    logits: np.ndarray
    n_splits: int


def _as_matrix(returns) -> np.ndarray:
    values = np.asarray(returns.to_numpy() if isinstance(returns, pd.DataFrame | pd.Series)
                        else returns, dtype=float)
    if values.ndim != 2:
        raise ValueError(f"returns must be bars × combinations (2-D), got shape {values.shape}")
    if np.isnan(values).any():
        raise ValueError("returns contain NaN: fill or drop them first (a bar without a "
                         "position returns 0)")
    return values


def probability_of_overfitting(returns, n_splits: int = 16) -> OverfittingResult:
    """PBO of a grid by CSCV (see the module docstring). ``returns``: per-bar returns, one
    column per combination (e.g. ``Result.returns``); ``n_splits``: an even number of blocks."""
    values = _as_matrix(returns)
    n_bars, n_combos = values.shape
    if n_combos < 2:
        raise ValueError("the grid needs at least 2 combinations to rank")
    if n_splits < 2 or n_splits % 2 or n_splits > MAX_SPLITS:
        raise ValueError(f"n_splits must be even, between 2 and {MAX_SPLITS}, got {n_splits}")
    if n_bars < 2 * n_splits:
        raise ValueError(f"{n_bars} bars are too few for {n_splits} blocks of 2 bars or more")
    block_len = n_bars // n_splits
    blocks = values[: block_len * n_splits].reshape(n_splits, block_len, n_combos)
    sums, squares = blocks.sum(axis=1), (blocks * blocks).sum(axis=1)  # (blocks, combinations)
    choices = np.array(list(itertools.combinations(range(n_splits), n_splits // 2)))
    chosen = np.zeros((len(choices), n_splits))
    chosen[np.arange(len(choices))[:, None], choices] = 1.0
    half = block_len * n_splits // 2

    def sharpe(weights):
        mean = weights @ sums / half
        var = weights @ squares / half - mean * mean
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(var > 0, mean / np.sqrt(np.maximum(var, 0.0)), 0.0)

    in_sample, out_of_sample = sharpe(chosen), sharpe(1.0 - chosen)
    best = np.argmax(in_sample, axis=1)
    best_oos = out_of_sample[np.arange(len(choices)), best]
    # relative rank in (0, 1): ties share the average rank
    below = (out_of_sample < best_oos[:, None]).sum(axis=1)
    equal = (out_of_sample == best_oos[:, None]).sum(axis=1)
    omega = (below + (equal + 1) / 2.0) / (n_combos + 1)
    logits = np.log(omega / (1.0 - omega))
    return OverfittingResult(float((logits <= 0.0).mean()), logits, n_splits)


def expected_max_sharpe(n_trials: int, sharpe_variance: float) -> float:
    """The expected largest Sharpe ratio among ``n_trials`` strategies without skill whose
    Sharpe estimates vary with ``sharpe_variance`` (the deflation benchmark SR₀)."""
    if n_trials < 1:
        raise ValueError(f"n_trials must be at least 1, got {n_trials}")
    if n_trials == 1:
        return 0.0
    normal = NormalDist()
    return float(np.sqrt(sharpe_variance) * (
        (1.0 - EULER_GAMMA) * normal.inv_cdf(1.0 - 1.0 / n_trials)
        + EULER_GAMMA * normal.inv_cdf(1.0 - 1.0 / (n_trials * np.e))))


def probabilistic_sharpe(returns, benchmark: float = 0.0) -> float:
    """P(true per-bar Sharpe > ``benchmark``) given the sample's Sharpe, length, skewness and
    kurtosis (Bailey & López de Prado 2012)."""
    r = np.asarray(returns, dtype=float)
    r = r[~np.isnan(r)]
    n = len(r)
    if n < 3:
        raise ValueError(f"need at least 3 returns, got {n}")
    std = r.std()
    if std == 0.0:
        raise ValueError("the returns do not vary: their Sharpe ratio is undefined")
    sr = r.mean() / std
    z = (r - r.mean()) / std
    skew, kurtosis = float((z ** 3).mean()), float((z ** 4).mean())
    denominator = 1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr * sr
    return NormalDist().cdf((sr - benchmark) * np.sqrt(n - 1) / np.sqrt(denominator))


def deflated_sharpe(returns, n_trials: int | None = None, sharpe_variance: float | None = None
                    ) -> float:
    """The deflated Sharpe ratio of the best column of ``returns`` (bars × combinations), or of
    a single return series with ``n_trials`` and ``sharpe_variance`` (per-bar Sharpe) given."""
    if isinstance(returns, pd.DataFrame) or np.ndim(returns) == 2:
        values = _as_matrix(returns)
        with np.errstate(divide="ignore", invalid="ignore"):
            sharpes = values.mean(axis=0) / values.std(axis=0)
        sharpes = np.where(np.isfinite(sharpes), sharpes, 0.0)
        best = values[:, int(np.argmax(sharpes))]
        n_trials = values.shape[1] if n_trials is None else n_trials
        sharpe_variance = float(sharpes.var(ddof=1)) if sharpe_variance is None else sharpe_variance
        returns = best
    elif n_trials is None or sharpe_variance is None:
        raise ValueError("a single return series needs n_trials and sharpe_variance")
    return probabilistic_sharpe(returns, expected_max_sharpe(n_trials, sharpe_variance))
