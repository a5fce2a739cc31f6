"""Funding: Σ qty × mark × rate at funding times, signed; it can drain a position into liquidation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import backtest

from .helpers import bars, flat, signal_at

N_BARS = 48  # two days of hourly bars from 00:00: funding bars 0, 8, ..., 40


def _hold(market, side=1, **kwargs):
    entries = signal_at(len(market), 0)
    settings = dict(size=1000.0, size_type="notional", timing="close", init_cash=10_000.0)
    settings.update(kwargs)
    if side > 0:
        return backtest.simulate(market, entries=entries, **settings)
    return backtest.simulate(market, short_entries=entries, **settings)


def test_constant_rate_is_charged_every_8_hours_on_qty_times_price():
    result = _hold(flat(N_BARS), funding=0.001)
    payments = result.funding
    assert payments["time"].dt.hour.tolist() == [8, 16, 0, 8, 16]
    # qty 10 × price 100 × 0.1% = 1 USDT per funding
    assert payments["payment"].tolist() == pytest.approx([1.0] * 5)
    assert result.stats()["funding_paid"] == pytest.approx(5.0)
    assert result.equity.iloc[-1] == pytest.approx(10_000.0 - 5.0)


def test_shorts_receive_positive_funding():
    result = _hold(flat(N_BARS), side=-1, funding=0.001)
    assert result.stats()["funding_paid"] == pytest.approx(-5.0)
    assert result.equity.iloc[-1] == pytest.approx(10_005.0)


def test_market_funding_series_uses_the_mark_open():
    index = pd.date_range("2025-01-01", periods=N_BARS, freq="1h", tz="UTC")
    rates = pd.Series([0.0002, -0.0004], index=index[[8, 16]])
    rows = [(100, 100, 100, 100)] * N_BARS
    mark = [(110, 110, 110, 110)] * N_BARS
    result = _hold(bars(rows, mark=mark, funding=rates))
    # qty 10 at 100; paid at the mark open 110: 10 × 110 × 0.0002 = 0.22, then receives 0.44
    assert result.funding["payment"].tolist() == pytest.approx([0.22, -0.44])
    assert result.funding["price"].tolist() == [110.0, 110.0]
    assert result.trades["funding"].sum() == pytest.approx(-0.22)


def test_total_funding_equals_sum_of_qty_mark_rate_at_funding_times():
    rng = np.random.default_rng(0)
    index = pd.date_range("2025-01-01", periods=240, freq="1h", tz="UTC")
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.002, 240)))
    rows = np.column_stack([close, close * 1.001, close * 0.999, close])
    rates = pd.Series(rng.normal(0.0001, 0.0003, 30), index=index[::8])
    market = bars(rows, funding=rates)
    result = backtest.simulate(market, entries=signal_at(240, 3, 100), exits=signal_at(240, 60),
                               short_entries=signal_at(240, 150), timing="close", leverage=2.0)
    position = result.position.to_numpy()
    held = position[np.arange(240)[::8] - 1][1:]  # qty held when each funding (bar 8k) opens
    expected = (held * market.open.to_numpy()[::8][1:] * rates.to_numpy()[1:]).sum()
    assert result.funding["payment"].sum() == pytest.approx(expected, rel=1e-12)


def test_funding_drain_alone_liquidates_an_isolated_position():
    # 20x: margin 5% of notional, 1% funding per 8 h; maintenance 0.5% → liquidated at the 5th
    result = backtest.simulate(flat(N_BARS), entries=signal_at(N_BARS, 0), leverage=20.0,
                               mmr=0.005, funding=0.01, timing="close", init_cash=1000.0)
    assert result.trades["exit_reason"].tolist() == ["liquidation"]
    assert result.trades["exit_time"].iloc[0] == flat(N_BARS).index[40]
    assert len(result.funding) == 5


def test_funding_off_charges_nothing():
    result = _hold(flat(N_BARS), funding=False)
    assert len(result.funding) == 0
    assert result.equity.iloc[-1] == 10_000.0
