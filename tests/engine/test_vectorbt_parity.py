"""At leverage 1, funding off, equity reproduces vectorbt's ``Portfolio.from_signals(...).value()``.

vectorbt 1.2 is the independent reference here: same seeded random OHLC walks (with gaps between
one close and the next open), same random signals on several columns, relative tolerance 1e-9.

Conventions that agree, so parity is tested:

- ``timing="close"`` is vectorbt's default order price (the close); ``timing="next_open"`` is
  vectorbt with signals shifted by one bar and ``price=open``.
- ``size=1.0`` of equity with fees included is vectorbt's ``size=np.inf`` (all the cash, fees
  included); ``size=0.5`` without fees is ``size=0.5, size_type="percent"`` (long only).
- An entry and an exit of one side on one bar cancel, as do long and short entries together
  (vectorbt's ``upon_*_conflict="ignore"``); an opposite entry reverses the position.
- Stops are fractions of the entry bar's close (``stop_entry_price="close"``); on the bar a stop
  fires, the column's signals are ignored (vectorbt lets the stop signal replace them).
- Our stop-loss is a market order, slippage applies: vectorbt's ``stop_exit_price="stopmarket"``.
  Our take-profit is a limit order at its level without slippage: vectorbt's default
  ``"stoplimit"``. vectorbt has one setting for both, so stop-loss *and* take-profit together
  are compared with zero slippage.
- A gap through a level fills at the open, in both.

Where the conventions differ (not tested for parity, each pinned by a test below):

- **Both stops in one bar.** vectorbt always takes the stop-loss. We walk the bar's path; with
  ``intrabar="pessimistic"`` the adverse extreme comes first, which agrees — except when the bar
  *opens* beyond the take-profit and then falls through the stop-loss: the open is the first
  price traded, so we fill the take-profit at the open where vectorbt fills the stop-loss. The
  SL+TP parity test therefore uses gapless bars (each open is the previous close), where a
  surviving position never opens beyond either level.
- **Trailing stops.** vectorbt checks a bar against the peak of the *previous* bars and moves the
  peak to this bar's high afterwards; we move it along the intrabar path (the open, then the
  extremes in path order), so a bar that rises and falls back can trail-stop within the bar.
- **Positions opened at the open** (``timing="next_open"``) are exposed to their stops on the
  entry bar's path here; vectorbt checks stops only from the next bar. next_open parity is
  therefore tested without stops.
- **Liquidation.** At leverage 1 a long cannot be liquidated (its liquidation price is 0) but a
  1x short is, when the price roughly doubles (vectorbt lets the value go negative). The random
  walks here never come near.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import backtest

from .helpers import bars, random_market, signal_at

RTOL = 1e-9
N_COLS = 5
INIT_CASH = 10_000.0
SEEDS = [1, 2, 3]
COSTS = [dict(fees=0.0, slippage=0.0), dict(fees=0.001, slippage=0.0005)]
COST_IDS = ["frictionless", "fees+slippage"]


def _signals(market, seed, probability=0.06):
    """entries, exits, short_entries, short_exits: (bars × N_COLS) boolean DataFrames."""
    rng = np.random.default_rng(seed + 1000)
    shape = (len(market), N_COLS)
    return [pd.DataFrame(rng.random(shape) < probability, index=market.index) for _ in range(4)]


def _vectorbt(market, **kwargs):
    import vectorbt as vbt

    # every argument always given, with one dtype, so vectorbt compiles its kernel once
    no_signal = pd.DataFrame(False, index=market.index, columns=range(N_COLS))
    for name in ("entries", "exits", "short_entries", "short_exits"):
        signal = kwargs.get(name, no_signal)
        kwargs[name] = pd.DataFrame(np.broadcast_to(np.asarray(signal).reshape(len(market), -1),
                                                    no_signal.shape), index=market.index)
    defaults = dict(price=market.close, size=np.inf, size_type="amount", sl_stop=np.nan,
                    tp_stop=np.nan, fees=0.0, slippage=0.0, stop_exit_price="stoplimit")
    kwargs = {**defaults, **kwargs}
    kwargs.update({k: float(kwargs[k]) for k in ("size", "sl_stop", "tp_stop", "fees", "slippage")})
    pf = vbt.Portfolio.from_signals(market.close, open=market.open, high=market.high,
                                    low=market.low, init_cash=INIT_CASH, freq="1h", **kwargs)
    return pf.value().to_numpy()


def _ours(market, timing="close", **kwargs):
    result = backtest.simulate(market, timing=timing, funding=False, leverage=1.0,
                               init_cash=INIT_CASH, **kwargs)
    return result.equity.to_numpy()


def _assert_parity(ours, theirs):
    assert ours.shape == theirs.shape
    assert np.isfinite(theirs).all()
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=0.0)


@pytest.mark.parametrize("costs", COSTS, ids=COST_IDS)
@pytest.mark.parametrize("seed", SEEDS)
def test_long_only(costs, seed):
    market = random_market(seed)
    entries, exits, _, _ = _signals(market, seed)
    _assert_parity(_ours(market, entries=entries, exits=exits, **costs),
                   _vectorbt(market, entries=entries, exits=exits, **costs))


@pytest.mark.parametrize("costs", COSTS, ids=COST_IDS)
@pytest.mark.parametrize("seed", SEEDS)
def test_short_only(costs, seed):
    market = random_market(seed)
    _, _, short_entries, short_exits = _signals(market, seed)
    _assert_parity(_ours(market, short_entries=short_entries, short_exits=short_exits, **costs),
                   _vectorbt(market, short_entries=short_entries, short_exits=short_exits, **costs))


@pytest.mark.parametrize("costs", COSTS, ids=COST_IDS)
@pytest.mark.parametrize("seed", SEEDS)
def test_both_directions_with_reversals(costs, seed):
    market = random_market(seed)
    signals = dict(zip(("entries", "exits", "short_entries", "short_exits"),
                       _signals(market, seed, probability=0.1), strict=True))
    _assert_parity(_ours(market, **signals, **costs), _vectorbt(market, **signals, **costs))


def test_reversal_without_exit_signals():
    """Only entries on both sides: every opposite entry closes and reverses the whole position."""
    market = random_market(7)
    entries, _, short_entries, _ = _signals(market, 7, probability=0.08)
    costs = COSTS[1]
    _assert_parity(_ours(market, entries=entries, short_entries=short_entries, **costs),
                   _vectorbt(market, entries=entries, short_entries=short_entries, **costs))


def test_half_of_equity_long_without_fees():
    market = random_market(8)
    entries, exits, _, _ = _signals(market, 8)
    _assert_parity(_ours(market, entries=entries, exits=exits, size=0.5),
                   _vectorbt(market, entries=entries, exits=exits, size=0.5, size_type="percent"))


@pytest.mark.parametrize("costs", COSTS, ids=COST_IDS)
def test_next_open_is_vectorbt_with_shifted_signals_at_the_open(costs):
    market = random_market(9)
    signals = _signals(market, 9, probability=0.1)
    names = ("entries", "exits", "short_entries", "short_exits")
    ours = _ours(market, timing="next_open", **dict(zip(names, signals, strict=True)), **costs)
    shifted = {name: s.shift(1, fill_value=False) for name, s in zip(names, signals, strict=True)}
    _assert_parity(ours, _vectorbt(market, price=market.open, **shifted, **costs))


@pytest.mark.parametrize("costs", COSTS, ids=COST_IDS)
@pytest.mark.parametrize("seed", SEEDS)
def test_stop_loss_on_ohlc_is_a_stop_market_order(costs, seed):
    market = random_market(seed)
    entries, exits, short_entries, short_exits = _signals(market, seed)
    signals = dict(entries=entries, exits=exits, short_entries=short_entries, short_exits=short_exits)
    _assert_parity(
        _ours(market, **signals, sl_stop=0.02, **costs),
        _vectorbt(market, **signals, sl_stop=0.02, stop_exit_price="stopmarket", **costs))


@pytest.mark.parametrize("seed", SEEDS)
def test_take_profit_on_ohlc_is_a_limit_order(seed):
    """Slippage does not touch a take-profit: vectorbt's default stop-limit exit."""
    market = random_market(seed)
    entries, exits, short_entries, short_exits = _signals(market, seed)
    signals = dict(entries=entries, exits=exits, short_entries=short_entries, short_exits=short_exits)
    costs = COSTS[1]
    _assert_parity(_ours(market, **signals, tp_stop=0.015, **costs),
                   _vectorbt(market, **signals, tp_stop=0.015, **costs))


@pytest.mark.parametrize("seed", SEEDS)
def test_stop_loss_and_take_profit_on_gapless_ohlc(seed):
    market = random_market(seed, gaps=False)
    entries, exits, short_entries, short_exits = _signals(market, seed)
    signals = dict(entries=entries, exits=exits, short_entries=short_entries, short_exits=short_exits)
    costs = dict(fees=0.001, slippage=0.0)
    _assert_parity(
        _ours(market, **signals, sl_stop=0.012, tp_stop=0.015, intrabar="pessimistic", **costs),
        _vectorbt(market, **signals, sl_stop=0.012, tp_stop=0.015, **costs))


def test_parity_cases_do_trade_stop_and_take_profit():
    """The parity runs above are not vacuous: they trade both sides and hit both stops."""
    market = random_market(1, gaps=False)
    entries, exits, short_entries, short_exits = _signals(market, 1)
    result = backtest.simulate(market, entries=entries, exits=exits, short_entries=short_entries,
                               short_exits=short_exits, sl_stop=0.012, tp_stop=0.015,
                               timing="close", funding=False, intrabar="pessimistic")
    trades = result.trades
    assert {"signal", "stop_loss", "take_profit"} <= set(trades["exit_reason"])
    assert {"long", "short"} <= set(trades["side"])
    assert len(trades) > 10 * N_COLS


# ----- where the conventions differ -------------------------------------------------------------


def test_bar_opening_beyond_the_take_profit_fills_it_at_the_open_even_if_it_then_hits_the_stop():
    # long from the close of 100; TP 102, SL 98; the next bar opens at 103 and falls to 97
    market = bars([(100, 100, 100, 100), (103, 103, 97, 99)])
    result = backtest.simulate(market, entries=signal_at(2, 0), sl_stop=0.02, tp_stop=0.02,
                               timing="close", funding=False, intrabar="pessimistic")
    assert result.trades["exit_reason"].tolist() == ["take_profit"]
    assert result.trades["exit_price"].tolist() == [103.0]
    # vectorbt takes the stop-loss at 98
    vbt_value = _vectorbt(market, entries=signal_at(2, 0), sl_stop=0.02, tp_stop=0.02)
    assert vbt_value[-1, 0] == pytest.approx(INIT_CASH * 0.98)
    assert result.equity.iloc[-1] == pytest.approx(INIT_CASH * 1.03)


def test_trailing_stop_follows_the_high_reached_within_the_bar():
    # long from 100 with a 5% trail; the bar opens 100, rises to 110 (peak), then closes at 104:
    # the trail at 104.5 is hit on the way down (vectorbt would still measure from 100)
    market = bars([(100, 100, 100, 100), (100, 110, 99, 104), (104, 104, 104, 104)])
    result = backtest.simulate(market, entries=signal_at(3, 0), trail_stop=0.05, timing="close",
                               funding=False, intrabar="optimistic")
    assert result.trades["exit_reason"].tolist() == ["trailing_stop"]
    assert result.trades["exit_price"].iloc[0] == pytest.approx(104.5)
