"""PBO by CSCV and the deflated Sharpe ratio, against their papers' definitions."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from backtest.overfitting import (
    deflated_sharpe,
    expected_max_sharpe,
    probabilistic_sharpe,
    probability_of_overfitting,
)


def _noise(seed, n_bars=2000, n_combos=40):
    return np.random.default_rng(seed).normal(0.0, 0.01, (n_bars, n_combos))


def test_a_grid_of_noise_is_overfit_half_the_time():
    pbos = [probability_of_overfitting(_noise(seed)).pbo for seed in range(6)]
    assert 0.35 < np.mean(pbos) < 0.65


def test_a_planted_edge_is_not_overfit():
    returns = _noise(1)
    returns[:, 7] += 0.002  # a Sharpe of 0.2 per bar where the others have none
    assert probability_of_overfitting(returns).pbo < 0.05
    assert probability_of_overfitting(pd.DataFrame(returns), n_splits=8).pbo < 0.05


def test_logits_equal_a_brute_force_cscv():
    returns = _noise(2, n_bars=120, n_combos=5)
    n_splits = 6
    result = probability_of_overfitting(returns, n_splits=n_splits)
    blocks = np.array_split(returns, n_splits)
    expected = []
    for train in itertools.combinations(range(n_splits), n_splits // 2):
        test = [b for b in range(n_splits) if b not in train]
        is_ = np.vstack([blocks[b] for b in train])
        oos = np.vstack([blocks[b] for b in test])
        best = np.argmax(is_.mean(axis=0) / is_.std(axis=0))
        oos_sharpe = oos.mean(axis=0) / oos.std(axis=0)
        rank = scipy_stats.rankdata(oos_sharpe)[best]  # 1 = worst
        omega = rank / (returns.shape[1] + 1)
        expected.append(np.log(omega / (1 - omega)))
    np.testing.assert_allclose(result.logits, expected, rtol=1e-9)
    assert result.pbo == pytest.approx(np.mean(np.array(expected) <= 0))


def test_expected_max_sharpe_matches_simulated_maxima():
    rng = np.random.default_rng(3)
    for n_trials, variance in ((10, 0.04), (100, 1.0), (1000, 0.01)):
        simulated = rng.normal(0.0, np.sqrt(variance), (4000, n_trials)).max(axis=1).mean()
        assert expected_max_sharpe(n_trials, variance) == pytest.approx(simulated, rel=0.03)
    assert expected_max_sharpe(1, 1.0) == 0.0


def test_probabilistic_sharpe_equals_its_formula_with_scipy_moments():
    r = np.random.default_rng(4).standard_t(5, 1500) * 0.01 + 0.0008
    sr = r.mean() / r.std()
    skew, kurt = scipy_stats.skew(r), scipy_stats.kurtosis(r, fisher=False)
    for benchmark in (0.0, 0.05):
        z = (sr - benchmark) * np.sqrt(len(r) - 1) / np.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr ** 2)
        assert probabilistic_sharpe(r, benchmark) == pytest.approx(scipy_stats.norm.cdf(z), rel=1e-9)
    symmetric = np.r_[r - r.mean(), -(r - r.mean())]  # mean 0: a coin flip
    assert probabilistic_sharpe(symmetric) == pytest.approx(0.5, abs=1e-9)


def test_more_trials_deflate_more():
    returns = _noise(5)
    returns[:, 0] += 0.0006
    best = returns[:, 0]
    values = [deflated_sharpe(best, n_trials=n, sharpe_variance=0.0005) for n in (1, 10, 100, 1000)]
    assert values[0] == pytest.approx(probabilistic_sharpe(best))
    assert values == sorted(values, reverse=True) and values[-1] < values[0]
    # on a grid: the best column, the grid's own trial count and Sharpe variance
    sharpes = returns.mean(axis=0) / returns.std(axis=0)
    assert deflated_sharpe(returns) == pytest.approx(
        deflated_sharpe(returns[:, np.argmax(sharpes)], n_trials=40, sharpe_variance=sharpes.var(ddof=1)))


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="n_splits must be even"):
        probability_of_overfitting(_noise(0), n_splits=5)
    with pytest.raises(ValueError, match="at least 2 combinations"):
        probability_of_overfitting(_noise(0, n_combos=1))
    bad = _noise(0)
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        probability_of_overfitting(bad)
    with pytest.raises(ValueError, match="needs n_trials and sharpe_variance"):
        deflated_sharpe(_noise(0)[:, 0])
