"""Liquidation: Binance's formula, intrabar triggering, mark prices, gaps, caps and margin modes.

Hand-worked case used throughout: 1,000 USDT, 10x isolated long of 10,000 notional at 100
(qty 100, margin 1,000), flat mmr 0.5%, no fees:
LP = (1000 - 100·100) / (100·0.005 - 100) = 90.4523 (maintenance there: 45.2261);
bankruptcy price = 100 - 1000/100 = 90.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import backtest

from .helpers import bars, signal_at

LP = (1000 - 100 * 100) / (100 * 0.005 - 100)


def _ten_x(market, **kwargs):
    settings = dict(entries=signal_at(len(market), 0), leverage=10.0, mmr=0.005, timing="close",
                    init_cash=1000.0, funding=False)
    settings.update(kwargs)
    return backtest.simulate(market, **settings)


@pytest.mark.parametrize(("case", "expected"), [
    (dict(side=1, entry_price=1456.84, qty=3683.979, wallet_balance=1535443.01, mmr=0.10,
          maintenance_amount=135365.0), 1114.78),
    (dict(side=1, entry_price=32481.98, qty=109.488, wallet_balance=1535443.01, mmr=0.025,
          maintenance_amount=16300.0), 18778.73),
])
def test_liquidation_price_matches_binance_published_examples(case, expected):
    assert backtest.liquidation_price(**case) == pytest.approx(expected, abs=0.01)


def test_short_liquidation_and_bankruptcy_prices_by_hand():
    # 10x short of 1 coin at 100 with 10 USDT margin: (10 + 100) / (0.005 + 1) = 109.4527
    assert backtest.liquidation_price(-1, 100.0, 1.0, 10.0, 0.005) == pytest.approx(109.45274, rel=1e-6)
    assert backtest.bankruptcy_price(-1, 100.0, 1.0, 10.0) == pytest.approx(110.0)
    assert backtest.bankruptcy_price(1, 100.0, 1.0, 10.0) == pytest.approx(90.0)


def test_liquidation_price_with_tiers_uses_the_bracket_of_its_own_notional():
    from backtest.engine.margin import tiered_liquidation_price_nb

    tiers = backtest.load_tiers("BTCUSDT")
    # 20 BTC at 60,000 with 60,000 margin: notional 1.2M sits in the 600k-3M bracket
    lp = tiered_liquidation_price_nb(1, 60_000.0, 20.0, 60_000.0, tiers["max_notional"].to_numpy(),
                                     tiers["mmr"].to_numpy(), tiers["maintenance_amount"].to_numpy())
    row = tiers[(tiers.min_notional <= 20 * lp) & (tiers.max_notional > 20 * lp)].iloc[0]
    assert lp == pytest.approx(backtest.liquidation_price(1, 60_000.0, 20.0, 60_000.0, row.mmr,
                                                          row.maintenance_amount))
    assert 57_000 < lp < 58_000


def test_long_is_liquidated_when_the_low_touches_even_if_the_bar_closes_higher():
    market = bars([(100, 100, 100, 100), (99, 99.5, 90.0, 99.0), (99, 99, 99, 99)])
    result = _ten_x(market, liquidation_fee=0.004)
    trade = result.trades.iloc[0]
    assert trade["exit_reason"] == "liquidation"
    assert trade["exit_time"] == market.index[1]
    assert trade["exit_price"] == pytest.approx(LP)
    liquidation = result.liquidations.iloc[0]
    fee = 100 * LP * 0.004
    assert liquidation["fee"] == pytest.approx(fee)
    remaining = 1000 + 100 * (LP - 100) - fee  # maintenance left after the clearance fee
    assert liquidation["insurance_shortfall"] == 0.0
    assert result.equity.iloc[-1] == pytest.approx(remaining)
    assert liquidation["loss"] == pytest.approx(1000 - remaining)


def test_clearance_fee_larger_than_what_is_left_takes_it_all():
    market = bars([(100, 100, 100, 100), (99, 99.5, 90.0, 99.0)])
    result = _ten_x(market, liquidation_fee=0.0125)
    maintenance = 100 * LP * 0.005
    assert result.liquidations["fee"].iloc[0] == pytest.approx(maintenance)
    assert result.equity.iloc[-1] == pytest.approx(0.0, abs=1e-9)


def test_gap_through_the_liquidation_price_fills_at_the_open_and_the_shortfall_is_recorded():
    market = bars([(100, 100, 100, 100), (85, 86, 84, 86)])
    result = _ten_x(market)
    liquidation = result.liquidations.iloc[0]
    assert liquidation["price"] == 85.0
    # loss capped at the 1,000 margin; 100 × (85 − 100) = −1,500 → 500 beyond the bankruptcy price
    assert liquidation["insurance_shortfall"] == pytest.approx(500.0)
    assert liquidation["loss"] == pytest.approx(1000.0)
    assert result.equity.iloc[-1] == 0.0
    assert result.stats()["insurance_shortfall"] == pytest.approx(500.0)


def test_liquidation_is_checked_on_the_mark_price():
    traded = [(100, 100, 100, 100), (99, 99.5, 92.0, 99.0)]
    mark = [(100, 100, 100, 100), (99, 99.4, 90.0, 99.0)]
    result = _ten_x(bars(traded, mark=mark))
    assert result.trades["exit_reason"].tolist() == ["liquidation"]


def test_a_traded_wick_the_mark_does_not_follow_does_not_liquidate():
    traded = [(100, 100, 100, 100), (99, 99.5, 90.0, 99.0)]
    mark = [(100, 100, 100, 100), (99, 99.4, 95.0, 99.0)]
    result = _ten_x(bars(traded, mark=mark))
    assert len(result.liquidations) == 0
    assert result.trades["exit_reason"].tolist() == ["end"]


def test_cross_margin_backs_the_position_with_the_whole_wallet():
    market = bars([(100, 100, 100, 100), (99, 99.5, 89.0, 99.0)])
    isolated = _ten_x(market, size=0.5, margin_mode="isolated")
    cross = _ten_x(market, size=0.5, margin_mode="cross")
    assert len(isolated.liquidations) == 1  # 500 margin: LP 90.45
    assert len(cross.liquidations) == 0  # 1,000 wallet behind 5,000 notional: LP 80.40
    # isolated: only the position's margin is lost, the other half of the cash stays
    assert isolated.equity.iloc[-1] > 499.0


def test_short_is_liquidated_on_the_high():
    market = bars([(100, 100, 100, 100), (101, 110, 100.5, 101)])
    result = _ten_x(market, entries=None, short_entries=signal_at(2, 0))
    short_lp = (1000 + 100 * 100) / (100 * 0.005 + 100)
    assert result.liquidations["price"].iloc[0] == pytest.approx(short_lp)
    assert result.liquidations["side"].iloc[0] == "short"


def test_stop_loss_above_the_liquidation_price_exits_first():
    market = bars([(100, 100, 100, 100), (99, 99.5, 90.0, 99.0)])
    result = _ten_x(market, sl_stop=0.05)
    assert result.trades["exit_reason"].tolist() == ["stop_loss"]
    assert result.trades["exit_price"].iloc[0] == pytest.approx(95.0)
    assert result.equity.iloc[-1] == pytest.approx(500.0)


def test_no_order_after_the_account_is_wiped_out():
    rows = [(100, 100, 100, 100), (85, 86, 84, 86)] + [(86, 87, 85, 86)] * 5
    market = bars(rows)
    result = _ten_x(market, entries=np.ones(len(rows), dtype=bool))
    assert len(result.orders) == 2  # the entry and the liquidation
    assert (result.equity.iloc[1:] == 0.0).all()


def test_an_order_the_account_cannot_margin_is_rejected_and_recorded():
    market = bars([(100, 100, 100, 100)] * 3)
    result = backtest.simulate(market, entries=signal_at(3, 0), size=50_000.0, size_type="notional",
                               leverage=2.0, init_cash=1000.0, timing="close", funding=False)
    orders = result.orders
    assert orders["status"].tolist() == ["rejected"]
    assert orders["reason"].tolist() == ["insufficient_margin"]
    assert result.stats()["rejected_orders"] == 1
    assert (result.equity == 1000.0).all()


def test_notional_in_a_bracket_allowing_less_leverage_is_rejected():
    tiers = pd.DataFrame({"min_notional": [0.0, 5_000.0], "max_notional": [5_000.0, 1e12],
                          "mmr": [0.01, 0.05], "maintenance_amount": [0.0, 200.0],
                          "max_leverage": [20.0, 5.0]})
    market = bars([(100, 100, 100, 100)] * 2)
    result = backtest.simulate(market, entries=signal_at(2, 0), leverage=10.0, tiers=tiers,
                               init_cash=1000.0, timing="close", funding=False)
    assert result.orders["reason"].tolist() == ["tier_leverage"]


def test_equity_never_goes_below_zero_on_a_crash():
    rows = [(100, 100, 100, 100)] + [(p, p, p * 0.5, p * 0.5) for p in (100.0, 50.0, 25.0)]
    result = backtest.simulate(bars(rows), entries=signal_at(4, 0), leverage=25.0, mmr=0.005,
                               margin_mode="cross", timing="close", funding=False)
    assert (result.equity >= 0).all()
