"""Regression tests for the wrong numbers an audit found (issue "Engine fidelity"), one per item,
each computed by hand."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import backtest
from backtest.errors import DataError, DataWarning

from .helpers import bars, signal_at

TWO_BRACKETS = pd.DataFrame({"min_notional": [0.0, 100_000.0], "max_notional": [100_000.0, 1e12],
                             "mmr": [0.01, 0.10], "maintenance_amount": [0.0, 9_000.0],
                             "max_leverage": [10.0, 5.0]})
HOURS = pd.Timedelta(hours=1)


def _flat_rows(*prices):
    return [(p, p, p, p) for p in prices]


# ----- 1. the tier cap --------------------------------------------------------------------------


@pytest.mark.parametrize("size_type", ["exposure", "risk", "target_vol"])
def test_capped_sizes_stop_below_the_largest_bracket_that_allows_the_leverage(size_type):
    """BTCUSDT at 20x: brackets up to 70M-100M allow it. 20x exposure of 10M asks for 200M; the
    cap is just below 100M (inside the 20x bracket), not the first bracket's 50,000."""
    n = 40
    rows = [(100.0 * (1 + 0.01 * (k % 2)),) * 4 for k in range(n)]
    size = {"exposure": 20.0, "risk": 1.0, "target_vol": 1e6}[size_type]
    result = backtest.simulate(bars(rows), entries=signal_at(n, n - 2), size=size,
                               size_type=size_type, sl_stop=0.01, leverage=20.0, tiers="BTCUSDT",
                               init_cash=10_000_000.0, timing="close", funding=False, vol_window=5)
    order = result.orders.iloc[0]
    notional = order["qty"] * order["price"]
    assert order["status"] == "filled"
    assert notional == pytest.approx(100_000_000.0, rel=1e-12)
    tiers = backtest.load_tiers("BTCUSDT")
    k = int(np.searchsorted(tiers["max_notional"].to_numpy(), notional, side="right"))
    assert tiers.loc[k, "max_leverage"] == 20.0  # strictly inside the 70M-100M bracket
    assert result.margin.iloc[n - 2] == pytest.approx(5_000_000.0, rel=1e-12)


# ----- 2. the bracket at the liquidation price ----------------------------------------------------


@pytest.mark.parametrize("high", [150.0, 148.5])
def test_liquidation_uses_the_bracket_of_the_notional_at_the_liquidation_price(high):
    """A 2x short of 900 coins at 100 with 45,000 of isolated margin. At the entry bracket (1%)
    the line crosses at 148.515, but the notional there, 133,663, is in the 10% bracket:
    (45,000 + 9,000 + 90,000) / (900·0.10 + 900) = 145.4545. A high of 148.5 must liquidate too."""
    market = bars([(100, 100, 100, 100), (100, high, 99, 140)])
    result = backtest.simulate(market, short_entries=signal_at(2, 0), size=90_000.0,
                               size_type="notional", leverage=2.0, tiers=TWO_BRACKETS,
                               init_cash=45_000.0, timing="close", funding=False,
                               liquidation_fee=0.0)
    liquidation = result.liquidations.iloc[0]
    assert liquidation["price"] == pytest.approx(144_000 / 990, rel=1e-12)
    assert liquidation["time"] == market.index[1]
    # what is left is the maintenance margin of the 10% bracket at that price
    lp = 144_000 / 990
    assert result.equity.iloc[-1] == pytest.approx(900 * lp * 0.10 - 9_000, rel=1e-9)


def test_bracket_boundaries_inside_a_bar_are_walked_for_a_long():
    """BTCUSDT 20x long of 520 coins at 100 (notional 52,000, bracket 0.5%): on the way down the
    notional drops below 50,000 and the 0.4% bracket applies, LP = 49,400 / 517.92."""
    market = bars([(100, 100, 100, 100), (100, 100, 90, 95)])
    result = backtest.simulate(market, entries=signal_at(2, 0), size=52_000.0, size_type="notional",
                               leverage=20.0, tiers="BTCUSDT", init_cash=10_000.0, timing="close",
                               funding=False, liquidation_fee=0.0)
    assert result.liquidations["price"].iloc[0] == pytest.approx(49_400 / 517.92, rel=1e-12)


# ----- 3. a grouped cross account does not forgive realized losses ---------------------------------


def test_a_cross_wallet_may_go_negative_while_the_account_is_solvent():
    """Column 1 holds 10 coins from 100 (1x); column 0 buys 25 coins at 400 (10x) and sells at
    340: −1,500 realized on a 1,000 wallet. The wallet is −500, backed by column 1's +2,400."""
    market = bars(_flat_rows(100, 400, 340, 340))
    entries = np.zeros((4, 2), dtype=bool)
    entries[1, 0] = entries[0, 1] = True
    exits = np.zeros((4, 2), dtype=bool)
    exits[2, 0] = True
    result = backtest.simulate(market, entries=entries, exits=exits, size=[[10_000.0, 1_000.0]],
                               size_type="notional", leverage=np.array([10.0, 1.0]),
                               margin_mode="cross", group_by=True, init_cash=1_000.0,
                               timing="close", funding=False)
    assert result.wallet.tolist() == pytest.approx([1_000.0, 1_000.0, -500.0, -500.0])
    assert result.equity.tolist() == pytest.approx([1_000.0, 4_000.0, 1_900.0, 1_900.0])
    assert len(result.liquidations) == 0
    assert result.equity.iloc[-1] == pytest.approx(1_000.0 + result.trades["pnl"].sum())
    assert result.trades["insurance_shortfall"].sum() == 0.0


# ----- 4. and 5. losses stop at the collateral in every exit path ----------------------------------


def _gap_through_the_stop(margin_mode, init_cash, sl_stop=0.05, bars_after=1):
    """10x long of 10,000 notional at 100; the traded price opens at 80 while the mark stays at
    100, so no liquidation: the position leaves by its stop at the open, or stays to the end."""
    traded = [(100, 100, 100, 100)] + [(80, 81, 79, 80)] * bars_after
    mark = [(100, 100, 100, 100)] * (1 + bars_after)
    return backtest.simulate(bars(traded, mark=mark), entries=signal_at(1 + bars_after, 0),
                             size=10_000.0, size_type="notional", leverage=10.0,
                             margin_mode=margin_mode, sl_stop=sl_stop, init_cash=init_cash,
                             timing="close", funding=False)


def test_an_isolated_stop_that_gaps_past_bankruptcy_loses_only_the_margin():
    result = _gap_through_the_stop("isolated", 10_000.0)
    trade = result.trades.iloc[0]
    assert trade["exit_reason"] == "stop_loss" and trade["exit_price"] == 80.0
    # 100 coins × −20 = −2,000 against 1,000 of margin
    assert trade["pnl"] == pytest.approx(-1_000.0)
    assert trade["insurance_shortfall"] == pytest.approx(1_000.0)
    assert result.equity.iloc[-1] == pytest.approx(9_000.0)
    assert result.stats()["insurance_shortfall"] == pytest.approx(1_000.0)


def test_an_isolated_position_marked_at_the_end_loses_only_the_margin():
    result = _gap_through_the_stop("isolated", 10_000.0, sl_stop=None)
    trade = result.trades.iloc[0]
    assert trade["exit_reason"] == "end"
    assert trade["pnl"] == pytest.approx(-1_000.0)
    assert trade["insurance_shortfall"] == pytest.approx(1_000.0)
    assert result.equity.iloc[-1] == pytest.approx(10_000.0 + trade["pnl"])


def test_a_cross_account_closing_past_its_wallet_records_the_shortfall():
    result = _gap_through_the_stop("cross", 1_000.0)
    trade = result.trades.iloc[0]
    assert trade["pnl"] == pytest.approx(-1_000.0)
    assert trade["insurance_shortfall"] == pytest.approx(1_000.0)
    assert result.wallet.iloc[-1] == 0.0
    assert result.equity.iloc[-1] == 0.0


def test_a_close_fee_is_paid_only_out_of_what_is_left():
    """The stop fills at 89.5 (the open): −1,050 on 1,000 of margin, nothing left for the fee."""
    traded = [(100, 100, 100, 100), (89.5, 90, 89, 89.5)]
    result = backtest.simulate(bars(traded, mark=_flat_rows(100, 100)), entries=signal_at(2, 0),
                               size=10_000.0, size_type="notional", leverage=10.0, sl_stop=0.05,
                               init_cash=5_000.0, fees=0.001, timing="close", funding=False)
    orders = result.orders
    assert orders["fee"].tolist() == pytest.approx([10.0, 0.0])
    assert result.trades["insurance_shortfall"].iloc[0] == pytest.approx(50.0)
    assert result.equity.iloc[-1] == pytest.approx(5_000.0 - 10.0 - 1_000.0)


# ----- 6. mark, funding and depth series at other timeframes --------------------------------------


def _hourly(n=4, low=95.0):
    index = pd.date_range("2025-01-01", periods=n, freq="1h", tz="UTC")
    frame = pd.DataFrame({"open": 100.0, "high": 100.0, "low": low, "close": 100.0}, index=index)
    return frame


def test_mark_candles_finer_than_the_bars_are_aggregated_and_liquidate():
    """A 15-minute mark low of 85 inside the second hour liquidates a 10x long (LP 90.45)."""
    bars_frame = _hourly()
    quarter = pd.date_range(bars_frame.index[0], periods=16, freq="15min")
    mark = pd.DataFrame({"open": 100.0, "high": 100.5, "low": 99.0, "close": 100.0}, index=quarter)
    mark.iloc[6, [0, 2, 3]] = [99.0, 85.0, 90.0]  # 01:30, inside the hour bar of 01:00
    market = backtest.Market(bars_frame, mark=mark)
    assert market.mark.iloc[1].tolist() == [100.0, 100.5, 85.0, 100.0]
    assert market.mark.iloc[0].tolist() == [100.0, 100.5, 99.0, 100.0]
    result = backtest.simulate(market, entries=signal_at(4, 0), leverage=10.0, mmr=0.005,
                               init_cash=1_000.0, timing="close", funding=False,
                               liquidation_fee=0.0)
    assert result.liquidations["price"].iloc[0] == pytest.approx(9_000 / 99.5)
    assert result.liquidations["time"].iloc[0] == bars_frame.index[1]


def test_mark_candles_coarser_than_the_bars_are_refused():
    bars_frame = _hourly(8)
    mark = pd.DataFrame({"open": 100.0, "high": 101.0, "low": 80.0, "close": 100.0},
                        index=pd.date_range(bars_frame.index[0], periods=2, freq="4h"))
    with pytest.raises(DataError, match=r"mark prices are given every 0 days 04:00:00, coarser "
                                        r"than the 0 days 01:00:00 bars.*look-ahead"):
        backtest.Market(bars_frame, mark=mark)


def test_mark_candles_offset_from_the_bars_are_not_used_and_a_warning_says_so():
    bars_frame = _hourly(4)
    offset = pd.date_range(bars_frame.index[0] + 0.5 * HOURS, periods=4, freq="1h")
    mark = pd.DataFrame({"open": 100.0, "high": 101.0, "low": 80.0, "close": 100.0}, index=offset)
    with pytest.warns(DataWarning, match=r"the mark price series covers 0 of 4 bars \(0%\); first uncovered "
                                         r"bar 2025-01-01 00:00:00\+00:00"):
        market = backtest.Market(bars_frame, mark=mark)
    assert market.mark.isna().all().all()


def test_partial_mark_coverage_names_the_first_uncovered_bar():
    bars_frame = _hourly(6)
    mark = bars_frame.iloc[:4]
    with pytest.warns(DataWarning, match=r"covers 4 of 6 bars \(67%\); first uncovered bar "
                                         r"2025-01-01 04:00:00\+00:00"):
        backtest.Market(bars_frame, mark=mark)


def test_funding_events_are_summed_into_their_bar_and_uncovered_bars_warned():
    bars_frame = _hourly(48)
    funding = pd.Series([0.001, 0.002, 0.003, 0.004],
                        index=pd.DatetimeIndex(["2025-01-01 08:00:00.004", "2025-01-01 08:10",
                                                "2025-01-01 16:00", "2025-01-02 00:00"], tz="UTC"))
    # events every 8 h from 08:00 to 00:00 (two in the 08:00 bar, summed): the bars up to 07:00
    # of the second day are covered, the rest of it is not
    with pytest.warns(DataWarning, match=r"the funding series covers 32 of 48 bars \(67%\); first "
                                         r"uncovered bar 2025-01-02 08:00:00\+00:00"):
        market = backtest.Market(bars_frame, funding=funding)
    assert market.funding.iloc[[8, 16, 24]].tolist() == pytest.approx([0.003, 0.003, 0.004])
    assert market.funding.notna().sum() == 3


def test_depth_finer_than_the_bars_takes_the_bar_minimum_and_coarser_is_refused():
    bars_frame = _hourly(2)
    minutes = pd.date_range(bars_frame.index[0], periods=120, freq="1min")
    depth = pd.Series(1e6, index=minutes)
    depth.iloc[75] = 2e5
    market = backtest.Market(bars_frame, depth=depth)
    assert market.depth.tolist() == [1e6, 2e5]
    daily = pd.Series([1e6, 1e6], index=pd.date_range(bars_frame.index[0], periods=2, freq="1D"))
    with pytest.raises(DataError, match="depth are given every 1 days"):
        backtest.Market(_hourly(48), depth=daily)


def test_series_on_the_bars_own_index_pass_through_without_warnings():
    frame = _hourly(3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        market = backtest.Market(frame, mark=frame, depth=pd.Series(1e6, index=frame.index))
    assert market.mark.equals(frame[["open", "high", "low", "close"]])


# ----- 7. leverage against the tier table in force -------------------------------------------------


@pytest.mark.parametrize(("kwargs", "maximum"), [({}, 125), ({"tiers": "ETHUSDT"}, 125),
                                                 ({"tiers": TWO_BRACKETS}, 10)])
def test_leverage_is_checked_against_the_tiers_in_force(kwargs, maximum):
    with pytest.raises(ValueError, match=rf"leverage 300.0 is above the maximum {maximum} the tier "
                                         r"table in force"):
        backtest.simulate(bars(_flat_rows(100, 100)), entries=signal_at(2, 0), leverage=300.0,
                          **kwargs)


# ----- 8. reason codes ----------------------------------------------------------------------------


def test_an_order_with_no_margin_left_is_insufficient_margin_not_below_minimum():
    """The first column of a cross account commits all of it; the second has nothing left."""
    entries = np.zeros((3, 2), dtype=bool)
    entries[0, 0] = entries[1, 1] = True
    for size_type, size in (("equity", 1.0), ("exposure", 2.0)):
        result = backtest.simulate(bars(_flat_rows(100, 100, 100)), entries=entries, size=size,
                                   size_type=size_type, leverage=2.0, margin_mode="cross",
                                   group_by=True, timing="close", funding=False)
        rejected = result.orders[result.orders["status"] == "rejected"]
        assert rejected["reason"].tolist() == ["insufficient_margin"]


def test_a_tiny_order_with_margin_to_spare_is_below_min_notional():
    result = backtest.simulate(bars(_flat_rows(100, 100)), entries=signal_at(2, 0), size=1e-4,
                               timing="close", funding=False)
    assert result.orders["reason"].tolist() == ["below_min_notional"]


# ----- 9. depth impact against a hand-walked book -------------------------------------------------


def _walk_linear_book(mid, depth_both_sides, notional, levels=20_000):
    """Buy ``notional`` USD from an ask side holding half the 2% depth, evenly over 0..2%."""
    per_level = depth_both_sides / 2 / levels
    prices = mid * (1 + (np.arange(levels) + 0.5) / levels * 0.02)
    bought_usd = np.minimum(per_level, np.maximum(notional - per_level * np.arange(levels), 0.0))
    return bought_usd.sum() / (bought_usd / prices).sum()  # the average fill price


@pytest.mark.parametrize("fraction", [0.05, 0.3, 0.9])
def test_depth_impact_matches_walking_one_side_of_a_linear_book(fraction):
    depth = 1_000_000.0  # both sides within ±2%: 500,000 on the ask side
    notional = fraction * depth / 2
    rows = _flat_rows(100, 100)
    index = pd.date_range("2025-01-01", periods=2, freq="1h", tz="UTC")
    market = backtest.Market(pd.DataFrame(rows, index=index, columns=["open", "high", "low", "close"]),
                             depth=pd.Series(depth, index=index))
    result = backtest.simulate(market, entries=signal_at(2, 0), size=notional, size_type="notional",
                               init_cash=notional, timing="close", funding=False)
    fill = result.orders["price"].iloc[0]
    walked = _walk_linear_book(100.0, depth, notional)
    assert fill / 100 - 1 == pytest.approx(walked / 100 - 1, rel=0.01)
    assert fill == pytest.approx(100 * (1 + 0.02 * notional / depth), rel=1e-12)


# ----- 10. the public liquidation price with tiers ------------------------------------------------


def test_public_liquidation_price_searches_the_bracket_with_a_tier_table():
    assert backtest.liquidation_price(-1, 100.0, 900.0, 45_000.0, tiers=TWO_BRACKETS) == \
        pytest.approx(144_000 / 990)
    assert backtest.liquidation_price(1, 100.0, 520.0, 2_600.0, tiers="BTCUSDT") == \
        pytest.approx(49_400 / 517.92)
    prices = backtest.liquidation_price(np.array([1, -1]), 100.0, np.array([520.0, 900.0]),
                                        np.array([2_600.0, 45_000.0]), tiers="BTCUSDT")
    assert prices.shape == (2,)
    assert prices[0] == pytest.approx(49_400 / 517.92)
    with pytest.raises(ValueError, match="either mmr"):
        backtest.liquidation_price(1, 100.0, 1.0, 10.0)


@pytest.mark.parametrize(("change", "message"), [
    ({"maintenance_amount": [0.0, 0.0]}, r"maintenance_amount 0 should be 9000"),
    ({"mmr": [0.10, 0.01], "maintenance_amount": [0.0, -9_000.0]}, "mmr 0.01 is below"),
    ({"max_leverage": [5.0, 10.0]}, "max_leverage 10 is above"),
    ({"min_notional": [0.0, 90_000.0]}, "must equal the previous max_notional"),
])
def test_tier_tables_that_would_break_the_liquidation_search_are_refused(change, message):
    table = TWO_BRACKETS.copy()
    for column, values in change.items():
        table[column] = values
    with pytest.raises(ValueError, match=message):
        backtest.simulate(bars(_flat_rows(100, 100)), entries=signal_at(2, 0), tiers=table)
