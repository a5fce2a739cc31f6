"""Property tests (hypothesis) on random prices and signals."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

import backtest

from .helpers import assert_trade_pnl_identity, draw_account_settings, random_market

SETTINGS = settings(max_examples=30, deadline=None)


@st.composite
def scenarios(draw):
    seed = draw(st.integers(0, 10_000))
    n_bars = draw(st.integers(40, 160))
    rng = np.random.default_rng(seed)
    market = random_market(seed, n_bars, vol=draw(st.sampled_from([0.005, 0.02, 0.05])))
    signals = {k: rng.random((n_bars, 3)) < draw(st.floats(0.02, 0.2))
               for k in ("entries", "exits", "short_entries", "short_exits")}
    kwargs = dict(**draw_account_settings(draw, funding=(False, 0.0003, -0.001)), mmr=0.005)
    return market, signals, kwargs


@given(scenarios())
@SETTINGS
def test_accounting_identity(scenario):
    """Final equity = initial cash + Σ trade pnl, exactly: pnl is net of fees and funding, trades
    still open at the end are marked at the last close, and what the insurance fund bore beyond
    the collateral (``insurance_shortfall``) is not the trader's loss."""
    market, signals, kwargs = scenario
    result = backtest.simulate(market, **signals, **kwargs)
    for col in range(3):
        trades = result.trades[result.trades["col"] == col]
        expected = 10_000.0 + trades["pnl"].sum()
        np.testing.assert_allclose(result.equity[col].iloc[-1], expected, rtol=1e-9, atol=1e-6)
        assert_trade_pnl_identity(trades)


@given(scenarios())
@SETTINGS
def test_equity_never_negative_and_funding_adds_up(scenario):
    market, signals, kwargs = scenario
    result = backtest.simulate(market, **signals, **kwargs)
    assert (result.equity.to_numpy() >= 0).all()
    np.testing.assert_allclose(result.funding["payment"].sum(), result.trades["funding"].sum(),
                               atol=1e-9)


@given(scenarios())
@SETTINGS
def test_deterministic(scenario):
    market, signals, kwargs = scenario
    first = backtest.simulate(market, **signals, **kwargs)
    second = backtest.simulate(market, **signals, **kwargs)
    pd.testing.assert_frame_equal(first.equity, second.equity)
    pd.testing.assert_frame_equal(first.orders, second.orders)


@given(scenarios())
@SETTINGS
def test_columns_are_independent_unless_grouped(scenario):
    market, signals, kwargs = scenario
    together = backtest.simulate(market, **signals, **kwargs)
    for col in range(3):
        alone = backtest.simulate(market, **{k: v[:, col] for k, v in signals.items()}, **kwargs)
        np.testing.assert_array_equal(together.equity[col].to_numpy(), alone.equity.to_numpy())


@given(scenarios(), st.floats(0.3, 0.9))
@SETTINGS
def test_no_look_ahead(scenario, fraction):
    """Removing future bars never changes past equity."""
    market, signals, kwargs = scenario
    cut = int(len(market) * fraction)
    full = backtest.simulate(market, **signals, **kwargs)
    past = backtest.simulate(market[:cut], **{k: v[:cut] for k, v in signals.items()}, **kwargs)
    np.testing.assert_array_equal(past.equity.to_numpy(), full.equity.to_numpy()[:cut])


def test_grouped_columns_share_one_wallet():
    market = random_market(11, 200)
    entries = np.zeros((200, 2), dtype=bool)
    entries[5, 0] = entries[7, 1] = True
    grouped = backtest.simulate(market, entries=entries, size=0.4, leverage=3.0, margin_mode="cross",
                                group_by=True, init_cash=10_000.0, funding=False)
    assert isinstance(grouped.equity, pd.Series)  # one account
    assert grouped.position.shape == (200, 2)
    # the second entry sizes off the shared equity, less the first position's margin
    orders = grouped.orders
    assert len(orders[orders["status"] == "filled"]) >= 2
    separate = backtest.simulate(market, entries=entries, size=0.4, leverage=3.0, margin_mode="cross",
                                 init_cash=10_000.0, funding=False)
    assert not np.isclose(grouped.equity.iloc[-1], separate.equity.sum(axis=1).iloc[-1] - 10_000.0)
