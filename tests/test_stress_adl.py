"""Stress with auto-deleveraging: the ADL price a shock puts on its window, a portfolio whose
hedge the exchange closes mid-crash, and ``stress_test`` with ADL shocks."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import backtest
from backtest.strategy import Strategy
from backtest.stress import Shock, adl_series, inject, inject_markets, stress_test


@pytest.fixture(scope="module")
def market():
    return backtest.load(backtest.sample_path("BTCUSDT"))[-1500:]


@pytest.fixture(scope="module")
def markets():
    symbols = ("BTCUSDT", "ETHUSDT", "SOLUSDT")
    return backtest.Markets([backtest.load(backtest.sample_path(s)) for s in symbols])[-1500:]


def test_the_adl_price_is_the_extreme_reached_by_the_adl_bar(market):
    start = 700
    at = market.index[start]
    # no recovery: the price falls over all 8 bars, the bottom (and its wick) on the last
    falling = Shock(at=at, drop=0.3, bars=8, wick=0.05, adl_at=0.5)
    shocked = inject(market, falling)
    adl = adl_series(shocked, falling)
    assert adl.index.equals(market.index)
    assert adl.notna().sum() == 1 and adl.notna().iloc[start + 4]
    assert adl.iloc[start + 4] == shocked.low.iloc[start: start + 5].min()
    at_end = Shock(at=at, drop=0.3, bars=8, wick=0.05, adl_at=1.0)
    adl = adl_series(inject(market, at_end), at_end)
    assert adl.notna().iloc[start + 7]
    assert adl.iloc[start + 7] == shocked.low.iloc[start: start + 8].min()  # the wick's low
    # full recovery: the bottom at bar 3, so ADL at bar 4 is at the window's lowest low
    recovering = Shock(at=at, drop=0.3, bars=8, wick=0.05, recovery=1.0, adl_at=0.5)
    shocked = inject(market, recovering)
    assert adl_series(shocked, recovering).iloc[start + 4] == shocked.low.iloc[start: start + 8].min()
    # a squeeze: the highest high; no move: the close; no adl_at: none
    squeeze = Shock(at=at, drop=-0.2, bars=4, adl_at=1.0)
    shocked = inject(market, squeeze)
    assert adl_series(shocked, squeeze).iloc[start + 3] == shocked.high.iloc[start: start + 4].max()
    still = Shock(at=at, drop=0.0, bars=4, adl_at=0.0)
    assert adl_series(market, still).iloc[start] == market.close.iloc[start]
    assert adl_series(market, Shock(at=at, drop=0.2)).isna().all()
    with pytest.raises(ValueError, match="adl_at is a fraction"):
        inject(market, Shock(at=at, drop=0.2, adl_at=1.5))


def _hedged_portfolio(markets, adl_at):
    """One cross account, 10,000 of cash: long 50,000 of SOL and short 50,000 of ETH at 20x,
    entered 10 bars before both halve over 6 bars (fees 0.05%, 1% maintenance, no funding)."""
    at = markets.index[1000]
    shocks = {"SOLUSDT": Shock(at=at, drop=0.5, bars=6),
              "ETHUSDT": Shock(at=at, drop=0.5, bars=6, adl_at=adl_at)}
    shocked, adl = inject_markets(markets, shocks)
    entries = pd.DataFrame(False, index=shocked.index, columns=["SOLUSDT", "ETHUSDT"])
    short_entries = entries.copy()
    entries.iloc[990, 0] = True
    short_entries.iloc[990, 1] = True
    result = backtest.simulate(shocked, entries=entries, short_entries=short_entries,
                               size=50_000.0, size_type="notional", leverage=20.0,
                               margin_mode="cross", group_by=True, fees=0.0005, funding=False,
                               mmr=0.01, adl_price=adl, per_bar=True)
    return shocked, adl, result


def test_adl_on_the_hedge_liquidates_the_portfolio_in_the_alt_crash(markets):
    shocked, adl, hedged = _hedged_portfolio(markets, None)
    assert adl is None
    assert hedged.stats()["liquidations"] == 0
    np.testing.assert_array_equal(shocked["BTCUSDT"].close.to_numpy(),
                                  markets["BTCUSDT"].close.to_numpy())  # untouched

    shocked, adl, result = _hedged_portfolio(markets, 0.25)
    assert list(adl.columns) == ["ETHUSDT"]
    assert adl["ETHUSDT"].notna().sum() == 1
    bar = 1000 + 1  # floor(0.25 × 6)
    price = adl["ETHUSDT"].iloc[bar]
    assert price == shocked["ETHUSDT"].low.iloc[1000: bar + 1].min()
    assert result.stats()["liquidations"] >= 1
    trades = result.trades.set_index("symbol")
    eth = trades.loc["ETHUSDT"]
    assert (eth["exit_reason"], eth["exit_price"], eth["exit_time"]) == ("adl", price, shocked.index[bar])
    # the short's profit at the ADL price, less its entry fee only (0.05% of 50,000)
    assert eth["fees"] == pytest.approx(25.0, rel=1e-12)
    assert eth["pnl"] == pytest.approx(eth["qty"] * (eth["entry_price"] - price) - 25.0, rel=1e-12)
    assert trades.loc["SOLUSDT", "exit_reason"] == "liquidation"
    assert result.liquidations["time"].min() > shocked.index[bar]
    final = result.equity.iloc[-1]
    assert final == pytest.approx(10_000.0 + result.trades["pnl"].sum(), rel=1e-9, abs=1e-6)


class HoldShort(Strategy):
    def signals(self, market):
        entries = np.zeros(len(market), dtype=bool)
        entries[0] = True
        return {"short_entries": entries}


def test_stress_test_deleverages_the_shorts_at_the_bottom(market):
    """A short held through a crash that fully recovers: without ADL its gain is gone by the
    end (as in the calm scenario), with ADL it is closed at the bottom and keeps it."""
    shock = Shock(at=market.index[900], drop=0.3, bars=8, wick=0.05, recovery=1.0)
    with_adl = Shock(at=market.index[900], drop=0.3, bars=8, wick=0.05, recovery=1.0, adl_at=0.5)
    table = stress_test(HoldShort(), market, {"crash": shock, "crash_adl": with_adl}, leverage=[2])
    assert table.loc[("crash", 2.0), "loss"] == pytest.approx(table.loc[("none", 2.0), "loss"],
                                                              abs=1e-9)
    # the same run alone: the trade closes at the ADL price, funding paid up to that bar
    shocked = inject(market, with_adl)
    adl = adl_series(shocked, with_adl)
    plain = HoldShort(leverage=2.0).run(shocked, per_bar=True)
    trade = plain.trades.iloc[0]
    adl_time = adl.dropna().index[0]
    funding = plain.funding.loc[plain.funding["time"] <= adl_time, "payment"].sum()
    entry_fee = trade["qty"] * trade["entry_price"] * HoldShort().fees
    gain = trade["qty"] * (trade["entry_price"] - adl.loc[adl_time]) - entry_fee - funding
    cash = HoldShort().init_cash
    assert table.loc[("crash_adl", 2.0), "loss"] == pytest.approx(-gain / cash, rel=1e-9)
    assert table.loc[("crash_adl", 2.0), "loss"] < table.loc[("crash", 2.0), "loss"]
    assert table.loc[("crash_adl", 2.0), "survives"]
