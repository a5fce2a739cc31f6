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
    adl: int = 12  # auto-deleveraged: closed by the exchange at the ADL price, no fee


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


# ----- kernel inputs: arrays grouped by what they describe ------------------------------------------
# K instruments, n bars, C columns (legs), G accounts. Per-instrument series are (K, n) C-ordered;
# per-column parameters are (C or 1, n or 1) C-ordered (a length-1 axis broadcasts).


class MarketArrays(NamedTuple):
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    mark_open: np.ndarray  # NaN where the mark series does not cover the bar
    mark_high: np.ndarray
    mark_low: np.ndarray
    mark_close: np.ndarray
    funding: np.ndarray  # rate charged at the bar's open; NaN for none
    depth: np.ndarray  # 2% depth in USD (both sides); NaN for unknown
    vol: np.ndarray  # annualized realized volatility up to the bar (target_vol sizing)
    first_bar: np.ndarray  # (K,) first bar an instrument trades (listed later: not before)
    last_bar: np.ndarray  # (K,) last bar it trades
    has_mark: np.ndarray  # (K,) whether the instrument has a mark series at all


class TierArrays(NamedTuple):
    start: np.ndarray  # (K,) offset of each instrument's brackets in the arrays below
    count: np.ndarray  # (K,)
    max_notional: np.ndarray
    mmr: np.ndarray
    cum: np.ndarray
    max_leverage: np.ndarray


class SignalArrays(NamedTuple):
    entries: np.ndarray
    exits: np.ndarray
    short_entries: np.ndarray
    short_exits: np.ndarray


class OrderArrays(NamedTuple):
    size: np.ndarray
    sl_stop: np.ndarray
    tp_stop: np.ndarray
    trail_stop: np.ndarray
    sl_price: np.ndarray
    tp_price: np.ndarray
    fees: np.ndarray
    slippage: np.ndarray
    leverage: np.ndarray


class AdlArrays(NamedTuple):
    """Auto-deleveraging as a scenario input (see ``simulate``'s ``adl_price``)."""

    price: np.ndarray  # (K, n): the ADL price per instrument and bar, NaN for none; (K, 1) NaN
    #                    placeholder when no instrument has one (never indexed by bar)
    has: np.ndarray  # (K,) bool: the instrument has an ADL price on some bar
    min_rank: float  # positions whose ADL rank is below this are spared


class Layout(NamedTuple):
    col_instrument: np.ndarray  # (C,) the instrument each column trades
    col_order: np.ndarray  # (C,) columns sorted by account
    group_start: np.ndarray  # (G,) each account's first position in col_order
    group_len: np.ndarray  # (G,)
    init_cash: np.ndarray  # (G,)


class _AccountStat(NamedTuple):
    """Statistics each account accumulates bar by bar (stats() reads them; O(accounts) memory)."""

    bars: int = 0
    sum_returns: int = 1  # Σ (r - shift): sums shifted by the first return, exact for variance
    sum_squares: int = 2  # Σ (r - shift)²
    downside_sq: int = 3  # Σ min(r, 0)²
    growth: int = 4  # Π (1 + r)
    last_equity: int = 5
    peak: int = 6  # drawdowns as vectorbt records them: running peak, its bar, the valley
    peak_bar: int = 7
    in_drawdown: int = 8
    valley: int = 9
    max_drawdown: int = 10  # ≤ 0, NaN before any drawdown
    max_drawdown_bars: int = 11
    exposed_bars: int = 12
    max_leverage: int = 13
    worst_margin_ratio: int = 14
    trades: int = 15  # closed trades (not the ones still open at the end)
    wins: int = 16
    gross_profit: int = 17
    gross_loss: int = 18
    pnl: int = 19
    liquidations: int = 20
    funding: int = 21
    fees: int = 22
    shortfall: int = 23
    rejected: int = 24
    final_wallet: int = 25
    shift: int = 26  # the first bar's return


class _ColumnStat(NamedTuple):
    """What each column (an instrument's leg of an account) adds up, for per-instrument tables."""

    pnl: int = 0  # net, trades still open at the end included
    fees: int = 1
    funding: int = 2
    liquidations: int = 3
    exposed_bars: int = 4
    trades: int = 5


AccountStat = _AccountStat()
ColumnStat = _ColumnStat()
N_ACCOUNT_STATS = len(AccountStat)
N_COLUMN_STATS = len(ColumnStat)
