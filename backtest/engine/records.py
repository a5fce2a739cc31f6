"""Enums (named tuples of ints, numba-friendly) and the structured dtypes of the engine's records.

Everything the kernels and the pandas layer agree on lives here, in one place.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class _SizeType(NamedTuple):
    equity: int = 0  # fraction of equity committed as margin (notional = size × equity × leverage)
    notional: int = 1  # quote currency
    exposure: int = 2  # notional / equity
    risk: int = 3  # fraction of equity lost if the stop is hit
    target_vol: int = 4  # annualized volatility target; notional = equity × size / realized vol


class _MarginMode(NamedTuple):
    isolated: int = 0
    cross: int = 1


class _Timing(NamedTuple):
    next_open: int = 0  # signal at bar t fills at t+1's open
    close: int = 1  # signal at bar t fills at t's close


class _Intrabar(NamedTuple):
    auto: int = 0  # O→L→H→C when close ≥ open, else O→H→L→C
    pessimistic: int = 1  # the extreme adverse to the open position first
    optimistic: int = 2  # the favourable extreme first


class _OrderStatus(NamedTuple):
    filled: int = 0
    rejected: int = 1


class _Reason(NamedTuple):
    """Why an order was placed (and, for exits, why the trade ended)."""

    signal: int = 0
    stop_loss: int = 1
    take_profit: int = 2
    trailing_stop: int = 3
    liquidation: int = 4
    end: int = 5  # still open at the last bar, marked at its close
    insufficient_margin: int = 6  # rejected: margin + fee exceed the available equity
    tier_leverage: int = 7  # rejected: the notional's bracket allows less leverage
    below_min_notional: int = 8  # rejected: too small to place
    size_unavailable: int = 9  # rejected: no size ("risk" without a usable stop, "target_vol"
    #                            before the volatility window has filled)
    exceeds_depth: int = 10  # rejected: more than the book's visible side (half the 2% depth)
    exceeds_max_notional: int = 11  # rejected: beyond the tier table's last bracket


SizeType = _SizeType()
MarginMode = _MarginMode()
Timing = _Timing()
Intrabar = _Intrabar()
OrderStatus = _OrderStatus()
Reason = _Reason()

REASON_NAMES = np.array(Reason._fields)
STATUS_NAMES = np.array(OrderStatus._fields)

LONG, SHORT = 1, -1

# Engine constants (named here so kernels carry no magic numbers).
FUNDING_INTERVAL_HOURS = 8  # Binance USDⓈ-M default funding interval
# A market's ``depth`` is the USD resting within ±DEPTH_BAND of the mid, bids and asks together;
# a market order walks one side (half of it), spread evenly over the band (a linear book), so
# eating notional N moves the price by DEPTH_BAND·N/(depth/2) at the last fill and by half that,
# DEPTH_BAND·N/depth, on average.
DEPTH_BAND = 0.02
MAX_DEPTH_IMPACT = 0.5  # an exit far beyond the visible book: the linear walk, bounded at 50%
MIN_NOTIONAL_USD = 5.0  # orders smaller than this are rejected (Binance's minimum is 5-100 USDT)
WIPED_EQUITY_FRACTION = 1e-4  # an account with less than this share of its initial cash is dead
DEFAULT_LIQUIDATION_FEE = 0.0125  # Binance clearance fee (assumed; varies by symbol, up to 1.5%)
DEFAULT_MMR = 0.005  # flat maintenance rate when no tier table is known (Binance BTC tier 2)
DEFAULT_MAX_LEVERAGE = 125.0  # the flat table's cap: Binance's highest leverage on any contract

order_dt = np.dtype([
    ("col", np.int32), ("bar", np.int32), ("side", np.int8), ("qty", np.float64),
    ("price", np.float64), ("fee", np.float64), ("status", np.int8), ("reason", np.int8),
])

trade_dt = np.dtype([
    ("col", np.int32), ("entry_bar", np.int32), ("exit_bar", np.int32), ("side", np.int8),
    ("qty", np.float64), ("entry_price", np.float64), ("exit_price", np.float64),
    ("pnl", np.float64), ("fees", np.float64), ("funding", np.float64), ("margin", np.float64),
    ("shortfall", np.float64), ("exit_reason", np.int8),
])

liquidation_dt = np.dtype([
    ("col", np.int32), ("bar", np.int32), ("side", np.int8), ("qty", np.float64),
    ("price", np.float64), ("loss", np.float64), ("fee", np.float64), ("shortfall", np.float64),
])

funding_dt = np.dtype([
    ("col", np.int32), ("bar", np.int32), ("qty", np.float64), ("price", np.float64),
    ("rate", np.float64), ("payment", np.float64),
])
