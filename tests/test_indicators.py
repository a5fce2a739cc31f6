"""backtest.indicators: vectorbt's numbers, on the market's index."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import vectorbt as vbt

from backtest import indicators
from tests.test_strategy import _market


@pytest.mark.parametrize("ewm", [False, True])
def test_ma_equals_vectorbt_on_the_market_index(ewm):
    close = _market().close
    ours = indicators.ma(close, 12, ewm=ewm)
    theirs = vbt.MA.run(close, 12, ewm=ewm).ma
    assert ours.index.equals(close.index)
    np.testing.assert_array_equal(ours.to_numpy(), theirs.to_numpy())
    assert np.isnan(ours.iloc[10]) and not np.isnan(ours.iloc[11])


def test_atr_equals_vectorbt_from_a_market_or_series():
    market = _market()
    theirs = vbt.ATR.run(market.high, market.low, market.close, window=14).atr.to_numpy()
    from_market = indicators.atr(market, window=14)
    from_series = indicators.atr(market.high, market.low, market.close, window=14)
    assert from_market.index.equals(market.index)
    np.testing.assert_array_equal(from_market.to_numpy(), theirs)
    np.testing.assert_array_equal(from_series.to_numpy(), theirs)
    # hand check: constant range 2 around a flat close gives an ATR of 2 once warmed up
    flat = np.full(30, 100.0)
    assert indicators.atr(flat + 1, flat - 1, flat, window=5)[-1] == pytest.approx(2.0)


def test_numpy_in_numpy_out_and_bad_shapes_are_named():
    assert isinstance(indicators.ma(np.arange(1.0, 6.0), 2), np.ndarray)
    with pytest.raises(ValueError, match="close must be one value per bar"):
        indicators.ma(np.ones((3, 2)), 2)
    with pytest.raises(ValueError, match="lengths differ"):
        indicators.atr(np.ones(5), np.ones(4), np.ones(5))
    with pytest.raises(ValueError, match="low and close are required"):
        indicators.atr(pd.Series(np.ones(5)))


@pytest.mark.parametrize("window", [1, 2, 7, 50])
@pytest.mark.parametrize("ewm", [False, True])
def test_ma_is_vectorbt_bit_for_bit_with_nans_and_short_series(window, ewm):
    rng = np.random.default_rng(window)
    values = 100 + rng.normal(0, 1, 300).cumsum()
    values[[0, 5, 6, 120]] = np.nan          # gaps vectorbt skips
    values[200:230] = 101.25                  # a constant run (exact in the EWM)
    theirs = vbt.MA.run(values, window, ewm=ewm).ma.to_numpy()
    np.testing.assert_array_equal(indicators.ma(values, window, ewm=ewm), theirs)
    np.testing.assert_array_equal(indicators.ma(values[:3], window, ewm=ewm),
                                  vbt.MA.run(values[:3], window, ewm=ewm).ma.to_numpy())


def test_running_a_strategy_does_not_import_vectorbt():
    """Importing vectorbt costs seconds per process: the run path must not need it."""
    import subprocess
    import sys

    code = ("import sys, backtest\nfrom strategies import TrendFollowing\n"
            "m = backtest.load(backtest.sample_path('BTCUSDT'))[-3000:]\n"
            "TrendFollowing().run(m, fast=[12, 24]).stats()\n"
            "print('vectorbt' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("window", [0, -3, 2.5, True])
def test_bad_windows_are_named(window):
    with pytest.raises(ValueError, match="window must be a whole number"):
        indicators.ma(np.ones(5), window)
