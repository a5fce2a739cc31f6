"""Auto-deleveraging (``simulate(adl_price=..., adl_min_rank=...)``): hand-computed cases, the
hedged book an ADL breaks, the default path untouched, and the accounting identity with ADL."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import backtest

from .helpers import (
    assert_trade_pnl_identity,
    bars,
    draw_account_settings,
    random_market,
    random_ohlc,
    signal_at,
)

NO_COSTS = dict(funding=False, mmr=0.01, liquidation_fee=0.0)


def _adl_at(n_bars, bar, price) -> np.ndarray:
    adl = np.full(n_bars, np.nan)
    adl[bar] = price
    return adl


# bar 0 signals, bar 1 fills at 100, the price rises; ADL at bar 3's close at 115
RISING = [(100, 100, 100, 100), (100, 100, 100, 100), (100, 112, 100, 110), (110, 122, 110, 120),
          (120, 131, 120, 130), (130, 130, 130, 130), (130, 130, 130, 130)]


def _long(adl, rows=RISING, **kwargs):
    settings = dict(size=10_000.0, size_type="notional", leverage=2.0, fees=0.001, per_bar=True,
                    **NO_COSTS)
    settings.update(kwargs)
    return backtest.simulate(bars(rows), entries=signal_at(len(rows), 0), adl_price=adl, **settings)


def test_a_long_in_profit_is_closed_at_the_adl_price_without_fee():
    """100 coins bought at 100 (10,000 notional, entry fee 10); ADL at 115 on bar 3: pnl =
    100 × (115 − 100) − 10 = 1,490, no exit fee, and the equity stays 11,490 while the price
    goes on to 130."""
    result = _long(_adl_at(len(RISING), 3, 115.0))
    trade = result.trades.iloc[0]
    assert len(result.trades) == 1
    assert trade["exit_reason"] == "adl"
    assert trade["exit_price"] == 115.0
    assert trade["exit_time"] == result.index[3]
    assert trade["qty"] == 100.0
    assert trade["fees"] == 10.0
    assert trade["pnl"] == pytest.approx(1_490.0, rel=1e-12)
    orders = result.orders
    assert orders["reason"].tolist() == ["signal", "adl"]
    assert orders["fee"].tolist() == [10.0, 0.0]
    assert orders["price"].iloc[1] == 115.0
    equity = result.equity.to_numpy().ravel()
    np.testing.assert_allclose(equity[3:], 11_490.0, rtol=1e-12)
    assert (result.position.to_numpy().ravel()[3:] == 0.0).all()
    assert result.liquidations.empty


def test_adl_ignores_slippage_and_the_bar_is_not_reentered_on_a_stop_bar():
    result = _long(_adl_at(len(RISING), 3, 115.0), slippage=0.01)
    trade = result.trades.iloc[0]
    assert trade["exit_price"] == 115.0  # the entry paid 1% slippage, the ADL none
    assert trade["entry_price"] == pytest.approx(101.0, rel=1e-12)
    qty = 10_000.0 / 101.0
    assert trade["pnl"] == pytest.approx(qty * (115.0 - 101.0) - 10.0, rel=1e-12)


def test_the_strategy_reenters_after_adl_on_its_next_signal():
    rows = RISING
    entries = signal_at(len(rows), 0, 4)  # the second entry fills at bar 5's open, 130
    result = backtest.simulate(bars(rows), entries=entries, adl_price=_adl_at(len(rows), 3, 115.0),
                               size=10_000.0, size_type="notional", leverage=2.0, fees=0.0,
                               per_bar=True, **NO_COSTS)
    trades = result.trades
    assert trades["exit_reason"].tolist() == ["adl", "end"]
    assert trades["entry_price"].iloc[1] == 130.0
    assert result.equity.iloc[-1] == pytest.approx(10_000.0 + 1_500.0, rel=1e-12)


def test_losing_positions_are_not_deleveraged():
    """A long is in loss below its entry, a short above it: ADL leaves both open."""
    long_ = _long(_adl_at(len(RISING), 3, 95.0))
    assert long_.trades["exit_reason"].tolist() == ["end"]
    assert long_.trades["exit_price"].iloc[0] == 130.0
    falling = [(100, 100, 100, 100), (100, 100, 100, 100), (100, 100, 90, 90), (90, 90, 80, 80),
               (80, 80, 80, 80)]
    short = backtest.simulate(bars(falling), short_entries=signal_at(5, 0), size=10_000.0,
                              size_type="notional", leverage=2.0, adl_price=_adl_at(5, 3, 105.0),
                              **NO_COSTS)
    assert short.trades["exit_reason"].tolist() == ["end"]
    # the same short in profit at 85 is closed there: 100 × (100 − 85)
    short = backtest.simulate(bars(falling), short_entries=signal_at(5, 0), size=10_000.0,
                              size_type="notional", leverage=2.0, adl_price=_adl_at(5, 3, 85.0),
                              per_bar=True, **NO_COSTS)
    trade = short.trades.iloc[0]
    assert (trade["exit_reason"], trade["side"], trade["exit_price"]) == ("adl", "short", 85.0)
    assert trade["pnl"] == pytest.approx(1_500.0, rel=1e-12)


@pytest.mark.parametrize("margin_mode, rank", [
    # isolated: upnl 1,000 / margin 2,000 × notional 11,000 / margin balance (2,000 + 1,000)
    ("isolated", 0.5 * 11_000 / 3_000),
    # cross: upnl 1,000 / margin 2,000 × notional 11,000 / equity (10,000 + 1,000)
    ("cross", 0.5 * 11_000 / 11_000),
])
def test_the_min_rank_spares_positions_ranked_below_it(margin_mode, rank):
    """100 coins long at 100, 5x (margin 2,000), no fees, 10,000 of cash; ADL at 110."""
    rows = [(100, 100, 100, 100), (100, 100, 100, 100), (100, 110, 100, 110), (110, 110, 110, 110)]

    def run(min_rank):
        return backtest.simulate(bars(rows), entries=signal_at(4, 0), size=10_000.0,
                                 size_type="notional", leverage=5.0, margin_mode=margin_mode,
                                 adl_price=_adl_at(4, 2, 110.0), adl_min_rank=min_rank, **NO_COSTS)

    assert run(rank * (1 + 1e-6)).trades["exit_reason"].tolist() == ["end"]
    below = run(rank * (1 - 1e-6)).trades
    assert below["exit_reason"].tolist() == ["adl"]
    assert below["pnl"].iloc[0] == pytest.approx(1_000.0, rel=1e-12)
    assert run(0.0).trades["exit_reason"].tolist() == ["adl"]


def _hedged_book(adl_price=None):
    """One cross account, 3,000 of cash, 1% maintenance, no costs, 10x: long 100 BTC at 100
    (10,000) and short 1,000 ETH at 10 (10,000), entered at bar 0's close. Both fall 15% on bar
    1 and to half on bar 2. Hedged, the account's surplus is 3,000 − 0.01 × 20,000 × x at a
    fraction x of the entry prices: never below 2,800. With ADL on ETH at bar 1's close at 8.5
    the short closes with +1,500 (wallet 4,500) and the long alone is liquidated where
    4,500 + 100 (P − 100) − 0.01 × 100 P = 0: P = 5,500 / 99 = 55.56, on bar 2's fall to 50."""
    index = pd.date_range("2025-01-01", periods=4, freq="1h", tz="UTC")
    columns = ["open", "high", "low", "close"]
    btc = backtest.Market(pd.DataFrame([(100, 100, 100, 100), (100, 100, 85, 85), (85, 85, 50, 50),
                                        (50, 50, 50, 50)], index=index, columns=columns, dtype=float),
                          symbol="BTCUSDT")
    eth = backtest.Market(pd.DataFrame([(10, 10, 10, 10), (10, 10, 8.5, 8.5), (8.5, 8.5, 5, 5),
                                        (5, 5, 5, 5)], index=index, columns=columns, dtype=float),
                          symbol="ETHUSDT")
    markets = backtest.Markets([btc, eth])
    first = [True, False, False, False]
    none = [False] * 4
    entries = pd.DataFrame({"BTCUSDT": first, "ETHUSDT": none}, index=index)
    short_entries = pd.DataFrame({"BTCUSDT": none, "ETHUSDT": first}, index=index)
    return backtest.simulate(markets, entries=entries, short_entries=short_entries, size=10_000.0,
                             size_type="notional", leverage=10.0, margin_mode="cross",
                             group_by=True, init_cash=3_000.0, timing="close", per_bar=True,
                             adl_price=adl_price, **NO_COSTS)


def test_adl_on_the_hedge_gets_the_cross_account_liquidated():
    hedged = _hedged_book()
    assert hedged.stats()["liquidations"] == 0
    assert hedged.equity.iloc[-1] == pytest.approx(3_000.0, rel=1e-12)  # −5,000 + 5,000

    adl = pd.DataFrame({"ETHUSDT": [np.nan, 8.5, np.nan, np.nan]}, index=hedged.index)
    result = _hedged_book(adl)
    assert result.stats()["liquidations"] >= 1
    trades = result.trades.set_index("symbol")
    assert trades.loc["ETHUSDT", "exit_reason"] == "adl"
    assert trades.loc["ETHUSDT", "exit_price"] == 8.5
    assert trades.loc["ETHUSDT", "pnl"] == pytest.approx(1_500.0, rel=1e-12)
    assert trades.loc["BTCUSDT", "exit_reason"] == "liquidation"
    liquidation = result.liquidations.iloc[0]
    assert liquidation["symbol"] == "BTCUSDT"
    assert liquidation["time"] == result.index[2]
    assert liquidation["price"] == pytest.approx(5_500 / 99, rel=1e-12)
    # what is left is the maintenance margin at that price: 0.01 × 100 × 5,500 / 99
    assert result.equity.iloc[-1] == pytest.approx(5_500 / 99, rel=1e-9)
    # the same prices given as a (bars × instruments) array, BTC's column NaN
    array = np.column_stack([np.full(4, np.nan), adl["ETHUSDT"].to_numpy()])
    np.testing.assert_array_equal(_hedged_book(array).equity.to_numpy(), result.equity.to_numpy())


def _random_run(seed, **kwargs):
    rng = np.random.default_rng(seed)
    market = random_market(seed, 200, vol=0.02)
    signals = {k: rng.random((200, 3)) < 0.08
               for k in ("entries", "exits", "short_entries", "short_exits")}
    settings = dict(leverage=5.0, fees=0.0005, slippage=0.001, sl_stop=0.05, funding=0.0003,
                    mmr=0.005, per_bar=True)
    settings.update(kwargs)
    return market, backtest.simulate(market, **signals, **settings)


def _assert_same(a, b):
    np.testing.assert_array_equal(a.equity.to_numpy(), b.equity.to_numpy())
    pd.testing.assert_frame_equal(a.trades, b.trades)
    pd.testing.assert_frame_equal(a.orders, b.orders)
    pd.testing.assert_frame_equal(a.stats(), b.stats())


@pytest.mark.parametrize("margin_mode", ["isolated", "cross"])
def test_no_adl_leaves_the_run_unchanged(margin_mode):
    """adl_price=None, all NaN, or ADL prices no position ranks high enough for: the same
    floats as a run without the argument."""
    market, plain = _random_run(3, margin_mode=margin_mode)
    _, none = _random_run(3, margin_mode=margin_mode, adl_price=None)
    _, nan = _random_run(3, margin_mode=margin_mode, adl_price=np.full(len(market), np.nan))
    _, spared = _random_run(3, margin_mode=margin_mode, adl_price=market.close, adl_min_rank=1e300)
    for other in (none, nan, spared):
        _assert_same(plain, other)
    # ADL at every close with no threshold does change it
    _, every = _random_run(3, margin_mode=margin_mode, adl_price=market.close)
    assert (every.trades["exit_reason"] == "adl").any()


def test_adl_price_is_checked():
    market = random_market(1, 20)
    entries = signal_at(20, 0)
    with pytest.raises(ValueError, match="adl_price must be a positive price"):
        backtest.simulate(market, entries=entries, mmr=0.005, adl_price=np.r_[-1.0, np.full(19, np.nan)])
    with pytest.raises(ValueError, match="adl_price has shape"):
        backtest.simulate(market, entries=entries, mmr=0.005, adl_price=np.full(7, 100.0))
    with pytest.raises(ValueError, match="adl_price has column"):
        backtest.simulate(market, entries=entries, mmr=0.005,
                          adl_price=pd.DataFrame({"NOPE": np.full(20, 1.0)}, index=market.index))
    with pytest.raises(ValueError, match="adl_min_rank"):
        backtest.simulate(market, entries=entries, mmr=0.005, adl_min_rank=np.nan)
    with pytest.raises(ValueError, match="not aligned"):
        backtest.simulate(market, entries=entries, mmr=0.005, adl_price=pd.Series(1.0, index=range(20)))


@st.composite
def adl_scenarios(draw):
    seed = draw(st.integers(0, 10_000))
    n_bars = draw(st.integers(40, 120))
    rng = np.random.default_rng(seed)
    k = draw(st.sampled_from([1, 2]))
    index = pd.date_range("2025-01-01", periods=n_bars, freq="1h", tz="UTC")
    markets = []
    for j in range(k):
        ohlc = random_ohlc(seed + j, n_bars, draw(st.sampled_from([0.005, 0.02, 0.05])))
        frame = pd.DataFrame(ohlc, index=index, columns=["open", "high", "low", "close"])
        markets.append(backtest.Market(frame, symbol=f"S{j}USDT"))
    market = markets[0] if k == 1 else backtest.Markets(markets)
    n_cols = 4
    signals = {name: rng.random((n_bars, n_cols)) < draw(st.floats(0.02, 0.2))
               for name in ("entries", "exits", "short_entries", "short_exits")}
    # ADL on a fifth of the bars, around the close
    closes = np.column_stack([m.close.to_numpy() for m in markets])
    adl = np.where(rng.random((n_bars, k)) < 0.2, closes * (1 + rng.normal(0, 0.02, (n_bars, k))),
                   np.nan)
    kwargs = dict(
        **draw_account_settings(draw, funding=(False, 0.0003), trailing=False),
        group_by=draw(st.sampled_from([None, [0, 0, 1, 1]])),
        adl_min_rank=draw(st.sampled_from([0.0, 0.5, 3.0])),
        mmr=0.005, per_bar=True, adl_price=adl,
    )
    if k > 1:
        kwargs["instruments"] = [f"S{j % k}USDT" for j in range(n_cols)]
    return market, signals, kwargs


@given(adl_scenarios())
@settings(max_examples=40, deadline=None)
def test_accounting_identity_with_adl(scenario):
    """Final equity = initial cash + Σ trade pnl per account, and every trade's pnl is its
    price PnL + shortfall − fees − funding, ADL exits included (which pay no fee)."""
    market, signals, kwargs = scenario
    result = backtest.simulate(market, **signals, **kwargs)
    trades = result.trades
    groups = kwargs["group_by"] or [0, 1, 2, 3]
    final = np.atleast_1d(result.equity.iloc[-1].to_numpy() if result.equity.ndim == 2
                          else result.equity.iloc[-1])
    for account in sorted(set(groups)):
        cols = [c for c in range(4) if groups[c] == account]
        expected = 10_000.0 + trades.loc[trades["col"].isin(cols), "pnl"].sum()
        np.testing.assert_allclose(final[account], expected, rtol=1e-9, atol=1e-6)
    assert_trade_pnl_identity(trades)
    adl_orders = result.orders[result.orders["reason"] == "adl"]
    assert (adl_orders["fee"] == 0.0).all()
