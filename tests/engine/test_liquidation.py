"""Liquidation: Binance's formula, tiers, intrabar triggering, mark prices, gaps, caps, margin modes.

Hand-worked case used throughout (``_ten_x``): 1,000 USDT, a 10x isolated long of the whole
equity entered at the close of 100 (notional 10,000, qty 100, margin 1,000), flat mmr 0.5%,
no trading fees, funding off:

    LP = (WB + cum − s·Q·EP) / (Q·mmr − s·Q) = (1,000 − 100·100) / (100·0.005 − 100)
       = 9,000 / 99.5 = 90.45226…        maintenance there: 100 · LP · 0.005 = 45.2261…
    bankruptcy price = 100 − 1,000 / 100 = 90
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import backtest
from backtest.engine.margin import tiered_liquidation_price_nb

from .helpers import bars, flat, signal_at

LP = 9_000 / 99.5
MAINTENANCE_AT_LP = 100 * LP * 0.005


def _ten_x(market, **kwargs):
    settings = dict(entries=signal_at(len(market), 0), leverage=10.0, mmr=0.005, timing="close",
                    init_cash=1000.0, funding=False, liquidation_fee=0.0)
    settings.update(kwargs)
    return backtest.simulate(market, **settings)


# ----- the formula ------------------------------------------------------------------------------


@pytest.mark.parametrize(("case", "expected"), [
    # Binance's published examples (USDⓈ-M, one-way, isolated)
    (dict(side=1, entry_price=1456.84, qty=3683.979, wallet_balance=1535443.01, mmr=0.10,
          maintenance_amount=135365.0), 1114.78),
    (dict(side=1, entry_price=32481.98, qty=109.488, wallet_balance=1535443.01, mmr=0.025,
          maintenance_amount=16300.0), 18778.73),
], ids=["ETH", "BTC"])
def test_liquidation_price_matches_binance_published_examples(case, expected):
    assert backtest.liquidation_price(**case) == pytest.approx(expected, abs=0.005)


def test_short_liquidation_price_by_hand():
    # 10x short of 2 coins at 50 with 10 USDT margin, mmr 1%, cum 0.5:
    # (10 + 0.5 + 2·50) / (2·0.01 + 2) = 110.5 / 2.02
    assert backtest.liquidation_price(-1, 50.0, 2.0, 10.0, 0.01, 0.5) == pytest.approx(110.5 / 2.02)


def test_bankruptcy_price_is_where_the_margin_is_gone():
    assert backtest.bankruptcy_price(1, 100.0, 1.0, 10.0) == pytest.approx(90.0)
    assert backtest.bankruptcy_price(-1, 100.0, 1.0, 10.0) == pytest.approx(110.0)
    # with mmr = 0 and no maintenance amount the liquidation price is the bankruptcy price
    assert backtest.liquidation_price(1, 100.0, 1.0, 10.0, 0.0) == pytest.approx(90.0)


def test_liquidation_price_is_vectorized_over_arrays():
    prices = backtest.liquidation_price(np.array([1, -1]), 100.0, 1.0, 10.0, 0.005)
    np.testing.assert_allclose(prices, [(10 - 100) / (0.005 - 1), (10 + 100) / (0.005 + 1)])


def test_liquidation_price_rejects_a_side_other_than_plus_or_minus_one():
    with pytest.raises(ValueError, match="side"):
        backtest.liquidation_price(0, 100.0, 1.0, 10.0, 0.005)


def test_tiered_liquidation_price_uses_the_bracket_of_its_own_notional():
    tiers = backtest.load_tiers("BTCUSDT")
    # 20 BTC at 60,000 with 60,000 of margin: notional 1.2M at entry (bracket 600k-3M,
    # mmr 0.65%, cum 950); LP = (60,000 + 950 − 1.2M) / (20·0.0065 − 20) = 57,325.11, whose
    # notional 1,146,502 is in the same bracket, so that is the answer
    lp = tiered_liquidation_price_nb(1, 60_000.0, 20.0, 60_000.0, tiers["max_notional"].to_numpy(),
                                     tiers["mmr"].to_numpy(), tiers["maintenance_amount"].to_numpy())
    assert tiers.loc[2, ["min_notional", "max_notional", "mmr", "maintenance_amount"]].tolist() == \
        [600_000.0, 3_000_000.0, 0.0065, 950.0]
    assert lp == pytest.approx((60_000 + 950 - 1_200_000) / (20 * 0.0065 - 20))
    assert lp == pytest.approx(57_325.11, abs=0.01)


def test_tiered_liquidation_price_drops_to_a_lower_bracket_when_lp_notional_is_below_entry_bracket():
    tiers = backtest.load_tiers("BTCUSDT")  # < 50k: 0.4%, cum 0;  50k-600k: 0.5%, cum 50
    # 20x long of 520 coins at 100 (notional 52,000, margin 2,600). With the entry's bracket:
    # (2,600 + 50 − 52,000) / (520·0.005 − 520) = 95.38075, notional 49,598 < 50,000 — so the
    # consistent answer uses the first bracket: (2,600 − 52,000) / (520·0.004 − 520) = 95.38153
    lp = tiered_liquidation_price_nb(1, 100.0, 520.0, 2600.0, tiers["max_notional"].to_numpy(),
                                     tiers["mmr"].to_numpy(), tiers["maintenance_amount"].to_numpy())
    assert lp == pytest.approx(49_400 / 517.92, rel=1e-12)


def test_engine_liquidates_a_tiered_position_at_the_tier_consistent_price():
    """The kernel must liquidate where the margin balance meets the maintenance margin *of the
    bracket at that price* (the case above: 95.38153), not where the entry bracket's line does."""
    market = bars([(100, 100, 100, 100), (100, 100, 90, 95)])
    result = backtest.simulate(market, entries=signal_at(2, 0), size=52_000.0,
                               size_type="notional", leverage=20.0, tiers="BTCUSDT",
                               init_cash=10_000.0, timing="close", funding=False,
                               liquidation_fee=0.0)
    assert result.liquidations["price"].iloc[0] == pytest.approx(49_400 / 517.92, rel=1e-9)


# ----- triggering -------------------------------------------------------------------------------


def test_long_is_liquidated_when_the_low_touches_even_if_the_bar_closes_higher():
    market = bars([(100, 100, 100, 100), (99, 99.5, 90.0, 99.0), (99, 99, 99, 99)])
    result = _ten_x(market, liquidation_fee=0.004)
    trade = result.trades.iloc[0]
    assert trade["exit_reason"] == "liquidation"
    assert trade["exit_time"] == market.index[1]
    assert trade["exit_price"] == pytest.approx(LP)
    liquidation = result.liquidations.iloc[0]
    pnl = 100 * (LP - 100)  # −954.77
    fee = 100 * LP * 0.004  # 36.18, the clearance fee on the notional at LP
    assert liquidation["price"] == pytest.approx(LP)
    assert liquidation["fee"] == pytest.approx(fee)
    assert liquidation["loss"] == pytest.approx(-pnl + fee)  # 990.95
    assert liquidation["insurance_shortfall"] == 0.0
    # what is left: the maintenance margin less the clearance fee, 45.23 − 36.18 = 9.05
    assert result.equity.iloc[1] == pytest.approx(MAINTENANCE_AT_LP - fee)
    assert result.equity.iloc[2] == pytest.approx(MAINTENANCE_AT_LP - fee)
    assert result.position.iloc[1] == 0.0


def test_a_low_just_above_the_liquidation_price_does_not_liquidate():
    market = bars([(100, 100, 100, 100), (99, 99.5, LP + 1e-6, 99.0)])
    result = _ten_x(market)
    assert len(result.liquidations) == 0
    assert result.equity.iloc[-1] == pytest.approx(1000 - 100)


def test_clearance_fee_larger_than_what_is_left_takes_it_all():
    market = bars([(100, 100, 100, 100), (99, 99.5, 90.0, 99.0)])
    result = _ten_x(market, liquidation_fee=0.0125)  # due 113.07 > 45.23 left
    assert result.liquidations["fee"].iloc[0] == pytest.approx(MAINTENANCE_AT_LP)
    assert result.liquidations["loss"].iloc[0] == pytest.approx(1000.0)
    assert result.equity.iloc[-1] == pytest.approx(0.0, abs=1e-9)


def test_short_is_liquidated_on_the_high():
    market = bars([(100, 100, 100, 100), (101, 110, 100.5, 101)])
    result = _ten_x(market, entries=None, short_entries=signal_at(2, 0))
    short_lp = (1000 + 100 * 100) / (100 * 0.005 + 100)  # 109.45
    liquidation = result.liquidations.iloc[0]
    assert liquidation["side"] == "short"
    assert liquidation["price"] == pytest.approx(short_lp)
    assert result.equity.iloc[-1] == pytest.approx(100 * short_lp * 0.005)


def test_liquidation_is_checked_on_the_mark_low_even_if_the_traded_low_stays_above():
    traded = [(100, 100, 100, 100), (99, 99.5, 92.0, 99.0)]
    mark = [(100, 100, 100, 100), (99, 99.4, 90.0, 99.0)]
    result = _ten_x(bars(traded, mark=mark))
    assert result.trades["exit_reason"].tolist() == ["liquidation"]
    assert result.liquidations["price"].iloc[0] == pytest.approx(LP)


def test_a_traded_wick_the_mark_does_not_follow_does_not_liquidate():
    traded = [(100, 100, 100, 100), (99, 99.5, 90.0, 99.0)]
    mark = [(100, 100, 100, 100), (99, 99.4, 95.0, 99.0)]
    result = _ten_x(bars(traded, mark=mark))
    assert len(result.liquidations) == 0
    assert result.trades["exit_reason"].tolist() == ["end"]


def test_stop_loss_above_the_liquidation_price_exits_first():
    market = bars([(100, 100, 100, 100), (99, 99.5, 90.0, 99.0)])
    result = _ten_x(market, sl_stop=0.05)
    assert result.trades["exit_reason"].tolist() == ["stop_loss"]
    assert result.trades["exit_price"].iloc[0] == pytest.approx(95.0)
    assert result.equity.iloc[-1] == pytest.approx(500.0)


def test_stop_loss_below_the_liquidation_price_never_fires():
    market = bars([(100, 100, 100, 100), (99, 99.5, 85.0, 99.0)])
    result = _ten_x(market, sl_stop=0.12)  # stop at 88, liquidated at 90.45 first
    assert result.trades["exit_reason"].tolist() == ["liquidation"]


# ----- gaps and caps ----------------------------------------------------------------------------


def test_gap_through_the_liquidation_price_fills_at_the_open_and_the_shortfall_is_recorded():
    market = bars([(100, 100, 100, 100), (85, 86, 84, 86)])
    result = _ten_x(market, liquidation_fee=0.0125)
    liquidation = result.liquidations.iloc[0]
    assert liquidation["price"] == 85.0
    # 100 × (85 − 100) = −1,500 against 1,000 of margin: the trader loses the margin, nothing
    # is left for the clearance fee, and 500 beyond the bankruptcy price is the insurance fund's
    assert liquidation["loss"] == pytest.approx(1000.0)
    assert liquidation["fee"] == 0.0
    assert liquidation["insurance_shortfall"] == pytest.approx(500.0)
    assert result.equity.iloc[-1] == 0.0
    assert result.stats()["insurance_shortfall"] == pytest.approx(500.0)


def test_isolated_gap_loss_is_capped_at_the_position_margin_and_the_rest_of_the_cash_survives():
    market = bars([(100, 100, 100, 100), (85, 86, 84, 86), (86, 86, 86, 86)])
    result = _ten_x(market, size=0.5)  # margin 500, qty 50; the other 500 stays in the wallet
    liquidation = result.liquidations.iloc[0]
    assert liquidation["price"] == 85.0
    assert liquidation["loss"] == pytest.approx(500.0)
    assert liquidation["insurance_shortfall"] == pytest.approx(50 * 15 - 500)
    assert result.equity.iloc[1:].tolist() == pytest.approx([500.0, 500.0])


def test_short_gapping_up_through_its_liquidation_price_fills_at_the_open():
    market = bars([(100, 100, 100, 100), (120, 121, 119, 120)])
    result = _ten_x(market, entries=None, short_entries=signal_at(2, 0))
    liquidation = result.liquidations.iloc[0]
    assert liquidation["price"] == 120.0
    assert liquidation["insurance_shortfall"] == pytest.approx(100 * 20 - 1000)
    assert result.equity.iloc[-1] == 0.0


# ----- margin modes -----------------------------------------------------------------------------


def test_cross_margin_backs_the_position_with_the_whole_wallet():
    market = bars([(100, 100, 100, 100), (99, 99.5, 89.0, 99.0)])
    # half the equity as margin: notional 5,000, qty 50
    isolated = _ten_x(market, size=0.5, margin_mode="isolated")
    cross = _ten_x(market, size=0.5, margin_mode="cross")
    # isolated: 500 of margin, LP = (500 − 5,000) / (0.25 − 50) = 90.45: liquidated
    assert isolated.liquidations["price"].tolist() == pytest.approx([4500 / 49.75])
    assert isolated.equity.iloc[-1] == pytest.approx(500 + 50 * (4500 / 49.75) * 0.005)
    # cross: the 1,000 wallet backs it, LP = (1,000 − 5,000) / (0.25 − 50) = 80.40: survives
    assert len(cross.liquidations) == 0
    assert cross.equity.iloc[-1] == pytest.approx(1000 + 50 * (99 - 100))


def test_cross_liquidation_loses_the_whole_wallet_not_just_the_margin():
    market = bars([(100, 100, 100, 100), (80, 80, 75, 78)])
    result = _ten_x(market, size=0.5, margin_mode="cross")  # gap through LP 80.40 at 80
    liquidation = result.liquidations.iloc[0]
    assert liquidation["price"] == 80.0
    # balance 1,000 + 50 × (80 − 100) = 0: nothing left, no shortfall
    assert liquidation["loss"] == pytest.approx(1000.0)
    assert result.equity.iloc[-1] == pytest.approx(0.0, abs=1e-9)


# ----- after a wipe-out, and orders that cannot be margined ---------------------------------------


def test_equity_never_goes_below_zero_on_a_crash():
    rows = [(100, 100, 100, 100)] + [(p, p, p * 0.5, p * 0.5) for p in (100.0, 50.0, 25.0)]
    for margin_mode in ("isolated", "cross"):
        result = backtest.simulate(bars(rows), entries=signal_at(4, 0), leverage=25.0, mmr=0.005,
                                   margin_mode=margin_mode, timing="close", funding=False)
        assert (result.equity >= 0).all()
        assert result.equity.iloc[-1] == 0.0


@pytest.mark.parametrize("margin_mode", ["isolated", "cross"])
def test_no_order_after_the_account_is_wiped_out(margin_mode):
    rows = [(100, 100, 100, 100), (85, 86, 84, 86)] + [(86, 87, 85, 86)] * 5
    everything = np.ones(len(rows), dtype=bool)
    result = _ten_x(bars(rows), entries=everything, short_entries=None, margin_mode=margin_mode)
    assert result.orders["reason"].tolist() == ["signal", "liquidation"]
    assert (result.equity.iloc[1:] == 0.0).all()
    assert len(result.trades) == 1


def test_an_order_the_account_cannot_margin_is_rejected_and_recorded():
    market = flat(3)
    # 50,000 notional at 2x needs 25,000 of margin; the account has 1,000
    result = backtest.simulate(market, entries=signal_at(3, 0), size=50_000.0, size_type="notional",
                               leverage=2.0, init_cash=1000.0, timing="close", funding=False)
    orders = result.orders
    assert orders["status"].tolist() == ["rejected"]
    assert orders["reason"].tolist() == ["insufficient_margin"]
    assert orders["fee"].tolist() == [0.0]
    assert len(result.trades) == 0
    assert result.stats()["rejected_orders"] == 1
    assert (result.equity == 1000.0).all()


def test_an_order_whose_fee_does_not_fit_is_rejected():
    # 2,000 notional at 2x needs 1,000 of margin plus a 2 fee: one more than the 1,000 there
    result = backtest.simulate(flat(2), entries=signal_at(2, 0), size=2_000.0, size_type="notional",
                               leverage=2.0, init_cash=1000.0, fees=0.001, timing="close",
                               funding=False)
    assert result.orders["reason"].tolist() == ["insufficient_margin"]


def test_notional_in_a_bracket_allowing_less_leverage_is_rejected():
    tiers = pd.DataFrame({"min_notional": [0.0, 5_000.0], "max_notional": [5_000.0, 1e12],
                          "mmr": [0.01, 0.05], "maintenance_amount": [0.0, 200.0],
                          "max_leverage": [20.0, 5.0]})
    result = backtest.simulate(flat(2), entries=signal_at(2, 0), leverage=10.0, tiers=tiers,
                               init_cash=1000.0, timing="close", funding=False)
    # 10x of 1,000 is 10,000 of notional, in the bracket allowing 5x at most
    assert result.orders["status"].tolist() == ["rejected"]
    assert result.orders["reason"].tolist() == ["tier_leverage"]


def test_leverage_above_the_tier_maximum_is_a_value_error():
    with pytest.raises(ValueError, match="leverage 126.0 is above the maximum 125"):
        backtest.simulate(flat(3), entries=signal_at(3, 0), leverage=126.0, tiers="BTCUSDT")


def test_a_risk_sized_entry_without_a_usable_stop_is_rejected_and_recorded():
    """A risk-sized order whose stop is missing on its bar (or on the wrong side of the price)
    cannot be sized; like every order that is not placed it must leave a rejected record."""
    sl_price = np.full(3, 120.0)  # above a long's entry: not a stop
    result = backtest.simulate(flat(3), entries=signal_at(3, 0), size=0.01, size_type="risk",
                               sl_price=sl_price, timing="close", funding=False)
    assert result.orders["status"].tolist() == ["rejected"]


def test_shipped_tables_cover_btc_eth_sol_xrp_and_match_the_exchange_file(shared_data):
    """The shipped tables are Binance's published brackets; ccxt's fetch_leverage_tiers layout
    loads directly, by symbol."""
    exchange_file = shared_data / "binance_leverage_tiers.json"
    for symbol, ccxt_symbol in (("BTCUSDT", "BTC/USDT:USDT"), ("ETHUSDT", "ETH/USDT:USDT"),
                                ("SOLUSDT", "SOL/USDT:USDT"), ("XRPUSDT", "XRP/USDT:USDT")):
        shipped = backtest.load_tiers(symbol)
        pd.testing.assert_frame_equal(shipped, backtest.load_tiers(exchange_file, symbol=symbol))
        pd.testing.assert_frame_equal(shipped, backtest.load_tiers(exchange_file, symbol=ccxt_symbol))
    with pytest.raises(ValueError, match="pass symbol= to pick one"):
        backtest.load_tiers(exchange_file)
    assert backtest.load_tiers("SOLUSDT").iloc[1].tolist() == [20_000.0, 100_000.0, 0.0065, 30.0, 75.0]
