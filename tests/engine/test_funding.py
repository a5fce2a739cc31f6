"""Funding: each position pays qty × mark open × rate at funding bars (longs pay positive rates,
shorts receive them); a constant rate is charged at 00, 08 and 16 UTC; it moves the isolated
margin, so a funding drain alone can liquidate; ``funding=False`` charges nothing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import backtest

from .helpers import bars, flat, signal_at

N_BARS = 48  # two days of hourly bars from 00:00: funding bars 8, 16, 24, 32, 40 (0 is before entry)


def _hold(market, side=1, **kwargs):
    """Hold 1,000 of notional (10 coins at 100) from the first bar's close."""
    entries = signal_at(len(market), 0)
    settings = dict(size=1000.0, size_type="notional", timing="close", init_cash=10_000.0)
    settings.update(kwargs)
    if side > 0:
        return backtest.simulate(market, entries=entries, **settings)
    return backtest.simulate(market, short_entries=entries, **settings)


def test_constant_rate_is_charged_every_8_hours_at_00_08_16_utc():
    result = _hold(flat(N_BARS), funding=0.001)
    payments = result.funding
    assert payments["time"].dt.hour.tolist() == [8, 16, 0, 8, 16]
    assert payments["time"].dt.minute.eq(0).all()
    # qty 10 × price 100 × 0.1% = 1 USDT per funding
    assert payments["payment"].tolist() == pytest.approx([1.0] * 5)
    assert payments["rate"].tolist() == pytest.approx([0.001] * 5)
    assert result.stats()["funding_paid"] == pytest.approx(5.0)
    assert result.trades["funding"].tolist() == pytest.approx([5.0])
    assert result.equity.iloc[-1] == pytest.approx(10_000.0 - 5.0)


def test_a_positive_rate_is_paid_by_longs_and_received_by_shorts():
    long = _hold(flat(N_BARS), funding=0.001)
    short = _hold(flat(N_BARS), side=-1, funding=0.001)
    assert (long.funding["payment"] > 0).all()
    assert (short.funding["payment"] < 0).all()
    assert short.stats()["funding_paid"] == pytest.approx(-5.0)
    assert short.equity.iloc[-1] == pytest.approx(10_005.0)


def test_a_negative_rate_is_paid_by_shorts_and_received_by_longs():
    long = _hold(flat(N_BARS), funding=-0.001)
    short = _hold(flat(N_BARS), side=-1, funding=-0.001)
    assert long.equity.iloc[-1] == pytest.approx(10_005.0)
    assert short.equity.iloc[-1] == pytest.approx(9_995.0)


def test_constant_rate_on_three_hour_bars_is_charged_on_the_bar_holding_the_funding_time():
    # bars open at 00, 03, 06, 09, ...: 08:00 falls in the 06:00 bar, 16:00 in the 15:00 bar
    result = _hold(flat(16, freq="3h"), funding=0.001)
    assert result.funding["time"].dt.hour.tolist()[:4] == [6, 15, 0, 6]


def test_constant_rate_on_daily_bars_charges_three_fundings_per_bar():
    result = _hold(flat(4, freq="1D"), funding=0.001)
    assert result.funding["rate"].tolist() == pytest.approx([0.003] * 3)
    assert result.funding["payment"].tolist() == pytest.approx([3.0] * 3)


def test_funding_series_is_paid_on_the_mark_open():
    index = pd.date_range("2025-01-01", periods=N_BARS, freq="1h", tz="UTC")
    rates = pd.Series([0.0002, -0.0004], index=index[[8, 16]])
    rows = [(100, 100, 100, 100)] * N_BARS
    mark = [(110, 110, 110, 110)] * N_BARS
    result = _hold(bars(rows, mark=mark, funding=rates))
    # qty 10 bought at 100; paid at the mark open 110: 10 × 110 × 0.0002 = 0.22, then 0.44 back
    assert result.funding["payment"].tolist() == pytest.approx([0.22, -0.44])
    assert result.funding["price"].tolist() == [110.0, 110.0]
    assert result.funding["qty"].tolist() == [10.0, 10.0]
    assert result.trades["funding"].sum() == pytest.approx(-0.22)
    assert result.equity.iloc[-1] == pytest.approx(10_000.0 + 0.22)


def test_funding_at_a_bar_open_is_paid_by_the_position_held_then_with_next_open_timing():
    # signals on bars 7 and 15 fill at the opens of bars 8 and 16, the funding bars
    result = backtest.simulate(flat(24), entries=signal_at(24, 7), exits=signal_at(24, 15),
                               size=1000.0, size_type="notional", funding=0.001,
                               timing="next_open")
    # the position opened at bar 8's open did not hold at 08:00; the one closed at 16:00 did
    assert result.funding["time"].dt.hour.tolist() == [16]
    assert result.funding["payment"].tolist() == pytest.approx([1.0])


def test_total_funding_equals_the_sum_of_qty_mark_open_rate_over_funding_bars():
    n_bars = 240
    rng = np.random.default_rng(0)
    index = pd.date_range("2025-01-01", periods=n_bars, freq="1h", tz="UTC")
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.004, n_bars)))
    rows = np.column_stack([close, close * 1.002, close * 0.998, close])
    mark = rows * (1 + rng.normal(0, 0.001, (n_bars, 1)))
    mark[:, 1] = mark.max(axis=1)
    mark[:, 2] = mark.min(axis=1)
    rates = pd.Series(rng.normal(0.0001, 0.0004, n_bars // 8), index=index[::8])
    market = bars(rows, mark=mark, funding=rates)
    signals = {name: rng.random((n_bars, 3)) < 0.05
               for name in ("entries", "exits", "short_entries", "short_exits")}
    for timing in ("close", "next_open"):
        result = backtest.simulate(market, **signals, timing=timing, leverage=3.0)
        held = result.position.to_numpy()  # qty at each close = qty held at the next open
        expected = sum(held[i - 1] * mark[i, 0] * rates.iloc[k]
                       for k, i in enumerate(range(0, n_bars, 8)) if i > 0)
        paid = result.funding.groupby("col")["payment"].sum().reindex(range(3), fill_value=0.0)
        np.testing.assert_allclose(paid.to_numpy(), expected, rtol=1e-12)
        assert (result.funding["payment"] != 0).sum() > 20
        # long payments have the rate's sign, short ones the opposite
        signs = np.sign(result.funding["qty"]) * np.sign(result.funding["rate"])
        assert (np.sign(result.funding["payment"]) == signs).all()


def test_funding_moves_the_isolated_liquidation_price():
    # 10x long, 1,000 of margin on 100 coins at 100; 1% funding at 08:00 costs 100 of margin:
    # LP goes from (1,000 − 10,000) / (0.5 − 100) = 90.45 to (900 − 10,000) / (0.5 − 100) = 91.46
    rows = [(100, 100, 100, 100)] * 8 + [(100, 100, 91.0, 99.0)]
    result = backtest.simulate(bars(rows), entries=signal_at(9, 0), leverage=10.0, mmr=0.005,
                               funding=0.01, timing="close", init_cash=1000.0, liquidation_fee=0.0)
    assert result.funding["payment"].tolist() == pytest.approx([100.0])
    assert result.liquidations["price"].tolist() == pytest.approx([9100 / 99.5])


def test_funding_drain_alone_liquidates_an_isolated_position():
    # 20x isolated long at a flat 100: notional 20,000, qty 200, margin 1,000, maintenance 100.
    # 0.4% funding costs 80 every 8 h: after 11 fundings 120 of margin is left, after the 12th
    # (bar 96) only 40 < 100, so the position is liquidated at that bar's open, at 100
    n_bars = 100
    result = backtest.simulate(flat(n_bars), entries=signal_at(n_bars, 0), leverage=20.0,
                               mmr=0.005, funding=0.004, timing="close", init_cash=1000.0,
                               liquidation_fee=0.0)
    assert result.trades["exit_reason"].tolist() == ["liquidation"]
    assert result.trades["exit_time"].iloc[0] == flat(n_bars).index[96]
    assert result.liquidations["price"].tolist() == [100.0]
    assert len(result.funding) == 12
    assert result.funding["payment"].sum() == pytest.approx(960.0)
    assert result.equity.iloc[-1] == pytest.approx(40.0)


def test_funding_off_charges_nothing():
    index = pd.date_range("2025-01-01", periods=N_BARS, freq="1h", tz="UTC")
    rates = pd.Series(0.01, index=index[::8])
    result = _hold(flat(N_BARS, funding=rates), funding=False)
    assert len(result.funding) == 0
    assert result.stats()["funding_paid"] == 0.0
    assert result.equity.iloc[-1] == 10_000.0
