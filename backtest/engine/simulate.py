"""``simulate``: the Python entry of the engine — validate once, broadcast flexibly, run the kernel.

Semantics (linear USDT-margined perpetuals, one-way mode; one column = one account unless
grouped):

- **Fills.** Orders fill at the reference price (the next bar's open with ``timing="next_open"``,
  the default, or the signal bar's close with ``timing="close"``) moved against the trader by
  ``slippage`` and, when the market has a depth series and ``depth_impact`` is on, by
  ``0.02 × notional / depth`` more. ``depth`` is the USD resting within ±2% of the mid, bids and
  asks together; a market order walks one side, half of it, spread evenly over the 2% band (a
  linear book), so it moves the price ``0.04 × notional / depth`` by its last fill and half that
  on average. An entry larger than that visible side is refused (``exceeds_depth``); an exit
  is never refused, and its impact, extrapolated beyond the book, stops at 50%. Fees (taker,
  ``fees`` × notional) are charged on every fill.
- **Margin.** Opening needs ``notional / leverage`` of margin plus the fee out of the available
  equity (equity less the margin of the account's other positions). ``size_type="equity"``
  commits ``size`` of it (fees included); ``"notional"`` is in quote currency; ``"exposure"`` is
  notional / equity; ``"risk"`` loses ``size`` × equity if the stop is hit; ``"target_vol"``
  scales notional to ``size`` / realized volatility (log returns over ``vol_window`` bars up to
  the signal bar, annualized on 365 days). An order is rejected and recorded with its reason
  when the account cannot margin it (``insufficient_margin``), its notional falls in a bracket
  allowing less than the leverage (``tier_leverage``) or lies beyond the table's last bracket
  (``exceeds_max_notional``), it is larger than the visible book (``exceeds_depth``), it is
  under 5 USDT with margin to spare (``below_min_notional``), or its size cannot be computed
  (``size_unavailable``: a risk size without a stop on the right side, a volatility target
  before the window has filled) — except that the last three size types are capped instead: at
  the largest notional whose bracket still allows the leverage (strictly inside it), then at
  what the account can margin, then at the visible book.
- **Inputs are checked, never guessed**: signals must be booleans (NaN from a ``shift()``, None
  or strings are errors), Series are matched to the bars by index, costs are finite fractions,
  stops above 0, a constant funding rate within ±5% per 8 h, ``leverage`` one value per column.
- **Leverage** is checked against the tier table in force — ``tiers`` (a shipped symbol, a JSON
  file or a DataFrame), else the market symbol's shipped table, else a flat ``mmr`` (default
  0.5%) allowing up to 125x like Binance: a ``ValueError`` names the limit.
- **Stops.** ``sl_stop``/``tp_stop``/``trail_stop`` are fractions of the entry's reference
  price; ``sl_price``/``tp_price`` absolute levels read on the signal bar and fixed for the trade
  (a level on the wrong side of the entry is ignored). Stop-loss and trailing exits are market
  orders (slippage applies); take-profit is a limit order at its level. A gap through a level
  fills at the open.
- **Liquidation** when the margin balance falls to the maintenance margin, each position's
  bracket taken at the price itself (as Binance computes it: the bracket of the notional at the
  liquidation price, not at entry), checked along the intrabar path on the mark price when the
  market has one. The position closes at the liquidation price (when the price opened beyond
  it, at the worse of it and the open) and pays the clearance fee ``liquidation_fee`` ×
  notional out of what is left.
- **Losses stop at the collateral**, on every exit (liquidation, stop, signal, and the mark of
  positions still open at the end): an isolated position loses at most its margin; a cross
  account at most its wallet once nothing else is open. The excess is the insurance fund's
  shortfall, recorded on the trade (``insurance_shortfall``) and on liquidations. While other
  positions are open, a cross account's *wallet* may go negative — a realized loss is taken in
  full — as long as its margin balance (wallet + unrealized PnL) stays above maintenance;
  below it, the account is liquidated at once (after orders at the close too).
- **Funding** at bars where the market's funding series has a rate (``funding=True``), or a
  constant rate every 8 h (``funding=<float>``): each position pays ``qty × mark open × rate``
  (longs pay positive rates). Off with ``funding=False``.
- **Accounts** group columns (``group_by``) around one wallet; each column is a *leg* trading one
  instrument. Legs on one instrument net into one position (one-way mode): its net quantity sets
  the bracket, the liquidation price and the exposure; each leg keeps its own entry, stops and
  trade records, pays funding on its own quantity and pays its own fees (PnL and fees add up to
  the net position's). Cross accounts back every position with the margin balance (wallet +
  unrealized PnL), which also backs new orders; isolated positions each have their own margin
  (the sum of their legs'), drawn from the wallet — never from another position's unrealized
  profit. Several instruments walk their bars' paths in step (segment k of each spans the same
  third of the bar); a cross account of several instruments is liquidated where its summed
  surplus reaches zero on that joint path, each position closing at its own mark price then (at
  its traded price when the account opens already beyond). An instrument listed later cannot
  trade before its first bar.
- **Accounts** with less than 0.01% of their initial cash left and nothing open are closed: no
  more orders.

Accounting: every account's final equity equals its initial cash plus the sum of its trades'
``pnl`` (price PnL + shortfall − fees − funding). The kernel is checked against an independent
plain-Python model of the account on thousands of random scenarios
(``tests/engine/test_reference_model.py``).
"""

from __future__ import annotations

import numbers
import os
import sys
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from backtest.data.validate import DEFAULT_MAX_FUNDING_RATE
from backtest.engine.coerce import by_index, signal
from backtest.engine.margin import flat_tiers, load_tiers, resolve_tiers, shipped_symbols
from backtest.engine.nb import PER_BAR_ALL, PER_BAR_EQUITY, PER_BAR_NONE, simulate_accounts_nb
from backtest.engine.records import (
    DEFAULT_LIQUIDATION_FEE,
    DEFAULT_MAX_LEVERAGE,
    DEFAULT_MMR,
    FUNDING_INTERVAL_HOURS,
    N_ACCOUNT_STATS,
    N_COLUMN_STATS,
    AdlArrays,
    Intrabar,
    Layout,
    MarginMode,
    MarketArrays,
    OrderArrays,
    SignalArrays,
    SizeType,
    TierArrays,
    Timing,
)
from backtest.market import Market

SIGNAL_ARGS = ("entries", "exits", "short_entries", "short_exits")
FLOAT_ARGS = ("size", "sl_stop", "tp_stop", "trail_stop", "sl_price", "tp_price", "fees", "slippage")
PER_COLUMN_ARGS = ("leverage",)
COST_ARGS = ("fees", "slippage")
DAYS_PER_YEAR = 365
DEFAULT_VOL_WINDOW_DAYS = 30
CHUNK_COLUMN_BARS = 20_000_000  # about 20-100 ms of kernel work per thread task


def _enum(name: str, value, enum) -> int:
    if value not in enum._fields:
        raise ValueError(f"{name} must be one of {list(enum._fields)}, got {value!r}")
    return getattr(enum, value)


def _width(name, value, n_bars, per_column=False):
    """Number of columns an argument implies (1 when it broadcasts)."""
    if value is None or np.isscalar(value):
        return 1
    if isinstance(value, pd.DataFrame):
        return value.shape[1]
    array = np.asarray(value)
    if array.ndim == 1:
        return len(array) if per_column else 1
    if array.ndim == 2:
        return array.shape[1]
    raise ValueError(f"{name} must be a scalar, 1-D or 2-D, got {array.ndim} dimensions")


def _flex(name, value, index, n_cols, dtype, fill, per_column=False) -> np.ndarray:
    """``value`` as a C-contiguous ``(columns, bars)`` array whose length-1 axes broadcast (the
    kernel's layout: a column's bars contiguous, and one numba signature whatever the shapes)."""
    n_bars = len(index)
    if value is None:
        return np.full((1, 1), fill, dtype=dtype)
    if per_column:
        _check_per_column(name, value, n_bars, n_cols)
    else:
        value = by_index(value, index, name)
    if isinstance(value, pd.Series | pd.DataFrame):
        value = value.to_numpy()
    array = np.asarray(value)
    if array.ndim == 0:
        array = array.reshape(1, 1)
    elif array.ndim == 1:
        array = array.reshape(1, -1) if per_column else array.reshape(-1, 1)
    rows, cols = array.shape
    if rows not in (1, n_bars) or cols not in (1, n_cols):
        raise ValueError(f"{name} has shape {array.shape}, which does not broadcast against "
                         f"{n_bars} bars × {n_cols} columns")
    if dtype is bool:
        return _transposed(signal(array, name, index))
    try:
        array = array.astype(np.float64, copy=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be numeric") from exc
    return _transposed(array)


TRANSPOSE_BLOCK_BARS = 4096


def _transposed(array: np.ndarray) -> np.ndarray:
    """``array.T`` C-contiguous; a large C-ordered array is copied a block of bars at a time,
    which keeps both sides of the copy in cache (about twice numpy's plain transpose)."""
    n_bars = array.shape[0]
    if n_bars <= TRANSPOSE_BLOCK_BARS or not array.flags.c_contiguous or array.shape[1] == 1:
        return np.ascontiguousarray(array.T)
    out = np.empty(array.shape[::-1], dtype=array.dtype)
    for i0 in range(0, n_bars, TRANSPOSE_BLOCK_BARS):
        out[:, i0: i0 + TRANSPOSE_BLOCK_BARS] = array[i0: i0 + TRANSPOSE_BLOCK_BARS].T
    return out


def _check_per_column(name, value, n_bars, n_cols) -> None:
    """Per-column arguments (leverage, init_cash) cannot vary per bar: a Series on the bars, or
    one value per bar, would otherwise become one column per bar."""
    per_bar = isinstance(value, pd.Series) and isinstance(value.index, pd.DatetimeIndex)
    if not per_bar and np.ndim(value) == 1 and n_bars > 1 and len(value) == n_bars != n_cols:
        per_bar = True
    if per_bar:
        raise ValueError(f"{name} takes one value per column (or one for all), not one per bar "
                         f"({n_bars} given): it cannot change during a run")


def _check_fractions(flex: dict) -> None:
    """Costs are fractions in [0, 1) and never NaN; a stop is a fraction above 0 (NaN = none):
    a stop of 0 would be silently ignored, a loss stop of 100% never fires."""
    for name in COST_ARGS:
        values = flex[name]
        if np.isnan(values).any():
            raise ValueError(f"{name} contains NaN: a cost must be a number (0 for none)")
        if np.any(values < 0) or np.any(values >= 1):
            bad = values[(values < 0) | (values >= 1)][0]
            raise ValueError(f"{name} must be a fraction in [0, 1), got {bad}")
    for name, upper in (("sl_stop", 1.0), ("trail_stop", 1.0), ("tp_stop", np.inf)):
        values = flex[name][~np.isnan(flex[name])]
        bad = values[(values <= 0) | (values >= upper)]
        if bad.size:
            bound = "in (0, 1)" if np.isfinite(upper) else "above 0"
            raise ValueError(f"{name} must be a fraction {bound} of the entry price (None or NaN "
                             f"for no stop), got {bad[0]}")


def _column_index(args: dict, columns, n_bars) -> pd.Index:
    widths = {name: _width(name, value, n_bars, name in PER_COLUMN_ARGS or name == "init_cash")
              for name, value in args.items()}
    n_cols = max((w for k, w in widths.items() if k not in PER_COLUMN_ARGS), default=1)
    for name in PER_COLUMN_ARGS:
        _check_per_column(name, args.get(name), n_bars, n_cols)
    n_cols = max(widths.values(), default=1)
    if columns is not None:
        columns = columns if isinstance(columns, pd.Index) else pd.Index(columns)
        if n_cols not in (1, len(columns)):
            raise ValueError(f"columns has {len(columns)} labels but the arguments imply {n_cols} columns")
        return columns
    for name, width in widths.items():
        if width not in (1, n_cols):
            raise ValueError(f"{name} has {width} columns but other arguments have {n_cols}")
    for value in args.values():
        if isinstance(value, pd.DataFrame) and value.shape[1] == n_cols:
            return value.columns
    return pd.RangeIndex(n_cols)


class TierWarning(UserWarning):
    """The run uses a stand-in maintenance-margin table (no table for the symbol)."""


def _one_table(symbol, tiers, mmr) -> tuple[pd.DataFrame, str]:
    """The tier table in force for one instrument, and its name for messages."""
    if mmr is not None:
        if not (np.isscalar(mmr) and 0.0 <= float(mmr) < 1.0):
            raise ValueError(f"mmr must be a number in [0, 1), got {mmr!r}")
        return flat_tiers(float(mmr)), f"flat mmr {mmr}"
    if tiers is None:
        if symbol and str(symbol).upper() in shipped_symbols():
            return load_tiers(symbol), f"{str(symbol).upper()} (shipped Binance brackets)"
        name = f"flat mmr {DEFAULT_MMR:g} up to {DEFAULT_MAX_LEVERAGE:g}x (no table for {symbol or 'this market'})"
        warnings.warn(f"no maintenance-margin tier table for {symbol or 'this market'}: using a "
                      f"flat rate of {DEFAULT_MMR:.2%} up to {DEFAULT_MAX_LEVERAGE:g}x; pass "
                      f"tiers= (a shipped symbol: {', '.join(shipped_symbols())}; or a ccxt "
                      "fetch_leverage_tiers JSON file) for the exchange's brackets",
                      TierWarning, stacklevel=4)
        return flat_tiers(DEFAULT_MMR), name
    if isinstance(tiers, str | Path) and Path(tiers).suffix:
        return resolve_tiers(tiers, symbol), f"{Path(tiers).name} ({symbol})" if symbol else Path(tiers).name
    return resolve_tiers(tiers, symbol), (f"{str(tiers).upper()} (shipped Binance brackets)"
                                          if isinstance(tiers, str) else "custom table")


def _tier_tables(markets, tiers, mmr) -> tuple[list[pd.DataFrame], list[str]]:
    """One table per instrument: ``tiers`` may be one table for all or a dict by symbol."""
    if tiers is not None and mmr is not None:
        raise ValueError("give either mmr (a flat maintenance rate) or tiers, not both")
    if isinstance(tiers, dict):
        unknown = set(tiers) - set(markets.symbols)
        if unknown:
            raise ValueError(f"tiers names {sorted(unknown)[0]!r}, which is not among the "
                             f"instruments ({', '.join(markets.symbols)})")
        pairs = [_one_table(symbol, tiers.get(symbol), None) for symbol in markets.symbols]
    else:
        pairs = [_one_table(symbol, tiers, mmr) for symbol in markets.symbols]
    return [table for table, _ in pairs], [name for _, name in pairs]


def _funding_rates(market, index: pd.DatetimeIndex, freq: pd.Timedelta, funding) -> np.ndarray:
    """Rates charged at each bar's open on ``index``: the market's own series, or a constant
    rate at every 8-hour funding time (00, 08, 16 UTC) the bar holds; NaN for none."""
    if funding is False or funding is None:
        return np.full(len(index), np.nan)
    if funding is True:
        if market.funding is None:
            return np.full(len(index), np.nan)
        return market.funding.reindex(index).to_numpy(dtype=float)
    if isinstance(funding, bool) or not isinstance(funding, numbers.Real) or not np.isfinite(funding):
        raise ValueError(f"funding must be True, False or a constant rate per 8 h, got {funding!r}")
    if abs(funding) > DEFAULT_MAX_FUNDING_RATE:
        raise ValueError(f"funding={funding!r}: a constant rate per 8 h must be within "
                         f"±{DEFAULT_MAX_FUNDING_RATE} (rates are fractions: 0.0001 = 0.01%), as "
                         "for funding files")
    interval = pd.Timedelta(hours=FUNDING_INTERVAL_HOURS).value
    opens = index.as_unit("ns").asi8
    nexts = np.append(opens[1:], opens[-1] + freq.value)
    events = -(-nexts // interval) - (-(-opens // interval))
    return np.where(events > 0, float(funding) * events, np.nan)


def _readonly(array: np.ndarray) -> np.ndarray:
    """A read-only view: numba compiles writable and read-only arrays separately, and pandas
    hands out both, so every kernel input is made read-only (one signature)."""
    view = array.view()
    view.flags.writeable = False
    return view


def _rows(rows, dtype=np.float64) -> np.ndarray:
    """Per-instrument series stacked as a C-contiguous (instruments, bars) array."""
    return np.ascontiguousarray(np.vstack([np.asarray(r, dtype=dtype) for r in rows]))


def _realized_vol(close: pd.Series, freq: pd.Timedelta, window) -> np.ndarray:
    periods_per_year = pd.Timedelta(days=DAYS_PER_YEAR) / freq if freq > pd.Timedelta(0) else np.nan
    if window is None:
        window = max(int(pd.Timedelta(days=DEFAULT_VOL_WINDOW_DAYS) / freq), 2) if freq > pd.Timedelta(0) else 2
    log_returns = np.log(close).diff()
    return (log_returns.rolling(window).std() * np.sqrt(periods_per_year)).to_numpy()


def _column_instruments(markets, columns: pd.Index, instruments) -> np.ndarray:
    """The instrument index of each column: from ``instruments`` (one symbol per column, or one
    for all), else from the column labels (a label, or a MultiIndex level, naming a symbol)."""
    symbols = markets.symbols
    if len(symbols) == 1 and instruments is None:
        return np.zeros(len(columns), dtype=np.int64)
    if instruments is None:
        candidates = [columns] if not isinstance(columns, pd.MultiIndex) else \
            [columns.get_level_values(level) for level in range(columns.nlevels)]
        for labels in reversed(candidates):
            names = [str(label) for label in labels]
            if all(name in symbols for name in names):
                instruments = names
                break
        else:
            raise ValueError(f"with several instruments ({', '.join(symbols)}) each column must "
                             "name its instrument: label the columns (or a level of them) with "
                             "the symbols, or pass instruments=[...] one per column")
    names = [str(instruments)] * len(columns) if isinstance(instruments, str) else \
        [str(name) for name in instruments]
    if len(names) != len(columns):
        raise ValueError(f"instruments has {len(names)} entries for {len(columns)} columns")
    unknown = [name for name in names if name not in symbols]
    if unknown:
        raise ValueError(f"instrument {unknown[0]!r} is not in the markets ({', '.join(symbols)})")
    return np.asarray([symbols.index(name) for name in names], dtype=np.int64)


def _groups(group_by, n_cols, columns):
    """(col_order, group_start, group_len, group labels): ``group_by`` is None/False (each
    column its own account), True (one account), one label per column, or level name(s) of
    MultiIndex columns (columns sharing those levels' values share an account)."""
    if group_by is None or group_by is False:
        order = np.arange(n_cols)
        return order, order.copy(), np.ones(n_cols, dtype=np.int64), columns
    if group_by is True:
        labels, names = np.zeros(n_cols, dtype=np.int64), pd.Index(["account"])
    else:
        levels = [group_by] if isinstance(group_by, str | int) and not isinstance(group_by, bool) else None
        if isinstance(group_by, list | tuple) and all(isinstance(v, str) for v in group_by) \
                and isinstance(columns, pd.MultiIndex) and set(group_by) <= set(columns.names):
            levels = list(group_by)
        if levels is not None and isinstance(columns, pd.MultiIndex) and set(levels) <= set(columns.names):
            keys = columns.droplevel([n for n in columns.names if n not in levels])
            labels, names = pd.factorize(keys)
            names = keys[np.unique(labels, return_index=True)[1]]
        elif levels is not None and isinstance(group_by, str) and columns.name == group_by:
            labels, names = pd.factorize(columns)
            names = pd.Index(names, name=group_by)
        else:
            values = np.asarray(group_by)
            if values.shape != (n_cols,):
                raise ValueError(f"group_by must be True, one label per column ({n_cols}) or level "
                                 f"name(s) of the columns, got {group_by!r}")
            labels, names = pd.factorize(values)
            names = pd.Index(names, name="account")
    order = np.argsort(labels, kind="stable")
    counts = np.bincount(labels, minlength=len(names))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    return order, starts, counts, names


@dataclass(frozen=True)
class _Call:
    """Validated enum arguments of one simulate call."""

    size_type: int
    margin_mode: int
    timing: int
    intrabar: int
    liquidation_fee: float


class StopWarning(UserWarning):
    """A stop that cannot fire: the position is liquidated before the price reaches it."""


def _row(array: np.ndarray, column: int) -> np.ndarray:
    """One column's bars of a flexible ``(columns, bars)`` array (length-1 axes broadcast)."""
    return array[min(column, array.shape[0] - 1)]


def _warn_stops_past_liquidation(flex, tables, col_instrument, markets) -> None:
    """Warn when an isolated position's stop-loss lies at or beyond its liquidation price (10x
    with a 15% stop: liquidated about 9.6% away, so the stop never fires and the loss is the
    whole margin plus the liquidation fee). The liquidation distance at entry is
    ``1 / leverage - mmr`` of the entry price (the first bracket's rate; fees ignored)."""
    sl_stop, sl_price = flex["sl_stop"], flex["sl_price"]
    if np.isnan(sl_stop).all() and np.isnan(sl_price).all():
        return
    closes = {k: markets[symbol].close.reindex(markets.index).to_numpy()
              for k, symbol in enumerate(markets.symbols)}
    leverage = flex["leverage"].max(axis=1)
    offending, first = 0, None
    for column, instrument in enumerate(col_instrument):
        bars = np.flatnonzero(_row(flex["entries"], column) | _row(flex["short_entries"], column))
        if not len(bars):
            continue
        levered = float(leverage[min(column, len(leverage) - 1)])
        distance = 1.0 / levered - float(tables[instrument]["mmr"].iloc[0])
        stop = _row(sl_stop, column)
        stop = np.broadcast_to(stop, (len(closes[instrument]),))[bars]
        close = closes[instrument][bars]
        level = np.broadcast_to(_row(sl_price, column), (len(closes[instrument]),))[bars]
        with np.errstate(invalid="ignore"):
            width = np.fmax(stop, np.abs(close - level) / close)
            beyond = width >= distance
        if beyond.any():
            offending += 1
            if first is None:
                first = (column, levered, float(width[beyond][0]), distance)
    if first is not None:
        column, levered, width, distance = first
        warnings.warn(f"a stop-loss lies beyond the liquidation price in {offending} column(s) "
                      f"(first: column {column}, a {width:.1%} stop at {levered:g}x isolated, "
                      f"liquidated about {distance:.1%} from the entry): the stop cannot fire "
                      "before liquidation; lower the leverage or tighten the stop",
                      StopWarning, stacklevel=4)


def _validate(size_type, margin_mode, timing, intrabar, liquidation_fee, tables, table_names,
              col_instrument, leverage, size, sl_stop, sl_price) -> _Call:
    call = _Call(_enum("size_type", size_type, SizeType), _enum("margin_mode", margin_mode, MarginMode),
                 _enum("timing", timing, Timing), _enum("intrabar", intrabar, Intrabar),
                 float(liquidation_fee))
    if not np.all(np.isfinite(leverage)) or np.any(leverage <= 0):
        raise ValueError(f"leverage must be positive and finite, got {np.unique(leverage)[:5]}")
    per_column = np.broadcast_to(leverage.max(axis=1), col_instrument.shape)
    for k, (table, name) in enumerate(zip(tables, table_names, strict=True)):
        used = per_column[col_instrument == k]
        if not len(used):
            continue
        highest = float(used.max())
        top = float(table["max_leverage"].max())
        if highest > top:
            raise ValueError(f"leverage {highest} is above the maximum {top:g} the tier table in "
                             f"force ({name}) allows")
        entry_mmr = float(table["mmr"].iloc[0])
        if entry_mmr >= 1.0 / highest:
            raise ValueError(f"leverage {highest} is too high for the tiers ({name}): mmr "
                             f"{entry_mmr:g} must be below 1 / leverage ({1.0 / highest:.4g}), or "
                             "the position would be liquidated on entry")
    if np.isnan(size).any():
        raise ValueError("size contains NaN; use 0 for no order")
    if np.any(size < 0):
        raise ValueError("size must be >= 0; express direction with entries / short_entries")
    if call.size_type == SizeType.risk and np.isnan(sl_stop).all() and np.isnan(sl_price).all():
        raise ValueError("size_type='risk' needs a stop: give sl_stop or sl_price")
    if not 0.0 <= call.liquidation_fee < 1.0:
        raise ValueError(f"liquidation_fee must be in [0, 1), got {liquidation_fee!r}")
    return call


def _adl_arrays(adl_price, adl_min_rank, markets) -> AdlArrays:
    """``simulate``'s ADL inputs as the kernel takes them: prices (instruments, bars), or a
    (instruments, 1) NaN placeholder when there is no ADL (one numba signature either way)."""
    if isinstance(adl_min_rank, bool) or not isinstance(adl_min_rank, numbers.Real) \
            or not np.isfinite(adl_min_rank) or adl_min_rank < 0:
        raise ValueError(f"adl_min_rank must be a finite number >= 0, got {adl_min_rank!r}")
    k = len(markets.symbols)
    if adl_price is None:
        return _frozen(AdlArrays(np.full((k, 1), np.nan), np.zeros(k, dtype=np.bool_),
                                 float(adl_min_rank)))
    index, symbols = markets.index, markets.symbols
    n_bars = len(index)
    value = by_index(adl_price, index, "adl_price")
    if isinstance(value, pd.DataFrame):
        names = [str(c) for c in value.columns]
        unknown = [name for name in names if name not in symbols]
        if unknown or len(set(names)) != len(names):
            raise ValueError(f"adl_price has column {(unknown or names)[0]!r}: its columns must be "
                             f"distinct symbols of the markets ({', '.join(symbols)})")
        value = value.set_axis(names, axis=1).reindex(columns=symbols)
    if isinstance(value, pd.Series | pd.DataFrame):
        value = value.to_numpy()
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError("adl_price must be numeric (NaN for no ADL)") from exc
    if array.ndim == 0:
        array = array.reshape(1, 1)
    elif array.ndim == 1:
        array = array.reshape(-1, 1)
    if array.ndim != 2 or array.shape[0] not in (1, n_bars) or array.shape[1] not in (1, k):
        raise ValueError(f"adl_price has shape {array.shape}, which does not broadcast against "
                         f"{n_bars} bars × {k} instruments")
    finite = array[~np.isnan(array)]
    if np.any(~np.isfinite(finite)) or np.any(finite <= 0):
        bad = finite[~np.isfinite(finite) | (finite <= 0)][0]
        raise ValueError(f"adl_price must be a positive price or NaN (no ADL), got {bad}")
    price = np.ascontiguousarray(np.broadcast_to(array, (n_bars, k)).T)
    has = ~np.isnan(price).all(axis=1)
    if not has.any():
        price = np.full((k, 1), np.nan)
    return _frozen(AdlArrays(price, has, float(adl_min_rank)))


def _market_arrays(owner, markets, funding, depth_impact, vol_window, need_vol) -> MarketArrays:
    """The instruments' series as (instruments, bars) arrays, cached on ``owner`` (the Market
    or Markets passed to simulate; their data never changes) so repeated calls do not rebuild
    them: fresh memory is slow to touch. A series no instrument has is a (K, 1) NaN placeholder."""
    key = (funding if not isinstance(funding, bool) else bool(funding), bool(depth_impact),
           vol_window if need_vol else None, need_vol)
    cache = owner.__dict__.setdefault("_kernel_arrays", {})
    if key not in cache:
        cache.clear()  # one configuration at a time: the usual case, and bounded memory
        cache[key] = _build_market_arrays(markets, funding, depth_impact, vol_window, need_vol)
    return cache[key]


def _build_market_arrays(markets, funding, depth_impact, vol_window, need_vol) -> MarketArrays:
    index, freq = markets.index, markets.freq
    n_inst = len(markets.symbols)
    placeholder = np.full((n_inst, 1), np.nan)
    rows: dict[str, list] = {name: [] for name in MarketArrays._fields[:-3]}
    nan_bars = np.full(len(index), np.nan)
    has_mark = np.asarray([markets[s].mark is not None for s in markets.symbols], dtype=np.bool_)
    has_depth = depth_impact and any(markets[s].depth is not None for s in markets.symbols)
    for symbol in markets.symbols:
        market = markets[symbol]
        aligned = markets.aligned(symbol)
        for column in ("open", "high", "low", "close"):
            rows[column].append(aligned[column].to_numpy(dtype=float))
        if has_mark.any():
            mark = markets.series(symbol, "mark")
            for column in ("open", "high", "low", "close"):
                rows[f"mark_{column}"].append(nan_bars if mark is None else mark[column].to_numpy(dtype=float))
        rows["funding"].append(_funding_rates(market, index, freq, funding))
        if has_depth:
            depth = markets.series(symbol, "depth")
            rows["depth"].append(nan_bars if depth is None else depth.to_numpy(dtype=float))
        if need_vol:
            rows["vol"].append(_realized_vol(aligned["close"], freq, vol_window))
    arrays = {name: _rows(values) if values else placeholder for name, values in rows.items()}
    if np.isnan(arrays["funding"]).all():
        arrays["funding"] = placeholder
    return _frozen(MarketArrays(**arrays, first_bar=markets.first_bar.copy(),
                                last_bar=markets.last_bar.copy(), has_mark=has_mark))


def _tier_arrays(tables) -> TierArrays:
    counts = np.asarray([len(table) for table in tables], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    stacked = pd.concat(tables, ignore_index=True)
    return TierArrays(starts, counts, *(np.ascontiguousarray(stacked[c].to_numpy(float)) for c in
                                         ("max_notional", "mmr", "maintenance_amount", "max_leverage")))


def _frozen(group):
    """A named tuple of read-only arrays (one numba signature)."""
    return type(group)(*(_readonly(a) if isinstance(a, np.ndarray) else a for a in group))


class KernelRun:
    """What the kernel produced for every account: statistics always; records and per-bar
    series when kept (``None`` otherwise).

    The threads' record parts are joined on first use of ``records``: a sweep that reads only
    its statistics never copies its millions of funding records.
    """

    def __init__(self, account_stats: np.ndarray, column_stats: np.ndarray,
                 record_parts: list | None, per_bar: dict | None) -> None:
        self.account_stats = account_stats  # (G, N_ACCOUNT_STATS)
        self.column_stats = column_stats  # (C, N_COLUMN_STATS), indexed by column
        self._parts = record_parts  # per chunk: (orders, trades, liquidations, funding)
        self._records: tuple | None = None
        # equity, wallet, leverage, ratio (G, n); position, margin (C, n) by column
        self.per_bar = per_bar

    @property
    def records(self) -> tuple | None:
        """(orders, trades, liquidations, funding), or None when not kept."""
        if self._records is None and self._parts is not None:
            parts, self._parts = self._parts, None
            # a copy even of one part: the kernel's buffers have room to spare
            self._records = tuple(np.concatenate([part[k] for part in parts]) for k in range(4))
        return self._records

    @records.setter
    def records(self, value: tuple | None) -> None:
        self._records, self._parts = value, None


@dataclass
class KernelCall:
    """Everything a kernel run needs, ready to run again (the Result replays it on demand)."""

    mk: MarketArrays
    tiers: TierArrays
    sg: SignalArrays
    od: OrderArrays
    lay: Layout
    call: _Call
    adl: AdlArrays  # a (instruments, 1) NaN placeholder without auto-deleveraging
    n_jobs: int | None = None
    chunk_size: int | None = None

    def run(self, *, keep_records: bool, per_bar: int) -> KernelRun:
        """Run every account, in chunks on threads when there are many (each account on its
        own, so the result is the same whatever the chunking). ``per_bar``: PER_BAR_NONE,
        PER_BAR_EQUITY or PER_BAR_ALL."""
        n_bars = self.mk.open.shape[1]
        n_accounts, n_cols = len(self.lay.group_start), len(self.lay.col_order)
        equity_bars = n_bars if per_bar >= PER_BAR_EQUITY else 0
        all_bars = n_bars if per_bar >= PER_BAR_ALL else 0
        acc = np.zeros((n_accounts, N_ACCOUNT_STATS))
        colacc = np.zeros((n_cols, N_COLUMN_STATS))
        # in the kernel's order: equity, wallet (accounts), position, margin (columns),
        # effective leverage, margin ratio (accounts); np.empty: the kernel writes every value
        outputs = [np.empty((n_accounts, equity_bars)), np.empty((n_accounts, all_bars)),
                   np.empty((n_cols, all_bars)), np.empty((n_cols, all_bars)),
                   np.empty((n_accounts, all_bars)), np.empty((n_accounts, all_bars))]
        bounds = chunk_bounds(self.lay.group_len, n_bars, self.chunk_size, self.n_jobs)
        c = self.call

        def one(chunk):
            return simulate_accounts_nb(
                self.mk, self.tiers, self.sg, self.od, self.lay, self.adl, c.size_type, c.margin_mode,
                c.timing, c.intrabar, c.liquidation_fee, chunk[0], chunk[1], keep_records,
                per_bar, acc, colacc, *outputs)

        workers = self.n_jobs or os.cpu_count() or 1
        if len(bounds) == 1 or workers == 1:
            parts = [one(chunk) for chunk in bounds]
        else:
            with ThreadPoolExecutor(max_workers=min(workers, len(bounds))) as pool:
                parts = list(pool.map(one, bounds))
        per_bar_out = None
        if per_bar >= PER_BAR_EQUITY:
            per_bar_out = {"equity": outputs[0]}
        if per_bar >= PER_BAR_ALL:
            _, wallet, position, margin, leverage, ratio = outputs
            in_order = np.array_equal(self.lay.col_order, np.arange(n_cols))
            by_column = np.empty(n_cols, dtype=np.int64)
            by_column[self.lay.col_order] = np.arange(n_cols)
            per_bar_out.update({
                "wallet": wallet, "effective_leverage": leverage, "margin_ratio": ratio,
                "position": position if in_order else position[by_column],
                "margin": margin if in_order else margin[by_column]})
        return KernelRun(acc, colacc, parts if keep_records else None, per_bar_out)


def chunk_bounds(group_len, n_bars, chunk_size=None, n_jobs=None) -> list[tuple[int, int]]:
    """Account ranges for the threads: about ``CHUNK_COLUMN_BARS`` column-bars each, at least
    four chunks per worker when there is enough work; one chunk for small runs."""
    n_accounts = len(group_len)
    if chunk_size is None:
        work = int(np.sum(group_len)) * n_bars
        workers = n_jobs or os.cpu_count() or 1
        if work <= CHUNK_COLUMN_BARS or workers == 1:
            return [(0, n_accounts)]
        chunk_size = max(1, min(-(-n_accounts // (4 * workers)),
                                CHUNK_COLUMN_BARS // max(n_bars, 1)))
    return [(start, min(start + chunk_size, n_accounts)) for start in range(0, n_accounts, chunk_size)]


_compile_notice_given = False


def engine_is_compiled() -> bool:
    """Whether numba's on-disk cache holds the engine for this source (else the first call
    compiles it: about a minute, once per install)."""
    try:
        return bool(simulate_accounts_nb._cache._cache_file._load_index())
    except (AttributeError, OSError, ValueError):  # numba internals moved: assume compiled
        return True


def _notice_first_compile() -> None:
    """Say so, once per process, before a cold start's minute of compiling: not silence."""
    global _compile_notice_given
    if not _compile_notice_given and not engine_is_compiled():
        print("perp-backtest: compiling the engine, once (about a minute); later runs reuse "
              "numba's cache and start in seconds", file=sys.stderr, flush=True)
    _compile_notice_given = True


def simulate(market, *, entries=None, exits=None, short_entries=None, short_exits=None, size=1.0,
             size_type="equity", leverage=1.0, margin_mode="isolated", sl_stop=None, tp_stop=None,
             trail_stop=None, sl_price=None, tp_price=None, fees=0.0, slippage=0.0,
             timing="next_open", init_cash=10_000.0, mmr=None, tiers=None,
             liquidation_fee=DEFAULT_LIQUIDATION_FEE, funding=True, intrabar="auto", group_by=None,
             depth_impact=True, columns=None, instruments=None, per_bar=None, vol_window=None,
             n_jobs=None, chunk_size=None, adl_price=None, adl_min_rank=0.0):
    """Simulate leveraged perpetual-futures accounts; returns a :class:`Result`.

    ``market`` is a :class:`Market` or :class:`Markets` (several instruments on one clock). Array
    arguments broadcast against (bars × columns) like vectorbt: a scalar, one value per bar
    (1-D or Series), or a (bars × columns) array/DataFrame; ``leverage`` and ``init_cash`` take
    one value per column (per account for ``init_cash``) as 1-D. With several instruments each
    column names its instrument — by its label, a level of MultiIndex columns, or
    ``instruments=[...]`` — and ``group_by`` puts columns in one account (``True``, one label per
    column, or the names of column levels such as the parameters of a grid). ``tiers`` may be a
    dict by symbol.

    ``adl_price`` injects auto-deleveraging (the exchange closing profitable positions when a
    liquidation cascade has emptied its insurance fund): the ADL price per bar (NaN: none) of
    each instrument — a DataFrame with one column per symbol (symbols left out: none), a
    (bars × instruments) array, or one series for all instruments (1-D, a Series). At a bar
    where it is finite, at the close (after the bar's stops and liquidations, before orders at
    the close), every position on that instrument in profit at that price whose rank
    ``upnl / margin × notional / equity`` (all at the ADL price; margin: the position's;
    equity: the isolated position's margin balance, the cross account's equity) is at least
    ``adl_min_rank`` is closed at exactly the ADL price, with no fee or slippage (exit reason
    ``"adl"``); see ``backtest.engine.nb._auto_deleverage``. The strategy may re-enter on a
    later signal.

    ``per_bar``: ``None`` (default) keeps the statistics (O(accounts) memory) and computes the
    records and per-bar series (equity, positions...) when first asked for, by running the
    accounts again (the kernel is deterministic: the same numbers); ``True`` keeps them all now;
    ``"equity"`` keeps the per-bar equity now; ``False`` is the default's statistics, said
    explicitly (sweeps). Accounts
    run in chunks on ``n_jobs`` threads (default: every core); the result does not depend on
    the chunking.

    >>> import backtest, numpy as np
    >>> market = backtest.load(backtest.sample_path("BTCUSDT"))[:2000]      # doctest: +SKIP
    >>> entries = np.zeros(len(market), bool); entries[100] = True          # doctest: +SKIP
    >>> result = backtest.simulate(market, entries=entries, leverage=10)    # doctest: +SKIP
    >>> result.liquidations                                                  # doctest: +SKIP
    """
    from backtest.markets import as_markets
    from backtest.result import Result

    single = market if isinstance(market, Market) else None
    markets = as_markets(market)
    index = markets.index
    n_bars = len(index)
    if n_bars < 2:
        raise ValueError(f"market has {n_bars} bar(s): a simulation needs at least 2 (one bar has "
                         "no timeframe to annualize on)")
    if entries is None and short_entries is None:
        raise ValueError("give entries or short_entries (boolean signals)")
    args = {"entries": entries, "exits": exits, "short_entries": short_entries,
            "short_exits": short_exits, "size": size, "sl_stop": sl_stop, "tp_stop": tp_stop,
            "trail_stop": trail_stop, "sl_price": sl_price, "tp_price": tp_price, "fees": fees,
            "slippage": slippage, "leverage": leverage}
    column_index = _column_index(args, columns, n_bars)
    n_cols = len(column_index)
    col_instrument = _column_instruments(markets, column_index, instruments)
    flex = {name: _flex(name, args[name], index, n_cols, bool, False) for name in SIGNAL_ARGS}
    for name in FLOAT_ARGS:
        flex[name] = _flex(name, args[name], index, n_cols, float,
                           0.0 if name in COST_ARGS else np.nan)
    flex["leverage"] = _flex("leverage", leverage, index, n_cols, float, 1.0, per_column=True)
    _check_fractions(flex)

    tables, table_names = _tier_tables(markets, tiers, mmr)
    call = _validate(size_type, margin_mode, timing, intrabar, liquidation_fee, tables,
                     table_names, col_instrument, flex["leverage"], flex["size"], flex["sl_stop"],
                     flex["sl_price"])
    if call.margin_mode == MarginMode.isolated:
        _warn_stops_past_liquidation(flex, tables, col_instrument, markets)
    col_order, group_start, group_len, group_index = _groups(group_by, n_cols, column_index)
    n_accounts = len(group_start)
    cash = np.broadcast_to(np.asarray(init_cash, dtype=float), (n_accounts,)) \
        if np.ndim(init_cash) == 0 or len(np.atleast_1d(init_cash)) == n_accounts else None
    if cash is None or not np.all(np.isfinite(cash)) or np.any(cash <= 0):
        raise ValueError(f"init_cash must be positive, one value or one per account ({n_accounts})")

    adl = _adl_arrays(adl_price, adl_min_rank, markets)
    _notice_first_compile()
    kernel = KernelCall(
        mk=_market_arrays(single if single is not None else markets, markets, funding,
                          depth_impact, vol_window, call.size_type == SizeType.target_vol),
        tiers=_frozen(_tier_arrays(tables)),
        sg=_frozen(SignalArrays(*(flex[name] for name in SIGNAL_ARGS))),
        od=_frozen(OrderArrays(*(flex[name] for name in OrderArrays._fields))),
        lay=_frozen(Layout(col_instrument, col_order.astype(np.int64),
                           np.asarray(group_start, np.int64), np.asarray(group_len, np.int64),
                           np.ascontiguousarray(cash, dtype=float))),
        call=call, n_jobs=n_jobs, chunk_size=chunk_size, adl=adl)
    if per_bar not in (None, True, False, "equity"):
        raise ValueError(f"per_bar must be None, True, False or 'equity', got {per_bar!r}")
    level = {True: PER_BAR_ALL, "equity": PER_BAR_EQUITY}.get(per_bar, PER_BAR_NONE)
    run = kernel.run(keep_records=per_bar is True, per_bar=level)

    settings = {
        "leverage": leverage if np.isscalar(leverage) else list(np.ravel(flex["leverage"])),
        "margin_mode": margin_mode, "fees": fees if np.isscalar(fees) else "varies",
        "slippage": slippage if np.isscalar(slippage) else "varies", "funding": funding,
        "timing": timing, "intrabar": intrabar, "size": size if np.isscalar(size) else "varies",
        "size_type": size_type, "init_cash": init_cash,
        "tiers": table_names[0] if len(set(table_names)) == 1 else dict(zip(markets.symbols, table_names, strict=True)),
        "liquidation_fee": call.liquidation_fee,
        "depth_impact": bool(depth_impact and any(markets[s].depth is not None for s in markets)),
    }
    grouped = group_by is not None and group_by is not False
    return Result(markets, single, column_index, group_index, col_instrument, col_order,
                  group_start, group_len, cash, run, kernel, settings, grouped=grouped)
