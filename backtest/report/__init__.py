"""Self-contained HTML reports: one file, no network, figures embedded, markup escaped.

``write_report(result, path)`` writes the report of one account; for a parameter grid (many
columns) it writes a comparison page — a sortable table of every column's metrics and a heatmap
of one metric over two parameters — followed by the full report of the best column. The numbers
shown are ``result.stats()`` and what the result's records and per-bar series give (see
:mod:`backtest.report.sections`); every metric cell carries ``data-metric`` and its raw
``data-value`` so tools (and tests) can read them back.

By default the charts are interactive (plotly.js, inlined once in the file: zoom, hover with
trade details, legend toggles; see :mod:`backtest.report.interactive`). ``interactive=False``
gives the static version — matplotlib PNGs, no JavaScript — for places that strip scripts.

>>> result.report("reports/trend.html")                       # doctest: +SKIP
>>> result.report("reports/trend.html", interactive=False)    # doctest: +SKIP
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from backtest.report import analysis, sections

PERCENT_KEYS = {"total_return", "cagr", "volatility", "max_drawdown", "win_rate", "exposure",
                "time_in_market", "worst_margin_ratio"}
COUNT_KEYS = {"trades", "liquidations", "rejected_orders"}
MONEY_KEYS = {"init_cash", "final_equity", "expectancy", "funding_paid", "fees_paid",
              "insurance_shortfall"}
METRIC_LABELS = {
    "total_return": "Total return", "cagr": "CAGR", "sharpe": "Sharpe", "sortino": "Sortino",
    "calmar": "Calmar", "volatility": "Volatility (ann.)", "max_drawdown": "Max drawdown",
    "max_drawdown_duration": "Max drawdown duration", "win_rate": "Win rate",
    "profit_factor": "Profit factor", "expectancy": "Expectancy (USDT/trade)", "trades": "Trades",
    "exposure": "Exposure",
    "time_in_market": "Time in market", "liquidations": "Liquidations", "funding_paid": "Funding paid",
    "fees_paid": "Fees paid", "max_effective_leverage": "Max effective leverage",
    "insurance_shortfall": "Insurance-fund shortfall", "worst_margin_ratio": "Worst margin ratio",
    "rejected_orders": "Rejected orders", "init_cash": "Initial cash", "final_equity": "Final equity",
}
GRID_METRICS = ["total_return", "cagr", "sharpe", "max_drawdown", "trades", "liquidations",
                "funding_paid", "max_effective_leverage"]
TRADE_ROWS = 200
TOP_DRAWDOWNS = 5
ROLLING_DAYS = 30
STOP_REASONS = ("stop_loss", "trailing_stop", "take_profit")


def duration_label(value: pd.Timedelta) -> str:
    """A duration as people read it: "550d 19h", "6h", "45m" (pandas prints
    "550 days 19:00:00").

    >>> duration_label(pd.Timedelta("550 days 19:00:00")), duration_label(pd.Timedelta("90min"))
    ('550d 19h', '1h 30m')
    """
    if value is pd.NaT or pd.isna(value):
        return "—"
    minutes = int(pd.Timedelta(value).total_seconds() // 60)
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m")) if n]
    return " ".join(parts[:2]) or "0m"


def format_metric(key: str, value) -> str:
    """Human formatting of one stats() value (fractions as percentages)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, pd.Timedelta):
        return duration_label(value)
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, float) and math.isinf(value):
        return "∞" if value > 0 else "−∞"
    if key in PERCENT_KEYS:
        return f"{value * 100:.2f}%"
    if key in MONEY_KEYS:
        return f"{value:,.2f}"
    if isinstance(value, int | np.integer) or key in COUNT_KEYS:  # counts stay whole in a float row
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
    env.filters["duration"] = duration_label
    env.filters["label"] = plain_value  # a grid column's label: "24, 144"
    return env


def _series(frame, column):
    return frame if isinstance(frame, pd.Series) else frame[column]


def _prices_of(result):
    """symbol → the instrument's OHLC on the result's clock (None: the only instrument)."""
    def prices(symbol):
        if result.market is not None and len(result.symbols) == 1:
            return result.market.ohlcv
        return result.markets.aligned(symbol if symbol is not None else result.symbols[0])
    return prices


def _hold(result, init_cash: float) -> pd.Series:
    """Buy-and-hold value of the first instrument on the result's clock (cash until its first
    bar, for a portfolio whose first instrument starts later)."""
    prices = _prices_of(result)(result.symbols[0])
    first = prices["open"].first_valid_index()
    hold = sections.buy_and_hold(prices["open"].loc[first:], prices["close"], init_cash)
    return hold.fillna(init_cash) if first != prices.index[0] else hold


def _rolling(returns: pd.Series, freq: pd.Timedelta):
    window = max(int(pd.Timedelta(days=ROLLING_DAYS) / freq), 2) if freq > pd.Timedelta(0) else 2
    per_year = sections.bars_per_year(freq)
    sharpe, volatility = analysis.rolling_metrics(returns.to_numpy(dtype=float), window, per_year)
    return pd.Series(sharpe, index=returns.index), pd.Series(volatility, index=returns.index)


def _figures(interactive: bool, data: dict) -> dict:
    """Every chart of one account: plotly dicts (interactive) or PNG data URIs (static)."""
    if interactive:
        from backtest.report import interactive as f

        equity = f.equity_figure(data["equity"], data["hold"], data["trades"], data["triggers"],
                                 label_legs=data["label_legs"])
        window = f.price_window_figure(data["bars"], data["levels"], data["symbol_trades"],
                                       data["window_liquidations"])
        mae = f.mae_figure(data["closed"])
    else:
        from backtest.report import figures as f

        stops = data["trades"][data["trades"]["exit_reason"].isin(STOP_REASONS)]
        equity = f.equity_figure(data["equity"], data["hold"], data["triggers"], stops,
                                 label_legs=data["label_legs"])
        window = f.price_window_figure(data["market"], data["window"], data["levels"],
                                       data["symbol_trades"])
        mae = f.mae_figure(data["closed"])
    return {
        "equity": equity,
        "underwater": f.underwater_figure(data["equity"]),
        "monthly": f.monthly_heatmap(data["monthly"]),
        "rolling": f.rolling_figure(*data["rolling"], ROLLING_DAYS),
        "leverage": f.leverage_figure(data["leverage"], data["margin_ratio"]),
        "window": window,
        "mae": mae,
    }


def _single_context(result, column, interactive: bool = True) -> dict:
    """The report of one account (``column`` is its label; None when there is one)."""
    stats = result.stats() if column is None else result.stats(column)
    account = column if column is not None else result.accounts[0]
    legs = result.columns_of(account)
    equity = _series(result.equity, column)
    trades = result.trades[result.trades["col"].isin(legs)]
    liqs = result.liquidations[result.liquidations["col"].isin(legs)]
    triggers = result.liquidation_triggers(account)
    returns = _series(result.returns, column)
    # the instrument shown in the price window: the one that triggered the first liquidation
    symbol = triggers["symbol"].iloc[0] if len(triggers) else result.symbols[int(result.col_instrument[
        list(result.columns).index(legs[0])])]
    market = result.market if result.market is not None else result.markets[symbol]
    symbol_trades = trades if "symbol" not in trades else trades[trades["symbol"] == symbol]
    init_cash = float(stats["init_cash"])
    hold = _hold(result, init_cash)
    window, window_reason = sections.price_window(market.index, liqs["time"].to_numpy(), equity)
    trades_x = sections.trade_excursions(trades, result.index, _prices_of(result))
    closed = trades_x[trades_x["exit_reason"] != "end"]
    instruments = result.instruments().xs(account, level="account") if len(result.symbols) > 1 else None
    data = {
        "equity": equity, "hold": hold, "trades": trades_x, "closed": closed,
        "triggers": triggers, "label_legs": len(result.symbols) > 1,
        "window_liquidations": liqs if "symbol" not in liqs else liqs[liqs["symbol"] == symbol],
        "market": market, "window": window, "bars": market.ohlcv.iloc[window],
        "levels": _window_levels(market, window), "symbol_trades": symbol_trades,
        "monthly": sections.monthly_returns(equity, init_cash),
        "rolling": _rolling(returns, result.freq),
        "leverage": _series(result.effective_leverage, column),
        "margin_ratio": _series(result.margin_ratio, column),
    }
    shown = trades_x.tail(TRADE_ROWS)
    return {
        "stats": stats,
        "metric_keys": [k for k in METRIC_LABELS if k in stats.index],
        "labels": METRIC_LABELS,
        "figures": _figures(interactive, data),
        "window_symbol": symbol,
        "window_reason": window_reason,
        "drawdowns": sections.drawdown_table(equity, TOP_DRAWDOWNS),
        "yearly": sections.yearly_returns(equity, init_cash, hold),
        "benchmark": sections.benchmark(returns, hold, init_cash, result.freq),
        "benchmark_symbol": result.symbols[0],
        "analysis": sections.trade_analysis(trades_x),
        "trades": shown,
        "trades_total": len(trades),
        "trade_totals": {"pnl": trades["pnl"].sum(), "fees": trades["fees"].sum(),
                         "funding": trades["funding"].sum()},
        "liquidations": liqs,
        "triggers": triggers,
        "instruments": instruments,
        "column": column,
        "conventions": {"bars_per_year": sections.bars_per_year(result.freq),
                        "freq": result.freq, "rolling_days": ROLLING_DAYS},
    }


def _window_levels(market, window: slice):
    """Support/resistance over the window's bars, computed on the bars up to its end only."""
    table = sections.levels_until(market, window.stop)
    return None if table is None else table.iloc[window]


SIZE_TYPE_WORDS = {"equity": "a share of equity committed as margin", "notional": "USDT of notional",
                   "exposure": "notional / equity", "risk": "equity lost at the stop",
                   "target_vol": "notional sized to a volatility target"}


def leverage_note(settings: dict, max_effective_leverage: float) -> str:
    """What "leverage" meant in a run, in a trader's words: the margin it sets, the size the
    strategy chose, and the effective leverage reached.

    >>> leverage_note({"leverage": 3.0, "margin_mode": "isolated", "size_type": "exposure"}, 1.72)
    'leverage 3x sets the margin (initial margin = notional / 3, isolated) and caps the position; the size comes from the strategy (size_type=exposure: notional / equity); positions reached at most 1.72x of equity (effective leverage)'
    """
    leverage = settings["leverage"]
    lev = f"{leverage:g}" if np.isscalar(leverage) else "L"
    size_type = settings.get("size_type", "equity")
    reached = "" if np.isnan(max_effective_leverage) else \
        f"; positions reached at most {max_effective_leverage:.2f}x of equity (effective leverage)"
    return (f"leverage {lev}x sets the margin (initial margin = notional / {lev}, "
            f"{settings.get('margin_mode', 'isolated')}) and caps the position; the size comes "
            f"from the strategy (size_type={size_type}: {SIZE_TYPE_WORDS.get(size_type, size_type)})"
            + reached)


def plain_value(value) -> str:
    """A parameter, setting or grid label as a person writes it: ``48`` (not ``np.int64(48)``),
    ``12, 24`` for a grid axis or a grid column's (12, 24), ``1h`` for a bar spacing.

    >>> plain_value([np.int64(12), np.float64(0.5)]), plain_value(pd.Timedelta("1h"))
    ('12, 0.5', '1h')
    """
    from backtest.market import timeframe_label

    if isinstance(value, list | tuple | np.ndarray | range):
        return ", ".join(plain_value(v) for v in value)
    if isinstance(value, pd.Timedelta):
        return timeframe_label(value)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _relative(path: str) -> str:
    """A file under the working directory named from it (reports travel; absolute paths do
    not); others as they were given."""
    import os

    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive
        return path
    return path if relative.startswith(os.pardir) else relative


def synthetic_note(market) -> str | None:
    """What a report says of synthetic data (a Market's or Markets' first synthetic
    instrument's description); None for real data."""
    markets = [market[s] for s in market.symbols] if hasattr(market, "symbols") else [market]
    synthetic = [m for m in markets if getattr(m, "synthetic", False)]
    return (synthetic[0].description or "synthetic data, not real prices") if synthetic else None


def _header(result) -> dict:
    from backtest.market import timeframe_label

    markets = [result.markets[symbol] for symbol in result.symbols]
    sources = [_relative(m.source) for m in markets if m.source]
    stats = result.stats()
    reached = float(stats["max_effective_leverage"]) if isinstance(stats, pd.Series) else float("nan")
    return {
        "strategy": result.strategy_name or "simulate()",
        "params": {k: plain_value(v) for k, v in (result.params or {}).items()},
        "symbol": ", ".join(m.symbol or "?" for m in markets) if len(markets) > 1 else (markets[0].symbol or "?"),
        "source": ", ".join(sources) if sources else "in-memory data",
        "start": result.index[0], "end": result.index[-1], "bars": len(result.index),
        "freq": timeframe_label(result.freq),
        "settings": {k: plain_value(v) for k, v in result.settings.items()},
        "leverage_note": leverage_note(result.settings, reached),
        "synthetic": synthetic_note(result.markets),
        "extras": [name for name in ("mark", "funding", "depth")
                   if any(getattr(m, name) is not None for m in markets)],
    }


def _grid_context(table: pd.DataFrame, metric: str, interactive: bool = True) -> dict:
    columns = [k for k in GRID_METRICS if k in table.columns]
    heatmap = None
    index = table.index
    if isinstance(index, pd.MultiIndex) and index.nlevels >= 2:
        values = table[metric].astype(float)
        pivot = values.groupby(level=[0, 1]).mean().unstack(level=1)
        if interactive:
            from backtest.report.interactive import grid_heatmap
        else:
            from backtest.report.figures import grid_heatmap
        heatmap = grid_heatmap(pivot, metric)
    rows = [{"label": plain_value(label), "values": table.loc[label, columns]} for label in table.index]
    names = [str(n) for n in (index.names if isinstance(index, pd.MultiIndex) else [index.name]) if n]
    return {"rows": rows, "columns": columns, "metric": metric, "heatmap": heatmap,
            "param_names": names}


def best_label(table: pd.DataFrame, metric: str):
    """The row of a stats table with the highest ``metric`` (the first row if it is undefined
    everywhere)."""
    ranking = table[metric].astype(float)  # undefined (NaN) columns are not ranked
    return ranking.idxmax() if ranking.notna().any() else ranking.index[0]


def _scripts(grid: dict | None, single: dict) -> dict:
    """What the interactive page runs: plotly.js and every figure as one JSON document."""
    from backtest.report.interactive import plotly_js, to_json

    figures = {f"chart-{name}": figure for name, figure in single["figures"].items()}
    if grid is not None and grid["heatmap"] is not None:
        figures["grid-heatmap"] = grid["heatmap"]
    return {"plotly_js": plotly_js(), "figures_json": to_json(figures)}


NOTEBOOK_METRICS = ["total_return", "cagr", "sharpe", "max_drawdown", "trades", "liquidations",
                    "funding_paid", "fees_paid", "max_effective_leverage"]
NOTEBOOK_ROWS = 10


def metrics_html(result, rows: int = NOTEBOOK_ROWS) -> str:
    """Key metrics of a result as a small HTML table (``Result._repr_html_``): one row per metric
    for a single account; for a grid, the first ``rows`` accounts of ``stats()`` with one
    column per metric. Everything is escaped."""
    from html import escape

    table = result.stats(frame=True)
    caption = f"<caption>{escape(repr(result))}</caption>"
    keys = [k for k in NOTEBOOK_METRICS if k in table.columns]
    if len(table) == 1:
        stats = table.iloc[0]
        body = "".join(f"<tr><th style='text-align:left'>{escape(METRIC_LABELS.get(k, k))}</th>"
                       f"<td>{escape(format_metric(k, stats[k]))}</td></tr>" for k in keys)
        return f"<table class='backtest-result'>{caption}{body}</table>"
    names = [str(n) for n in table.index.names if n is not None] or ["column"]
    head = "".join(f"<th>{escape(n)}</th>" for n in names) + "".join(
        f"<th>{escape(METRIC_LABELS.get(k, k))}</th>" for k in keys)
    lines = []
    for label, stats in table.head(rows).iterrows():
        labels = label if isinstance(label, tuple) else (label,)
        cells = "".join(f"<td>{escape(plain_value(v))}</td>" for v in labels)
        cells += "".join(f"<td>{escape(format_metric(k, stats[k]))}</td>" for k in keys)
        lines.append(f"<tr>{cells}</tr>")
    more = (f"<p>First {rows} of {len(table)} columns: <code>result.stats()</code> has them all.</p>"
            if len(table) > rows else "")
    return (f"<table class='backtest-result'>{caption}<thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(lines)}</tbody></table>{more}")


def equity_plot(result, column=None):
    """The plotly ``Figure`` of ``Result.plot``: equity and buy-and-hold above, drawdown below."""
    import plotly.graph_objects as go

    from backtest.report.interactive import equity_drawdown_figure

    label = column if column is not None else result.accounts[0]
    equity = _series(result.equity, label)
    init_cash = float(result.init_cash[label])
    name = result.strategy_name or "simulate()"
    title = f"{name} — {label}" if len(result.accounts) > 1 else name
    figure = equity_drawdown_figure(equity, _hold(result, init_cash),
                                    hold_name=f"buy and hold {result.symbols[0]}", title=title)
    return go.Figure(figure)


def render_report(result, *, column=None, metric: str = "sharpe", title: str | None = None,
                  grid_stats: pd.DataFrame | None = None, interactive: bool = True) -> str:
    """The report's HTML text (see :func:`write_report`)."""
    result._full("all")  # the records and every per-bar series it reads, in one replay
    many = not isinstance(result.equity, pd.Series)
    grid, best = None, None
    if grid_stats is not None:  # a sweep's table, with ``result`` the full run of one combination
        grid, best = _grid_context(grid_stats, metric, interactive), best_label(grid_stats, metric)
    elif many and column is None:
        table = result.stats()
        grid = _grid_context(table, metric, interactive)
        column = best = best_label(table, metric)
    elif many:
        best = column
    single = _single_context(result, column if many else None, interactive)
    context = {"header": _header(result), "grid": grid, "title": title, "single": single,
               "best_label": best, "interactive": interactive,
               **(_scripts(grid, single) if interactive else {})}
    return _environment().get_template("report.html").render(**context)


def write_report(result, path, *, column=None, metric: str = "sharpe", title: str | None = None,
                 grid_stats: pd.DataFrame | None = None, interactive: bool = True) -> Path:
    """Write the self-contained HTML report of ``result`` to ``path`` (atomically: a temporary
    file renamed into place, so an interrupted write leaves no half-written report); returns
    the path. Missing parent folders are created. ``grid_stats`` (a sweep's ``stats()``) puts
    the comparison of every combination before the full report of ``result``, the best one.
    ``interactive=False`` writes the static version (PNG charts, no JavaScript)."""
    from backtest.outputs import write_atomic

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, render_report(result, column=column, metric=metric, title=title,
                                            grid_stats=grid_stats, interactive=interactive))
