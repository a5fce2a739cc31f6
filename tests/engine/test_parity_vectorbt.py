"""At leverage 1, funding off and timing="close", equity reproduces vectorbt's from_signals.

Conventions that agree by construction: ``size=1.0`` of equity with fees included is vectorbt's
``size=np.inf`` (all cash, fees included); stops are measured from the entry bar's close
(vectorbt's ``stop_entry_price="close"``); an entry and an exit on the same bar cancel (its
"ignore"); an opposite entry reverses. Where they differ by design: our stop-loss is a market
order (slippage applies) — vectorbt's ``stop_exit_price="stopmarket"`` — while our take-profit is
a limit order filled at its level without slippage, so take-profit parity is tested with zero
slippage. When a stop-loss and a take-profit are both inside one bar, vectorbt takes the
stop-loss; our ``intrabar="pessimistic"`` visits the adverse extreme first and agrees.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import backtest

from .helpers import random_market

RTOL = 1e-9
N_COLS = 4


def _signals(market, seed, probability=0.06):
    rng = np.random.default_rng(seed)
    shape = (len(market), N_COLS)
    return [pd.DataFrame(rng.random(shape) < probability, index=market.index) for _ in range(4)]


def _vectorbt(market, **kwargs):
    import vectorbt as vbt

    pf = vbt.Portfolio.from_signals(market.close, open=market.open, high=market.high,
                                    low=market.low, init_cash=10_000.0, freq="1h", **kwargs)
    return pf.value().to_numpy()


def _ours(market, **kwargs):
    result = backtest.simulate(market, timing="close", funding=False, leverage=1.0,
                               init_cash=10_000.0, **kwargs)
    return result.equity.to_numpy()


COSTS = [dict(fees=0.0, slippage=0.0), dict(fees=0.001, slippage=0.0005)]


@pytest.mark.parametrize("costs", COSTS, ids=["frictionless", "fees+slippage"])
@pytest.mark.parametrize("seed", [1, 2])
def test_long_only(costs, seed):
    market = random_market(seed)
    entries, exits, _, _ = _signals(market, seed)
    np.testing.assert_allclose(_ours(market, entries=entries, exits=exits, **costs),
                               _vectorbt(market, entries=entries, exits=exits, **costs), rtol=RTOL)


@pytest.mark.parametrize("costs", COSTS, ids=["frictionless", "fees+slippage"])
def test_short_only(costs):
    market = random_market(3)
    _, _, short_entries, short_exits = _signals(market, 3)
    np.testing.assert_allclose(
        _ours(market, short_entries=short_entries, short_exits=short_exits, **costs),
        _vectorbt(market, short_entries=short_entries, short_exits=short_exits, **costs), rtol=RTOL)


@pytest.mark.parametrize("costs", COSTS, ids=["frictionless", "fees+slippage"])
def test_both_directions_with_reversals(costs):
    market = random_market(4)
    entries, exits, short_entries, short_exits = _signals(market, 4)
    kwargs = dict(entries=entries, exits=exits, short_entries=short_entries, short_exits=short_exits)
    np.testing.assert_allclose(_ours(market, **kwargs, **costs), _vectorbt(market, **kwargs, **costs),
                               rtol=RTOL)


@pytest.mark.parametrize("costs", COSTS, ids=["frictionless", "fees+slippage"])
def test_stop_loss_on_ohlc(costs):
    market = random_market(5)
    entries, exits, _, _ = _signals(market, 5)
    np.testing.assert_allclose(
        _ours(market, entries=entries, exits=exits, sl_stop=0.02, intrabar="pessimistic", **costs),
        _vectorbt(market, entries=entries, exits=exits, sl_stop=0.02, stop_exit_price="stopmarket",
                  **costs), rtol=RTOL)


def test_stop_loss_and_take_profit_on_ohlc():
    market = random_market(6)
    entries, exits, _, _ = _signals(market, 6)
    costs = dict(fees=0.001, slippage=0.0)
    np.testing.assert_allclose(
        _ours(market, entries=entries, exits=exits, sl_stop=0.015, tp_stop=0.02,
              intrabar="pessimistic", **costs),
        _vectorbt(market, entries=entries, exits=exits, sl_stop=0.015, tp_stop=0.02, **costs),
        rtol=RTOL)


def test_parity_actually_trades_and_stops():
    market = random_market(5)
    entries, exits, _, _ = _signals(market, 5)
    result = backtest.simulate(market, entries=entries, exits=exits, sl_stop=0.02, timing="close",
                               funding=False)
    reasons = set(result.trades["exit_reason"])
    assert {"signal", "stop_loss"} <= reasons
