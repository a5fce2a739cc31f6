"""Stress: shocks change only their window (and the level after it), and a crash liquidates
the leverage that cannot take it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

import backtest
from backtest.stress import PRICES, Shock, inject, stress_test
from tests.test_montecarlo import HoldLong


@pytest.fixture(scope="module")
def market():
    return backtest.load(backtest.sample_path("BTCUSDT"))[-1500:]


def _window(market, shock):
    start = int(market.index.searchsorted(pd.Timestamp(shock.at)))
    return start, start + shock.bars


def test_bars_outside_a_recovered_shock_are_untouched(market):
    shock = Shock(at=market.index[700], drop=0.3, bars=8, wick=0.05, recovery=1.0,
                  mark_divergence=0.02, depth_factor=0.1, funding_rate=-0.003)
    shocked = inject(market, shock)
    start, end = _window(market, shock)
    outside = np.r_[0:start, end:len(market)]
    for name, before, after in (("ohlcv", market.ohlcv, shocked.ohlcv), ("mark", market.mark, shocked.mark)):
        np.testing.assert_array_equal(after[PRICES].to_numpy()[outside],
                                      before[PRICES].to_numpy()[outside], err_msg=name)
    np.testing.assert_array_equal(shocked.depth.to_numpy()[outside], market.depth.to_numpy()[outside])
    np.testing.assert_array_equal(shocked.funding.to_numpy()[outside], market.funding.to_numpy()[outside])
    # inside: the bottom, the wick, the mark beyond it, the thin book, the funding spike
    bottom_close = shocked.close.iloc[start + 3]
    assert bottom_close == pytest.approx(market.close.iloc[start + 3] * 0.7, rel=1e-12)
    assert shocked.low.iloc[start:end].min() <= market.low.iloc[start + 3] * 0.7 * 0.95 * (1 + 1e-12)
    no_divergence = inject(market, dataclasses.replace(shock, mark_divergence=0.0))
    np.testing.assert_allclose(shocked.mark["low"].iloc[start:end],
                               no_divergence.mark["low"].iloc[start:end] * 0.98, rtol=1e-12)
    np.testing.assert_allclose(shocked.depth.iloc[start:end], market.depth.iloc[start:end] * 0.1)
    events = market.funding.iloc[start:end].notna()
    assert (shocked.funding.iloc[start:end][events] == -0.003).all() and events.any()
    backtest.Market(shocked.ohlcv, mark=shocked.mark, symbol="X")  # a valid market


def test_an_unrecovered_crash_shifts_the_level_after_it(market):
    shock = Shock(at=market.index[500], drop=0.2, bars=4)
    shocked = inject(market, shock)
    np.testing.assert_array_equal(shocked.close.iloc[:500], market.close.iloc[:500])
    np.testing.assert_allclose(shocked.close.iloc[503:], market.close.iloc[503:] * 0.8, rtol=1e-12)
    np.testing.assert_allclose(shocked.close.iloc[500:504] / market.close.iloc[500:504],
                               np.exp(np.linspace(0, np.log(0.8), 5)[1:]), rtol=1e-12)


def test_a_crash_liquidates_ten_x_and_one_x_survives(market):
    calm = inject(market, Shock(at=market.index[0], drop=0.0))  # the same bars
    shock = Shock(at=market.index[900], drop=0.3, bars=6, wick=0.05, depth_factor=0.1)
    table = stress_test(HoldLong(), calm, {"crash": shock}, leverage=[1, 10])
    assert table.loc[("crash", 1.0), "survives"]
    assert not table.loc[("crash", 10.0), "survives"]
    when = table.loc[("crash", 10.0), "liquidated_at"]
    alone = HoldLong(leverage=10.0).run(inject(calm, shock))
    assert when == alone.liquidations["time"].min()
    assert table.loc[("crash", 10.0), "loss"] > table.loc[("crash", 1.0), "loss"]
    assert set(table.index.get_level_values("scenario")) == {"none", "crash"}


def test_bad_shocks_are_named(market):
    with pytest.raises(ValueError, match="drop is a fraction"):
        inject(market, Shock(at=market.index[10], drop=1.5))
    with pytest.raises(ValueError, match="after the market's last bar"):
        inject(market, Shock(at="2100-01-01", drop=0.1))
