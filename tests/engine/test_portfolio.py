"""Several instruments in one account: hand-computed cross and isolated cases, and the
equivalences that pin the multi-instrument engine to the single-instrument one."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import backtest

from .helpers import random_ohlc

FLAT_1PCT = pd.DataFrame({"min_notional": [0.0], "max_notional": [np.inf], "mmr": [0.01],
                          "maintenance_amount": [0.0], "max_leverage": [100.0]})


def _market(rows, symbol, start="2025-01-01"):
    index = pd.date_range(start, periods=len(rows), freq="1h", tz="UTC")
    frame = pd.DataFrame(rows, index=index, columns=["open", "high", "low", "close"], dtype=float)
    return backtest.Market(frame, symbol=symbol)


def _two_legs(b_crash, a_path=((100, 100, 100, 100),), margin_mode="cross", **kwargs):
    """A: 50 coins long at 100 (5x, 5,000 notional); B: 500 coins long at 10 (5x); 2,500 of cash,
    1% maintenance on both, no fees. Bar 0 enters at the close; bar 1 is the test bar."""
    a = _market([(100, 100, 100, 100), *a_path], "AAAUSDT")
    b = _market([(10, 10, 10, 10), b_crash], "BBBUSDT")
    markets = backtest.Markets([a, b])
    entries = pd.DataFrame({"AAAUSDT": [True, False], "BBBUSDT": [True, False]}, index=markets.index)
    settings = dict(size=5_000.0, size_type="notional", leverage=5.0, margin_mode=margin_mode,
                    group_by=True, init_cash=2_500.0, timing="close", funding=False,
                    tiers={"AAAUSDT": FLAT_1PCT, "BBBUSDT": FLAT_1PCT}, liquidation_fee=0.0)
    settings.update(kwargs)
    return backtest.simulate(markets, entries=entries, **settings)


def test_the_alt_leg_drags_a_cross_account_to_liquidation():
    """A flat at 100, B falls 10 → 4. The account's surplus is
    2,500 + 500 (P − 10) − 0.01 (5,000 + 500 P) = 495 P − 2,550: zero at P = 5.1515, on B's fall
    from its high of 10 to its low of 4, 80.8% of the way. Both legs close then, A at 100."""
    result = _two_legs((10, 10, 4, 8))
    liquidations = result.liquidations.set_index("symbol")
    p_b = 2_550 / 495
    assert liquidations.loc["BBBUSDT", "price"] == pytest.approx(p_b, rel=1e-12)
    assert liquidations.loc["AAAUSDT", "price"] == pytest.approx(100.0, rel=1e-12)
    assert (liquidations["time"] == result.index[1]).all()
    # what is left is exactly the maintenance margin at that moment: 0.01 × (5,000 + 500 P)
    assert result.equity.iloc[-1] == pytest.approx(0.01 * (5_000 + 500 * p_b), rel=1e-9)
    assert liquidations["insurance_shortfall"].sum() == 0.0
    assert result.stats()["liquidations"] == 1  # one account liquidation, two legs closed
    per_instrument = result.instruments()
    assert per_instrument.loc[("account", "BBBUSDT"), "pnl"] == pytest.approx(500 * (p_b - 10), rel=1e-9)
    assert per_instrument.loc[("account", "AAAUSDT"), "pnl"] == pytest.approx(0.0, abs=1e-9)


def test_the_clearance_fee_is_shared_by_notional():
    result = _two_legs((10, 10, 4, 8), liquidation_fee=0.005)
    p_b = 2_550 / 495
    fees = result.liquidations.set_index("symbol")["fee"]
    assert fees["AAAUSDT"] == pytest.approx(0.005 * 5_000, rel=1e-9)
    assert fees["BBBUSDT"] == pytest.approx(0.005 * 500 * p_b, rel=1e-9)
    assert result.equity.iloc[-1] == pytest.approx(0.005 * (5_000 + 500 * p_b), rel=1e-9)


def test_both_legs_falling_together_are_liquidated_on_the_joint_path():
    """A: 100 → high 100 → low 90, B: 10 → 10 → 4, in step. On the second segment
    F(t) = 2,500 − 500·10t − 500·6t − 0.01 (50 (100 − 10t) + 500 (10 − 6t)) = 2,400 − 3,465 t:
    liquidated at t = 0.69264, A at 93.0736 and B at 5.8442 (their marks at that moment)."""
    result = _two_legs((10, 10, 4, 8), a_path=((100, 100, 90, 95),))
    t = 2_400 / 3_465
    prices = result.liquidations.set_index("symbol")["price"]
    assert prices["AAAUSDT"] == pytest.approx(100 - 10 * t, rel=1e-12)
    assert prices["BBBUSDT"] == pytest.approx(10 - 6 * t, rel=1e-12)


def test_isolated_legs_lose_only_their_own_margin():
    """Isolated, B alone is liquidated at its own price, 1,000 + 500 (P − 10) − 5 P = 0 →
    P = 8.0808; A keeps its margin and the rest of the cash: 2,500 − 1,000 + 0.01·500·P left."""
    result = _two_legs((10, 10, 4, 8), margin_mode="isolated")
    liquidations = result.liquidations
    assert liquidations["symbol"].tolist() == ["BBBUSDT"]
    lp = 4_000 / 495
    assert liquidations["price"].iloc[0] == pytest.approx(lp, rel=1e-12)
    assert result.position["AAAUSDT"].iloc[-1] == pytest.approx(50.0)
    assert result.equity.iloc[-1] == pytest.approx(1_500 + 0.01 * 500 * lp, rel=1e-9)


def test_pessimistic_mode_puts_every_leg_at_its_adverse_extreme_at_once():
    """A rises to 110 before falling to 90, B falls straight: with the path's own order (auto)
    A is at its high while B is at its low; pessimistic walks both lows first, together."""
    auto = _two_legs((10, 10, 5.5, 9), a_path=((100, 110, 90, 109),))
    pessimistic = _two_legs((10, 10, 5.5, 9), a_path=((100, 110, 90, 109),), intrabar="pessimistic")
    # auto: A (close ≥ open) goes low first 100 → 90 while B (close < open) goes to its high
    # first; pessimistic: both fall on the first segment: deeper joint loss, liquidated
    assert len(pessimistic.liquidations) == 2
    assert pessimistic.equity.iloc[-1] < auto.equity.iloc[-1]


# ----- equivalences ----------------------------------------------------------------------------------


def _sample(symbol, bars=800):
    return backtest.load(backtest.sample_path(symbol))[-bars:]


def _assert_same_run(a, b):
    for name in ("orders", "trades", "liquidations", "funding"):
        x, y = getattr(a.records(), name), getattr(b.records(), name)
        assert x.tobytes() == y.tobytes(), name
    np.testing.assert_array_equal(a.per_bar("equity"), b.per_bar("equity"))
    pd.testing.assert_frame_equal(a.stats().to_frame() if isinstance(a.stats(), pd.Series) else a.stats(),
                                  b.stats().to_frame() if isinstance(b.stats(), pd.Series) else b.stats())


def test_a_set_of_one_market_is_the_single_market_run_bit_for_bit():
    market = _sample("BTCUSDT")
    rng = np.random.default_rng(0)
    entries = rng.random((len(market), 3)) < 0.05
    exits = rng.random((len(market), 3)) < 0.05
    kwargs = dict(entries=entries, exits=exits, leverage=[3.0, 10.0, 20.0], sl_stop=0.03,
                  fees=0.0005, slippage=0.0002, per_bar=True)
    single = backtest.simulate(market, **kwargs)
    as_set = backtest.simulate(backtest.Markets([market]), **kwargs)
    _assert_same_run(single, as_set)
    np.testing.assert_array_equal(single.per_bar("position"), as_set.per_bar("position"))


def test_n_instruments_in_n_accounts_are_n_separate_runs():
    btc, eth = _sample("BTCUSDT"), _sample("ETHUSDT")
    markets = backtest.Markets([btc, eth])
    rng = np.random.default_rng(1)
    entries = pd.DataFrame(rng.random((len(markets), 2)) < 0.05, index=markets.index,
                           columns=["BTCUSDT", "ETHUSDT"])
    exits = pd.DataFrame(rng.random((len(markets), 2)) < 0.05, index=markets.index,
                         columns=["BTCUSDT", "ETHUSDT"])
    together = backtest.simulate(markets, entries=entries, exits=exits, leverage=10.0, sl_stop=0.04,
                                 fees=0.0005, per_bar=True)
    for symbol, market in (("BTCUSDT", btc), ("ETHUSDT", eth)):
        alone = backtest.simulate(market, entries=entries[symbol], exits=exits[symbol],
                                  leverage=10.0, sl_stop=0.04, fees=0.0005, per_bar=True)
        np.testing.assert_array_equal(together.equity[symbol].to_numpy(), alone.equity.to_numpy())
        mine = together.trades[together.trades["col"] == symbol].drop(columns=["col", "symbol"])
        pd.testing.assert_frame_equal(mine.reset_index(drop=True),
                                      alone.trades.drop(columns=["col"]).reset_index(drop=True))


def test_an_instrument_listed_later_cannot_trade_before_and_adds_no_nan():
    early = _market(random_ohlc(2, 60), "AAAUSDT")
    late = _market(random_ohlc(3, 40), "BBBUSDT", start="2025-01-01 20:00")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        markets = backtest.Markets([early, late])
    assert markets.first_bar.tolist() == [0, 20]
    entries = pd.DataFrame(True, index=markets.index, columns=["AAAUSDT", "BBBUSDT"])
    result = backtest.simulate(markets, entries=entries, size=0.4, leverage=2.0, group_by=True,
                               margin_mode="cross", funding=False)
    orders = result.orders
    first_late = orders[orders["symbol"] == "BBBUSDT"]["time"].min()
    assert first_late >= late.index[0]
    assert np.isfinite(result.equity.to_numpy()).all()
    assert np.isfinite(result.stats()[["final_equity", "sharpe", "max_drawdown"]].astype(float)).all()


def test_a_portfolio_run_never_looks_ahead():
    btc, eth = _sample("BTCUSDT", 600), _sample("ETHUSDT", 600)
    markets = backtest.Markets([btc, eth])
    rng = np.random.default_rng(3)
    signals = {k: pd.DataFrame(rng.random((600, 2)) < 0.05, index=markets.index,
                               columns=["BTCUSDT", "ETHUSDT"]) for k in ("entries", "exits")}
    kwargs = dict(leverage=15.0, margin_mode="cross", group_by=True, sl_stop=0.05)
    full = backtest.simulate(markets, **signals, **kwargs)
    cut = 350
    past = backtest.simulate(markets[:cut], **{k: v.iloc[:cut] for k, v in signals.items()}, **kwargs)
    np.testing.assert_array_equal(past.equity.to_numpy(), full.equity.to_numpy()[:cut])


def test_columns_name_their_instrument_or_the_call_fails_clearly():
    markets = backtest.Markets([_sample("BTCUSDT", 50), _sample("ETHUSDT", 50)])
    with pytest.raises(ValueError, match="each column must name its instrument"):
        backtest.simulate(markets, entries=np.zeros((50, 2), dtype=bool))
    with pytest.raises(ValueError, match="instrument 'DOGEUSDT' is not in the markets"):
        backtest.simulate(markets, entries=np.zeros((50, 1), dtype=bool), instruments=["DOGEUSDT"])
    ok = backtest.simulate(markets, entries=np.zeros((50, 2), dtype=bool),
                           instruments=["BTCUSDT", "ETHUSDT"])
    assert ok.instruments().index.get_level_values("symbol").tolist() == ["BTCUSDT", "ETHUSDT"]
