"""Bad arguments raise ValueError naming the argument."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import backtest

from .helpers import flat, signal_at

N_BARS = 20


@pytest.fixture()
def market():
    return flat(N_BARS)


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(leverage=0.0), "leverage must be positive"),
    (dict(leverage=-2.0), "leverage must be positive"),
    (dict(leverage=200.0, tiers="BTCUSDT"), "leverage 200.0 is above the maximum 125"),
    (dict(leverage=50.0, mmr=0.03), "mmr 0.03 must be below 1 / leverage"),
    (dict(size=np.full(N_BARS, np.nan)), "size contains NaN"),
    (dict(size=-1.0), "size must be >= 0"),
    (dict(margin_mode="portfolio"), "margin_mode must be one of"),
    (dict(timing="tomorrow"), "timing must be one of"),
    (dict(size_type="lots"), "size_type must be one of"),
    (dict(size_type="risk"), "size_type='risk' needs a stop"),
    (dict(intrabar="random"), "intrabar must be one of"),
    (dict(fees=-0.1), "fees must be a fraction"),
    (dict(mmr=0.01, tiers="BTCUSDT"), "either mmr"),
    (dict(tiers="DOGEUSDT"), "tiers: no table shipped for 'DOGEUSDT'"),
    (dict(init_cash=-5.0), "init_cash must be positive"),
    (dict(funding="yes"), "funding must be True, False or a constant rate"),
])
def test_bad_argument_is_named(market, kwargs, message):
    with pytest.raises(ValueError, match=message):
        backtest.simulate(market, entries=signal_at(N_BARS, 1), **kwargs)


def test_misaligned_shapes_are_rejected(market):
    with pytest.raises(ValueError, match=r"entries has shape \(7, 1\)"):
        backtest.simulate(market, entries=np.zeros(7, dtype=bool))
    with pytest.raises(ValueError, match=r"(entries|exits) has \d columns but other arguments have \d"):
        backtest.simulate(market, entries=np.zeros((N_BARS, 2), dtype=bool),
                          exits=np.zeros((N_BARS, 3), dtype=bool))


def test_series_with_another_index_is_rejected(market):
    other = pd.Series(False, index=pd.date_range("2030-01-01", periods=N_BARS, freq="1h", tz="UTC"))
    with pytest.raises(ValueError, match="entries is not aligned with the market"):
        backtest.simulate(market, entries=other)


def test_signals_are_required(market):
    with pytest.raises(ValueError, match="give entries or short_entries"):
        backtest.simulate(market)


def test_market_must_be_a_market():
    with pytest.raises(ValueError, match="market must be a backtest.Market"):
        backtest.simulate(pd.DataFrame({"close": [1.0]}), entries=[True])


def test_isolated_columns_can_share_one_wallet(market):
    """An isolated account of two legs: each has its own margin, both draw on one wallet."""
    entries = np.zeros((N_BARS, 2), dtype=bool)
    entries[1, :] = True
    result = backtest.simulate(market, entries=entries, size=0.5, group_by=True, funding=False,
                               timing="close")
    orders = result.orders
    assert orders["status"].tolist() == ["filled", "filled"]
    # the second leg sizes off what the first left available: half of the rest
    first, second = (orders["qty"] * orders["price"]).tolist()
    assert second == pytest.approx(first / 2, rel=1e-3)
