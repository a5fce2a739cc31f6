"""The report's own numbers (backtest/report/analysis.py): hand-worked cases and equality with
vectorbt, which the report no longer imports."""

from __future__ import annotations

import doctest

import numpy as np
import pandas as pd
import pytest

from backtest.report import analysis, sections


def test_mae_and_mfe_of_a_long_and_a_short_by_hand():
    """Both trades enter at bar 1 at 100 and exit at bar 3. Over bars 1..3 the highest high is
    106 (bar 2) and the lowest low 95 (bar 3): the long's MAE is 95/100 - 1 = -5% and its MFE
    106/100 - 1 = +6%; the short's MAE is 1 - 106/100 = -6% and its MFE 1 - 95/100 = +5%.
    Bar 0 (high 120) and bar 4 (low 80) lie outside both trades."""
    high = np.array([120.0, 101.0, 106.0, 99.0, 100.0])
    low = np.array([99.0, 98.0, 97.0, 95.0, 80.0])
    mae, mfe = analysis.excursions(high, low, entry_bar=[1, 1], exit_bar=[3, 3],
                                   entry_price=[100.0, 100.0], side=[1, -1])
    np.testing.assert_allclose(mae, [-0.05, -0.06], rtol=1e-12)
    np.testing.assert_allclose(mfe, [0.06, 0.05], rtol=1e-12)


def test_excursions_of_one_bar_trades_and_overlapping_trades():
    high = np.array([10.0, 12.0, 11.0])
    low = np.array([9.0, 8.0, 10.5])
    mae, mfe = analysis.excursions(high, low, entry_bar=[2, 0, 1], exit_bar=[2, 2, 2],
                                   entry_price=[10.0, 10.0, 10.0], side=[1, 1, -1])
    np.testing.assert_allclose(mae, [0.05, -0.2, -0.2], rtol=1e-12)  # bar 2 alone: low 10.5 > entry
    np.testing.assert_allclose(mfe, [0.1, 0.2, 0.2], rtol=1e-12)


def test_excursions_of_no_trades():
    mae, mfe = analysis.excursions([1.0], [1.0], [], [], [], [])
    assert mae.shape == mfe.shape == (0,)


def _random_returns(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    returns = rng.normal(0.0002, 0.01, n)
    returns[500:1400] = 0.0  # flat: no position, windows without variance
    returns[2000] = -0.5  # a liquidation-sized loss leaving the window later
    return pd.Series(returns, index=pd.date_range("2024-01-01", periods=n, freq="1h", tz="UTC"))


@pytest.mark.parametrize("window", [2, 3, 24, 720])
def test_rolling_sharpe_and_volatility_equal_vectorbt(window):
    from backtest.result import _register_vectorbt

    _register_vectorbt()
    returns = _random_returns()
    accessor = returns.vbt.returns(freq=pd.Timedelta("1h"), year_freq="365 days")
    expected_sharpe = accessor.rolling_sharpe_ratio(window).to_numpy()
    expected_vol = accessor.rolling_annualized_volatility(window).to_numpy()
    sharpe, vol = analysis.rolling_metrics(returns.to_numpy(), window, sections.bars_per_year(pd.Timedelta("1h")))
    np.testing.assert_allclose(sharpe, expected_sharpe, rtol=1e-9, atol=0)  # NaN and inf alike
    np.testing.assert_allclose(vol, expected_vol, rtol=1e-9, atol=1e-15)
    assert np.isinf(sharpe).any() and np.isnan(sharpe[: window - 1]).all()


def test_drawdown_periods_equal_vectorbt_records():
    from backtest.result import _register_vectorbt

    _register_vectorbt()
    rng = np.random.default_rng(3)
    equity = pd.Series(1000 * np.exp(np.cumsum(rng.normal(0, 0.01, 5000))),
                       index=pd.date_range("2024-01-01", periods=5000, freq="1h"))
    equity.iloc[100:110] = equity.iloc[99]  # a plateau at a peak
    records = equity.vbt(freq="1h").drawdowns.records
    periods = analysis.drawdown_periods(equity.to_numpy())
    np.testing.assert_array_equal(periods["peak"], records["peak_idx"])
    np.testing.assert_array_equal(periods["valley"], records["valley_idx"])
    np.testing.assert_array_equal(periods["end"], records["end_idx"])
    np.testing.assert_array_equal(periods["recovered"], records["status"] == 1)
    np.testing.assert_allclose(periods["depth"],
                               1 - records["valley_val"] / records["peak_val"], rtol=1e-12)


def test_alpha_and_beta_equal_a_least_squares_fit():
    rng = np.random.default_rng(5)
    bench = rng.normal(0.0, 0.01, 2000)
    strategy = 0.0003 + 0.4 * bench + rng.normal(0.0, 0.005, 2000)
    fit = analysis.alpha_beta(strategy, bench, bars_per_year=8760.0)
    design = np.column_stack([np.ones_like(bench), bench])
    (intercept, slope), *_ = np.linalg.lstsq(design, strategy, rcond=None)
    assert fit["beta"] == pytest.approx(slope, rel=1e-10)
    assert fit["alpha"] == pytest.approx(intercept * 8760.0, rel=1e-9)
    assert fit["correlation"] == pytest.approx(np.corrcoef(strategy, bench)[0, 1], rel=1e-12)


def test_alpha_and_beta_are_undefined_against_a_flat_benchmark():
    fit = analysis.alpha_beta([0.01, 0.02, -0.01], [0.0, 0.0, 0.0], bars_per_year=365.0)
    assert all(np.isnan(v) for v in fit.values())


def test_downsampling_keeps_spikes_and_both_ends():
    values = np.random.default_rng(1).normal(0.0, 1.0, 1_000_003)
    values[777_777], values[123_456] = -50.0, 40.0  # a wick each way
    keep = analysis.minmax_indices(values, 2000)
    assert len(keep) <= 2002 and np.all(np.diff(keep) > 0)
    assert {0, 123_456, 777_777, len(values) - 1} <= set(keep.tolist())
    assert analysis.minmax_indices(values[:50], 2000).tolist() == list(range(50))


def test_downsampling_skips_nan():
    values = np.array([np.nan, np.nan, 1.0, 3.0, np.nan, np.nan, np.nan, np.nan, 2.0, 0.0])
    keep = analysis.minmax_indices(values, 6)  # buckets of 4: [nan nan 1 3] [nan nan nan nan] [2 0]
    assert keep.tolist() == [0, 2, 3, 4, 8, 9]


@pytest.mark.parametrize("module", [analysis, sections])
def test_docstring_examples(module):
    failed, _ = doctest.testmod(module)
    assert failed == 0
