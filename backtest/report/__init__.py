"""Self-contained HTML reports: one file, no network, figures embedded, markup escaped.

``write_report(result, path)`` writes the report of one account; for a parameter grid (many
columns) it writes a comparison page — a sortable table of every column's metrics and a heatmap
of one metric over two parameters — followed by the full report of the best column. The numbers
shown are ``result.stats()``; every metric cell carries ``data-metric`` and its raw
``data-value`` so tools (and tests) can read them back.

>>> result.report("reports/trend.html")          # doctest: +SKIP
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

PERCENT_KEYS = {"total_return", "cagr", "volatility", "max_drawdown", "win_rate", "exposure",
                "worst_margin_ratio"}
MONEY_KEYS = {"init_cash", "final_equity", "expectancy", "funding_paid", "fees_paid",
              "insurance_shortfall"}
METRIC_LABELS = {
    "total_return": "Total return", "cagr": "CAGR", "sharpe": "Sharpe", "sortino": "Sortino",
    "calmar": "Calmar", "volatility": "Volatility (ann.)", "max_drawdown": "Max drawdown",
    "max_drawdown_duration": "Max drawdown duration", "win_rate": "Win rate",
    "profit_factor": "Profit factor", "expectancy": "Expectancy (USDT/trade)", "trades": "Trades",
    "exposure": "Exposure", "liquidations": "Liquidations", "funding_paid": "Funding paid",
    "fees_paid": "Fees paid", "max_effective_leverage": "Max effective leverage",
    "insurance_shortfall": "Insurance-fund shortfall", "worst_margin_ratio": "Worst margin ratio",
    "rejected_orders": "Rejected orders", "init_cash": "Initial cash", "final_equity": "Final equity",
}
GRID_METRICS = ["total_return", "cagr", "sharpe", "max_drawdown", "trades", "liquidations",
                "funding_paid", "max_effective_leverage"]
TRADE_ROWS = 200
TOP_DRAWDOWNS = 5


def format_metric(key: str, value) -> str:
    """Human formatting of one stats() value (fractions as percentages)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, pd.Timedelta):
        return str(value.floor("h"))
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, float) and math.isinf(value):
        return "∞" if value > 0 else "−∞"
    if key in PERCENT_KEYS:
        return f"{value * 100:.2f}%"
    if key in MONEY_KEYS:
        return f"{value:,.2f}"
    if isinstance(value, int | np.integer):
        return f"{int(value)}"
    return f"{value:.3f}"


def _raw(value) -> str:
    if isinstance(value, pd.Timedelta):
        return str(value.total_seconds())
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    return repr(float(value)) if isinstance(value, float | np.floating) else str(value)


def _environment():
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("backtest.report", "templates"),
                      autoescape=select_autoescape(["html"]))
    env.filters["metric"] = format_metric
    env.filters["raw"] = _raw
    return env


def _window(result, market, liqs, equity) -> slice:
    """Bars to show in the price window: around the first liquidation, else the worst drawdown."""
    from backtest.report.figures import WINDOW_BARS

    n = len(market)
    if len(liqs):
        center = int(market.index.searchsorted(liqs["time"].iloc[0]))
    else:
        worst = (equity / equity.cummax()).idxmin()
        center = int(market.index.searchsorted(worst))
    start = max(0, min(center - WINDOW_BARS // 2, n - WINDOW_BARS))
    return slice(start, min(n, start + WINDOW_BARS))


def _series(frame, result, column):
    if isinstance(frame, pd.Series):
        return frame
    return frame[column]


def _single_context(result, column) -> dict:
    """The report of one account (``column`` is its label; None when there is one)."""
    from backtest import levels as sr
    from backtest.report import figures

    stats = result.stats() if column is None else result.stats(column)
    account = column if column is not None else result.accounts[0]
    legs = result.columns_of(account)
    equity = _series(result.equity, result, column)
    trades = result.trades[result.trades["col"].isin(legs)]
    liqs = result.liquidations[result.liquidations["col"].isin(legs)]
    triggers = result.liquidation_triggers(account)
    returns = _series(result.returns, result, column)
    # the instrument shown in the price window: the one that triggered the first liquidation
    symbol = triggers["symbol"].iloc[0] if len(triggers) else result.symbols[int(result.col_instrument[
        list(result.columns).index(legs[0])])]
    market = result.market if result.market is not None else result.markets[symbol]
    symbol_trades = trades if "symbol" not in trades else trades[trades["symbol"] == symbol]
    stop_reasons = ("stop_loss", "trailing_stop", "take_profit")
    level_table = sr.support_resistance(market) if len(market) > 50 else None
    drawdowns = result.drawdowns(top=TOP_DRAWDOWNS, column=None if isinstance(result.equity, pd.Series) else column)
    shown = trades.tail(TRADE_ROWS)
    init_cash = float(stats["init_cash"])
    instruments = result.instruments().xs(account, level="account") if len(result.symbols) > 1 else None
    benchmark = result.market.close if result.market is not None else None
    return {
        "stats": stats,
        "metric_keys": [k for k in METRIC_LABELS if k in stats.index],
        "labels": METRIC_LABELS,
        "figures": {
            "equity": figures.equity_figure(equity, benchmark, triggers,
                                            trades[trades["exit_reason"].isin(stop_reasons)],
                                            label_legs=len(result.symbols) > 1),
            "underwater": figures.underwater_figure(equity),
            "monthly": figures.monthly_heatmap(figures.monthly_returns(equity, init_cash)),
            "rolling": figures.rolling_figure(returns, result.freq),
            "leverage": figures.leverage_figure(_series(result.effective_leverage, result, column),
                                                _series(result.margin_ratio, result, column)),
            "window": figures.price_window_figure(
                market, _window(result, market, liqs, equity), level_table, symbol_trades),
        },
        "window_symbol": symbol,
        "drawdowns": drawdowns,
        "trades": shown,
        "trades_total": len(trades),
        "trade_totals": {"pnl": trades["pnl"].sum(), "fees": trades["fees"].sum(),
                         "funding": trades["funding"].sum()},
        "liquidations": liqs,
        "triggers": triggers,
        "instruments": instruments,
        "column": column,
    }


def _header(result) -> dict:
    markets = [result.markets[symbol] for symbol in result.symbols]
    sources = [m.source for m in markets if m.source]
    return {
        "strategy": result.strategy_name or "simulate()",
        "params": result.params or {},
        "symbol": ", ".join(m.symbol or "?" for m in markets) if len(markets) > 1 else (markets[0].symbol or "?"),
        "source": ", ".join(sources) if sources else "in-memory data",
        "start": result.index[0], "end": result.index[-1], "bars": len(result.index),
        "freq": result.freq, "settings": result.settings,
        "extras": [name for name in ("mark", "funding", "depth")
                   if any(getattr(m, name) is not None for m in markets)],
    }


def _grid_context(table: pd.DataFrame, metric: str) -> dict:
    from backtest.report import figures

    columns = [k for k in GRID_METRICS if k in table.columns]
    heatmap = None
    index = table.index
    if isinstance(index, pd.MultiIndex) and index.nlevels >= 2:
        values = table[metric].astype(float)
        pivot = values.groupby(level=[0, 1]).mean().unstack(level=1)
        heatmap = figures.grid_heatmap(pivot, metric)
    rows = [{"label": label if not isinstance(label, tuple) else ", ".join(map(str, label)),
             "values": table.loc[label, columns]} for label in table.index]
    names = [str(n) for n in (index.names if isinstance(index, pd.MultiIndex) else [index.name]) if n]
    return {"rows": rows, "columns": columns, "metric": metric, "heatmap": heatmap,
            "param_names": names}


def best_label(table: pd.DataFrame, metric: str):
    """The row of a stats table with the highest ``metric`` (the first row if it is undefined
    everywhere)."""
    ranking = table[metric].astype(float)  # undefined (NaN) columns are not ranked
    return ranking.idxmax() if ranking.notna().any() else ranking.index[0]


def render_report(result, *, column=None, metric: str = "sharpe", title: str | None = None,
                  grid_stats: pd.DataFrame | None = None) -> str:
    """The report's HTML text (see :func:`write_report`)."""
    result._full("all")  # the records and every per-bar series it reads, in one replay
    many = not isinstance(result.equity, pd.Series)
    grid, best = None, None
    if grid_stats is not None:  # a sweep's table, with ``result`` the full run of one combination
        grid, best = _grid_context(grid_stats, metric), best_label(grid_stats, metric)
    elif many and column is None:
        table = result.stats()
        grid = _grid_context(table, metric)
        column = best = best_label(table, metric)
    elif many:
        best = column
    context = {"header": _header(result), "grid": grid, "title": title,
               "single": _single_context(result, column if many else None),
               "best_label": best}
    return _environment().get_template("report.html").render(**context)


def write_report(result, path, *, column=None, metric: str = "sharpe", title: str | None = None,
                 grid_stats: pd.DataFrame | None = None) -> Path:
    """Write the self-contained HTML report of ``result`` to ``path`` (atomically: a temporary
    file renamed into place, so an interrupted write leaves no half-written report); returns
    the path. Missing parent folders are created. ``grid_stats`` (a sweep's ``stats()``) puts
    the comparison of every combination before the full report of ``result``, the best one."""
    from backtest.outputs import write_atomic

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, render_report(result, column=column, metric=metric, title=title,
                                            grid_stats=grid_stats))
