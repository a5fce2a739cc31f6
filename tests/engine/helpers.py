"""Tiny hand-made markets for the engine's specification tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

import backtest


def bars(rows, *, start="2025-01-01", freq="1h", mark=None, funding=None) -> backtest.Market:
    """A market from (open, high, low, close) rows; ``mark`` rows likewise."""
    index = pd.date_range(start, periods=len(rows), freq=freq, tz="UTC")
    frame = pd.DataFrame(rows, columns=["open", "high", "low", "close"], index=index, dtype=float)
    mark_frame = None
    if mark is not None:
        mark_frame = pd.DataFrame(mark, columns=["open", "high", "low", "close"], index=index, dtype=float)
    return backtest.Market(frame, mark=mark_frame, funding=funding)


def flat(n_bars, price=100.0, **kwargs) -> backtest.Market:
    return bars([(price, price, price, price)] * n_bars, **kwargs)


def signal_at(n_bars, *positions) -> np.ndarray:
    signal = np.zeros(n_bars, dtype=bool)
    signal[list(positions)] = True
    return signal


def random_ohlc(seed, n_bars=300, vol=0.01, gaps=True) -> np.ndarray:
    """(n_bars, 4) open/high/low/close of a seeded geometric random walk.

    With ``gaps`` each open differs from the previous close by noise of a fifth of ``vol``;
    without, every open is the previous close (no bar can open beyond a level the previous
    bar's range did not reach).
    """
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, vol, n_bars)))
    open_ = np.r_[close[0], close[:-1]]
    if gaps:
        open_ = open_ * (1 + rng.normal(0.0, vol / 5, n_bars))
    spread = np.abs(rng.normal(0.0, vol / 2, n_bars)) * close
    return np.column_stack([open_, np.maximum(open_, close) + spread,
                            np.minimum(open_, close) - spread, close])


def random_market(seed, n_bars=300, vol=0.01, gaps=True) -> backtest.Market:
    return bars(random_ohlc(seed, n_bars, vol, gaps))


def draw_account_settings(draw, *, funding: tuple, trailing: bool = True) -> dict:
    """A hypothesis draw of the settings the property tests vary: leverage, margin mode, fees,
    slippage, timing, stops (take-profit and trailing with ``trailing``), size and ``funding``
    (the values to draw from)."""
    from hypothesis import strategies as st

    settings = dict(
        leverage=draw(st.sampled_from([1.0, 3.0, 10.0, 50.0])),
        margin_mode=draw(st.sampled_from(["isolated", "cross"])),
        fees=draw(st.sampled_from([0.0, 0.0005])),
        slippage=draw(st.sampled_from([0.0, 0.001])),
        timing=draw(st.sampled_from(["next_open", "close"])),
        sl_stop=draw(st.sampled_from([None, 0.02, 0.1])),
    )
    if trailing:
        settings["tp_stop"] = draw(st.sampled_from([None, 0.05]))
        settings["trail_stop"] = draw(st.sampled_from([None, 0.03]))
    settings["size"] = draw(st.sampled_from([0.3, 1.0]))
    settings["funding"] = draw(st.sampled_from(list(funding)))
    return settings


def assert_trade_pnl_identity(trades) -> None:
    """Every trade's pnl is its price PnL + the insurance fund's shortfall − fees − funding."""
    sign = np.where(trades["side"] == "long", 1.0, -1.0)
    price_pnl = sign * trades["qty"] * (trades["exit_price"] - trades["entry_price"])
    np.testing.assert_allclose(
        trades["pnl"].to_numpy(), (price_pnl + trades["insurance_shortfall"] - trades["fees"]
                                   - trades["funding"]).to_numpy(), rtol=1e-9, atol=1e-6)

