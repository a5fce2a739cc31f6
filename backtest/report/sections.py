"""The report's tables beyond ``stats()``, from the result's equity, records and market data.

Conventions (stated in the report too): a year is 365 days and per-bar returns are annualized
with ``bars_per_year = 365 days / bar frequency``; returns compound; equity is after fees and
funding. *Buy-and-hold* is the account's initial cash put into the (first) instrument at the
first bar's open, unlevered, without fees or funding, valued at each close — so its first
per-bar return is ``close₀ / open₀ − 1``, as the strategy's first is against its initial cash.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from backtest.report.analysis import alpha_beta, drawdown_periods, excursions

WINDOW_BARS = 24 * 10  # bars in the price-and-levels window (ten days of hourly bars)
SIDES = ("long", "short")


def bars_per_year(freq: pd.Timedelta) -> float:
    """Bars in a 365-day year (NaN for an unknown frequency).

    >>> bars_per_year(pd.Timedelta("1h"))
    8760.0
    """
    return pd.Timedelta(days=365) / freq if freq > pd.Timedelta(0) else float("nan")


def buy_and_hold(open_: pd.Series, close: pd.Series, init_cash: float) -> pd.Series:
    """Value at each close of ``init_cash`` bought at the first open (see the module docstring)."""
    return close * (init_cash / float(open_.iloc[0]))


def _returns(values: pd.Series, start_value: float) -> np.ndarray:
    array = values.to_numpy(dtype=float)
    previous = np.concatenate([[start_value], array[:-1]])
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(previous > 0, array / previous - 1.0, 0.0)


def period_returns(values: pd.Series, start_value: float, rule: str) -> pd.Series:
    """Compounded return of each calendar period (``rule``: "YE", "ME"): the value at the
    period's last bar over the value at the previous period's last bar (the first period:
    over ``start_value``), minus 1."""
    ends = values.resample(rule).last().dropna()
    previous = ends.shift(1)
    previous.iloc[0] = start_value
    return ends / previous - 1.0


def yearly_returns(equity: pd.Series, init_cash: float, hold: pd.Series | None) -> pd.DataFrame:
    """Per calendar year: the strategy's return and buy-and-hold's over the same year."""
    strategy = period_returns(equity, init_cash, "YE")
    table = pd.DataFrame({"strategy": strategy.to_numpy()}, index=strategy.index.year)
    table["buy_and_hold"] = (period_returns(hold, init_cash, "YE").to_numpy()
                             if hold is not None else np.nan)
    table["difference"] = table["strategy"] - table["buy_and_hold"]
    table.index.name = "year"
    return table


def monthly_returns(equity: pd.Series, init_cash: float) -> pd.DataFrame:
    """Month-by-year table of returns (fractions), from month-end equity."""
    returns = period_returns(equity, init_cash, "ME")
    index = returns.index
    table = pd.DataFrame({"year": index.year, "month": index.month, "return": returns.to_numpy()})
    return table.pivot(index="year", columns="month", values="return")


def symmetric_limit(values) -> float:
    """The colour limit L of a heatmap centred on 0 (scale from −L to +L): the largest absolute
    finite value, 1 when there is none."""
    values = np.asarray(values, dtype=float)
    finite = np.abs(values[np.isfinite(values)])
    return float(finite.max()) if finite.size and finite.max() > 0 else 1.0


def benchmark(returns: pd.Series, hold: pd.Series, init_cash: float, freq) -> dict:
    """The strategy's per-bar returns regressed on buy-and-hold's (alpha annualized, beta,
    correlation), and buy-and-hold's total return and max drawdown (positive, of the peak)."""
    hold_returns = _returns(hold, init_cash)
    fit = alpha_beta(returns.to_numpy(dtype=float), hold_returns, bars_per_year(freq))
    depth = drawdown_periods(hold.to_numpy(dtype=float))["depth"]
    return {**fit, "total_return": float(hold.iloc[-1]) / init_cash - 1.0,
            "max_drawdown": float(depth.max()) if depth.size else 0.0,
            "bar_returns": hold_returns}


def drawdown_table(equity: pd.Series, top: int) -> pd.DataFrame:
    """The ``top`` deepest drawdowns, as ``Result.drawdowns`` gives them (same columns and
    values) without importing vectorbt: peak, valley, recovery (NaT if not yet), depth,
    duration (to the recovery, else to the last bar)."""
    periods = drawdown_periods(equity.to_numpy(dtype=float))
    order = np.argsort(-periods["depth"], kind="stable")[:top]
    index = equity.index
    recovery = pd.Series(index[periods["end"][order]]).where(periods["recovered"][order])
    table = pd.DataFrame({"peak": index[periods["peak"][order]],
                          "valley": index[periods["valley"][order]],
                          "recovery": recovery, "depth": periods["depth"][order]})
    table["duration"] = table["recovery"].fillna(index[-1]) - table["peak"]
    return table


def trade_excursions(trades: pd.DataFrame, index: pd.DatetimeIndex, prices_of) -> pd.DataFrame:
    """``trades`` with ``mae`` and ``mfe`` (see :func:`analysis.excursions`) and the holding time;
    ``prices_of(symbol)`` gives the instrument's high/low frame on ``index``."""
    out = trades.copy()
    out["mae"], out["mfe"] = np.nan, np.nan
    groups = out.groupby("symbol").groups if "symbol" in out else {None: out.index}
    for symbol, rows in groups.items():
        part = out.loc[rows]
        prices = prices_of(symbol)
        mae, mfe = excursions(prices["high"].to_numpy(), prices["low"].to_numpy(),
                              index.get_indexer(part["entry_time"]),
                              index.get_indexer(part["exit_time"]), part["entry_price"].to_numpy(),
                              np.where(part["side"].to_numpy() == "long", 1, -1))
        out.loc[rows, "mae"], out.loc[rows, "mfe"] = mae, mfe
    out["duration"] = out["exit_time"] - out["entry_time"]
    return out


def _breakdown(trades: pd.DataFrame, key: str) -> pd.DataFrame:
    grouped = trades.groupby(key, sort=True)["pnl"]
    table = pd.DataFrame({"trades": grouped.size(), "pnl": grouped.sum(),
                          "win_rate": grouped.apply(lambda pnl: float((pnl > 0).mean()))})
    table["avg_pnl"] = table["pnl"] / table["trades"]
    return table


def trade_analysis(trades: pd.DataFrame) -> dict:
    """Holding times, MAE/MFE summaries and PnL by exit reason and by side, over closed trades
    (those still open at the end, exit reason "end", are counted apart, as ``stats()`` does)."""
    closed = trades[trades["exit_reason"] != "end"]
    durations = closed["duration"]
    summary = {
        "closed": len(closed), "open_at_end": len(trades) - len(closed),
        "duration": {"mean": durations.mean(), "median": durations.median(),
                     "max": durations.max(), "min": durations.min()} if len(closed) else None,
        "mae": {"mean": closed["mae"].mean(), "median": closed["mae"].median(),
                "worst": closed["mae"].min()} if len(closed) else None,
        "mfe": {"mean": closed["mfe"].mean(), "median": closed["mfe"].median(),
                "best": closed["mfe"].max()} if len(closed) else None,
        "by_reason": _breakdown(closed, "exit_reason"),
        "by_side": _breakdown(closed, "side"),
    }
    return summary


def price_window(index: pd.DatetimeIndex, liquidation_times, equity: pd.Series,
                 bars: int = WINDOW_BARS) -> tuple[slice, str]:
    """The bars of ``index`` (the shown instrument's) to show in the price window, and why:
    around the first liquidation, else around the deepest drawdown's valley of ``equity`` (the
    start, when the equity never fell)."""
    if len(liquidation_times):
        at = pd.Timestamp(liquidation_times[0])
        reason = f"around the first liquidation at {at:%Y-%m-%d %H:%M} UTC"
    else:
        values = equity.to_numpy(dtype=float)
        drawdown = values / np.maximum.accumulate(values)
        at = equity.index[int(np.argmin(drawdown))]
        reason = (f"around the deepest drawdown valley at {at:%Y-%m-%d %H:%M} UTC"
                  if drawdown.min() < 1.0 else "at the start (the equity never fell)")
    n = len(index)
    center = int(index.searchsorted(at))
    start = max(0, min(center - bars // 2, n - bars))
    return slice(start, min(n, start + bars)), reason


def levels_until(market, stop: int):
    """``support_resistance(market)`` for the bars before ``stop`` only: each row uses data up
    to its own close (see :mod:`backtest.levels`), so the prefix gives the same values there
    and the bars after a shown window are never processed. None for fewer than 50 bars."""
    from backtest import levels

    if len(market) <= 50:
        return None
    return levels.support_resistance(market[:stop] if stop < len(market) else market)
