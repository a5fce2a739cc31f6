"""Interactive plotly figures of a result, built as plain dicts (``{"data": [...], "layout":
{...}}``) and serialized once to JSON: plotly.js draws them in the page, from a copy of
``plotly.min.js`` inlined once, so the file works offline.

Size is what matters here: plotly.js alone is ~4.8 MB and the page must stay under 6 MB
however long the run. Every per-bar line is downsampled to at most ``MAX_POINTS`` points by
keeping each bucket's lowest and highest point (:func:`analysis.minmax_indices`), so a
liquidation wick survives; times travel as epoch milliseconds (a date axis reads them as UTC)
and values with ``DIGITS`` significant digits. Markers of trades and liquidations sit at their
exact time; beyond ``MAX_TRADE_MARKERS`` trades only the largest by |pnl| get one (the page
says so). Building dicts avoids ``plotly.graph_objects`` validation (slow on long traces);
:func:`equity_drawdown_figure` also serves ``Result.plot``.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from backtest.report.analysis import minmax_indices
from backtest.report.sections import symmetric_limit

MAX_POINTS = 2000  # per line: 1,000 buckets × (low, high), more than a screen has pixels
MAX_TRADE_MARKERS = 1000
DIGITS = 6
STRATEGY, HOLD, LOSS, GAIN = "#1f77b4", "#999999", "#d62728", "#2ca02c"
LONG, SHORT = "#1f77b4", "#ff7f0e"
# red for losses, yellow at zero, green for gains (plotly.js has no built-in RdYlGn)
RED_YELLOW_GREEN = [[0.0, "#a50026"], [0.25, "#f46d43"], [0.5, "#ffffbf"], [0.75, "#66bd63"],
                    [1.0, "#006837"]]
TIME_FORMAT = "%Y-%m-%d %H:%M"
TRADE_HOVER = ("%{customdata[2]} · exit: %{customdata[6]}<br>"
               "entry %{customdata[0]} @ %{customdata[3]:.6~g}<br>"
               "exit %{customdata[1]} @ %{customdata[4]:.6~g}<br>"
               "pnl %{customdata[5]:,.2f} USDT<extra></extra>")


@lru_cache(maxsize=1)
def plotly_js() -> str:
    """The plotly.js bundle shipped with the plotly package (read once per process, without
    importing plotly)."""
    import importlib.util

    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("plotly is not installed: use interactive=False for a static report")
    path = Path(spec.submodule_search_locations[0]) / "package_data" / "plotly.min.js"
    return path.read_text(encoding="utf-8")


def to_json(figures: dict) -> str:
    """JSON of the figures, safe inside a ``<script>`` element (no ``<``, ``>`` or ``&``)."""
    text = json.dumps(figures, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


# ----- values ----------------------------------------------------------------------------------


def floats(values, digits: int = DIGITS) -> list:
    """A list of floats rounded to ``digits`` significant digits (short JSON); None where not
    finite (a gap in the line)."""
    array = np.asarray(values, dtype=float)
    finite = np.isfinite(array)
    clean = np.where(finite, array, 0.0)
    magnitude = np.floor(np.log10(np.abs(clean), out=np.zeros_like(clean), where=clean != 0))
    # whole numbers stay whole (no inexact 0.1 scale); 10**300 is the largest safe scale
    decimals = np.clip(digits - 1 - magnitude, 0, 300)
    scale = 10.0 ** decimals
    out = (np.round(clean * scale) / scale).tolist()
    for position in np.flatnonzero(~finite):
        out[position] = None
    return out


def times(index) -> list:
    """Epoch milliseconds (UTC) of timestamps, for a date axis."""
    stamps = pd.DatetimeIndex(index)
    return stamps.as_unit("ms").asi8.tolist()


def _labels(stamps) -> list[str]:
    return [f"{t:{TIME_FORMAT}}" for t in pd.DatetimeIndex(stamps)]


def line(series: pd.Series, name: str, color: str, scale: float = 1.0, **extra) -> dict:
    """A downsampled line trace of a per-bar series."""
    values = series.to_numpy(dtype=float)
    keep = minmax_indices(values, MAX_POINTS)
    return {"type": "scatter", "mode": "lines", "name": name, "x": times(series.index[keep]),
            "y": floats(values[keep] * scale), "line": {"color": color, "width": 1.3}, **extra}


def _layout(height: int, rows: int = 1, **extra) -> dict:
    """A figure's layout; ``rows=2``: two y axes stacked (``yaxis2`` below) on one time axis,
    whose labels go under the lower one."""
    layout = {"height": height, "margin": {"l": 60, "r": 60, "t": 30, "b": 40},
              "hovermode": "closest", "legend": {"orientation": "h", "y": 1.12, "x": 0},
              "xaxis": {"type": "date", "hoverformat": TIME_FORMAT},
              "plot_bgcolor": "#ffffff", "paper_bgcolor": "#ffffff"}
    if rows == 2:
        layout["xaxis"]["anchor"] = "y2"
    layout.update(extra)
    return layout


# ----- trades ----------------------------------------------------------------------------------


def marked_trades(trades: pd.DataFrame, limit: int = MAX_TRADE_MARKERS) -> pd.DataFrame:
    """The trades that get a marker: all of them, or the ``limit`` largest by |pnl|, in time
    order."""
    if len(trades) <= limit:
        return trades
    largest = trades["pnl"].abs().to_numpy().argsort(kind="stable")[::-1][:limit]
    return trades.iloc[np.sort(largest)]


def trade_customdata(trades: pd.DataFrame) -> list:
    """Per trade: entry and exit time, side, entry and exit price, pnl, exit reason (see
    ``TRADE_HOVER``)."""
    return [list(row) for row in zip(
        _labels(trades["entry_time"]), _labels(trades["exit_time"]), trades["side"].tolist(),
        floats(trades["entry_price"]), floats(trades["exit_price"]), floats(trades["pnl"]),
        trades["exit_reason"].tolist(), strict=True)]


def _trade_name(what: str, shown: int, total: int) -> str:
    return f"{what}: {shown} of {total}, largest |pnl|" if shown < total else what


# ----- figures ---------------------------------------------------------------------------------


def equity_figure(equity: pd.Series, hold: pd.Series | None, trades: pd.DataFrame,
                  liquidations: pd.DataFrame, label_legs: bool = False) -> dict:
    """Equity against buy-and-hold, every trade's exit marked (hover: its details) and every
    liquidation (``liquidations``: one row per event with ``time`` and ``symbol``; labelled
    with the leg that lost the most for a portfolio)."""
    data = [line(equity, "strategy", STRATEGY)]
    if hold is not None:
        data.append(line(hold, "buy and hold", HOLD))
    shown = marked_trades(trades)
    for won, name, color in ((True, "winning", GAIN), (False, "losing", LOSS)):
        part = shown[(shown["pnl"] > 0) == won]
        if len(part):
            data.append({"type": "scatter", "mode": "markers",
                         "name": _trade_name(f"{name} trades (at exit)", len(part),
                                             int(((trades["pnl"] > 0) == won).sum())),
                         "x": times(part["exit_time"]),
                         "y": floats(equity.reindex(part["exit_time"]).to_numpy()),
                         "customdata": trade_customdata(part), "hovertemplate": TRADE_HOVER,
                         "marker": {"size": 6, "symbol": "circle", "opacity": 0.8, "color": color}})
    if len(liquidations):
        values = equity.reindex(liquidations["time"]).to_numpy()
        legs = [f"{symbol} leg" for symbol in liquidations["symbol"]] if label_legs else None
        data.append({"type": "scatter", "mode": "markers+text" if label_legs else "markers",
                     "name": "liquidations", "x": times(liquidations["time"]), "y": floats(values),
                     "text": legs, "textposition": "top right", "textfont": {"color": LOSS},
                     "hovertemplate": "liquidation %{x|" + TIME_FORMAT + "}<br>equity "
                                      "%{y:,.2f}" + ("<br>%{text}" if label_legs else "")
                                      + "<extra></extra>",
                     "marker": {"size": 13, "symbol": "x", "color": LOSS}})
    return {"data": data, "layout": _layout(420, yaxis={"title": {"text": "equity (USDT)"}})}


def underwater_figure(equity: pd.Series) -> dict:
    values = equity.to_numpy(dtype=float)
    drawdown = pd.Series(values / np.maximum.accumulate(values) - 1.0, index=equity.index)
    trace = line(drawdown, "drawdown", LOSS, scale=100.0, fill="tozeroy",
                 hovertemplate="%{y:.2f}%<extra></extra>")
    return {"data": [trace], "layout": _layout(260, showlegend=False,
                                               yaxis={"title": {"text": "drawdown (%)"}})}


def equity_drawdown_figure(equity: pd.Series, hold: pd.Series | None, hold_name: str = "buy and hold",
                           title: str | None = None) -> dict:
    """Equity (and buy-and-hold) above, drawdown below, on one shared time axis."""
    data = [line(equity, "strategy", STRATEGY, xaxis="x", yaxis="y")]
    if hold is not None:
        data.append(line(hold, hold_name, HOLD, xaxis="x", yaxis="y"))
    under = underwater_figure(equity)["data"][0]
    under.update({"xaxis": "x", "yaxis": "y2", "name": "drawdown"})
    layout = _layout(560, rows=2, hovermode="x unified",
                     yaxis={"title": {"text": "equity (USDT)"}, "domain": [0.36, 1.0]},
                     yaxis2={"title": {"text": "drawdown (%)"}, "domain": [0.0, 0.28]})
    if title:
        layout.update(title={"text": title}, margin={"l": 60, "r": 60, "t": 60, "b": 40})
    return {"data": [*data, under], "layout": layout}


MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def monthly_heatmap(table: pd.DataFrame) -> dict:
    """Monthly returns (%) by year, on a red-to-green scale centred on 0 (symmetric limits)."""
    values = table.to_numpy(dtype=float) * 100
    limit = symmetric_limit(values)
    rows = [floats(row, 4) for row in values]
    trace = {"type": "heatmap", "z": rows, "x": [MONTHS[m - 1] for m in table.columns],
             "y": [str(y) for y in table.index], "zmin": -limit, "zmax": limit, "zmid": 0.0,
             "colorscale": RED_YELLOW_GREEN, "texttemplate": "%{z:.1f}", "xgap": 2, "ygap": 2,
             "hovertemplate": "%{y} %{x}: %{z:.2f}%<extra></extra>",
             "colorbar": {"title": {"text": "%"}}}
    layout = _layout(120 + 40 * max(len(table), 1), xaxis={"type": "category"},
                     yaxis={"type": "category", "autorange": "reversed"})
    return {"data": [trace], "layout": layout}


def rolling_figure(sharpe: pd.Series, volatility: pd.Series, days: int) -> dict:
    """Rolling Sharpe above and annualized volatility below (shared time axis)."""
    top = line(sharpe.replace([np.inf, -np.inf], np.nan), f"Sharpe ({days} days)", GAIN)
    bottom = line(volatility, f"volatility, % annualized ({days} days)", "#9467bd", scale=100.0,
                  yaxis="y2")
    layout = _layout(420, rows=2, hovermode="x unified",
                     yaxis={"title": {"text": "Sharpe"}, "domain": [0.55, 1.0], "zeroline": True},
                     yaxis2={"title": {"text": "volatility (%)"}, "domain": [0.0, 0.45]})
    if not np.isfinite(volatility.to_numpy(dtype=float)).any():
        layout["annotations"] = [{"xref": "paper", "yref": "paper", "x": 0.5, "y": 0.5,
                                  "showarrow": False, "text": f"fewer bars than one {days}-day window"}]
    return {"data": [top, bottom], "layout": layout}


def leverage_figure(effective_leverage: pd.Series, margin_ratio: pd.Series) -> dict:
    """Effective leverage above, margin ratio (%) below with the liquidation line at 100%
    (shared time axis)."""
    leverage = line(effective_leverage.replace([np.inf, -np.inf], np.nan),
                    "effective leverage (x)", STRATEGY)
    ratio_series = margin_ratio.replace([np.inf, -np.inf], np.nan).clip(upper=1.5)
    ratio = line(ratio_series, "margin ratio (%)", LOSS, scale=100.0, yaxis="y2")
    top = max(100.0, float(np.nan_to_num(ratio_series.max()) * 100)) * 1.05
    layout = _layout(380, rows=2, hovermode="x unified",
                     yaxis={"title": {"text": "leverage (x)"}, "domain": [0.52, 1.0],
                            "rangemode": "tozero"},
                     yaxis2={"title": {"text": "margin ratio (%)"}, "domain": [0.0, 0.42],
                             "range": [0.0, top]},
                     shapes=[{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y2",
                              "y0": 100, "y1": 100, "line": {"color": LOSS, "dash": "dash",
                                                             "width": 1}}],
                     annotations=[{"xref": "paper", "x": 0, "xanchor": "left", "yref": "y2",
                                   "y": 100, "yanchor": "bottom", "showarrow": False,
                                   "text": "100% = liquidation", "font": {"color": LOSS, "size": 10}}])
    return {"data": [leverage, ratio], "layout": layout}


def price_window_figure(bars: pd.DataFrame, levels: pd.DataFrame | None, trades: pd.DataFrame,
                        liquidations: pd.DataFrame) -> dict:
    """Candles of the window's bars (exact, no downsampling), the nearest support and resistance
    at each bar, the trades entered in the window (entry to exit; hover: details) and the
    liquidations in it."""
    x = times(bars.index)
    data = [{"type": "candlestick", "name": "price", "x": x, "open": floats(bars["open"]),
             "high": floats(bars["high"]), "low": floats(bars["low"]),
             "close": floats(bars["close"]), "showlegend": True}]
    if levels is not None:
        for side, color in (("support", GAIN), ("resistance", LOSS)):
            data.append({"type": "scatter", "mode": "lines", "name": side, "x": x,
                         "y": floats(levels[side]), "opacity": 0.75, "line": {"color": color, "width": 1.3,
                                                            "shape": "hv"}})
    inside = trades[(trades["entry_time"] >= bars.index[0]) & (trades["entry_time"] <= bars.index[-1])]
    for side, color, symbol in (("long", LONG, "triangle-up"), ("short", SHORT, "triangle-down")):
        part = inside[inside["side"] == side]
        if not len(part):
            continue
        path_x, path_y = [], []
        for entry, exit_, p0, p1 in zip(times(part["entry_time"]), times(part["exit_time"]),
                                        floats(part["entry_price"]), floats(part["exit_price"]),
                                        strict=True):
            path_x += [entry, exit_, None]
            path_y += [p0, p1, None]
        data.append({"type": "scatter", "mode": "lines+markers", "name": f"{side} trades",
                     "x": path_x, "y": path_y, "hoverinfo": "skip",
                     "line": {"color": color, "width": 2}, "marker": {"symbol": symbol, "size": 9}})
        customdata = trade_customdata(part)
        data.append({"type": "scatter", "mode": "markers", "name": f"{side} trades",
                     "showlegend": False, "x": times(part["entry_time"]),
                     "y": floats(part["entry_price"]), "customdata": customdata,
                     "hovertemplate": TRADE_HOVER, "marker": {"color": color, "size": 9,
                                                              "symbol": symbol}})
    shown = liquidations[(liquidations["time"] >= bars.index[0])
                         & (liquidations["time"] <= bars.index[-1])]
    if len(shown):
        data.append({"type": "scatter", "mode": "markers", "name": "liquidations",
                     "x": times(shown["time"]), "y": floats(shown["price"]),
                     "marker": {"size": 13, "symbol": "x", "color": LOSS},
                     "hovertemplate": "liquidation at %{y:.6~g}<extra></extra>"})
    layout = _layout(460, yaxis={"title": {"text": "price"}})
    half_bar = (x[-1] - x[0]) / max(len(x) - 1, 1) / 2
    # the window's bars only: a trade that exits later is cut at the edge
    layout["xaxis"].update(rangeslider={"visible": False}, range=[x[0] - half_bar, x[-1] + half_bar])
    return {"data": data, "layout": layout}


def mae_figure(trades: pd.DataFrame) -> dict:
    """Each closed trade's maximum adverse excursion (% of entry) against its pnl, by side."""
    shown = marked_trades(trades)
    data = []
    for side, color in (("long", LONG), ("short", SHORT)):
        part = shown[shown["side"] == side]
        if len(part):
            data.append({"type": "scatter", "mode": "markers",
                         "name": _trade_name(f"{side} trades", len(part),
                                             int((trades["side"] == side).sum())),
                         "x": floats(part["mae"] * 100), "y": floats(part["pnl"]),
                         "customdata": trade_customdata(part),
                         "hovertemplate": "MAE %{x:.2f}%<br>" + TRADE_HOVER,
                         "marker": {"color": color, "size": 7, "opacity": 0.75}})
    layout = _layout(380, xaxis={"title": {"text": "MAE (% of entry price, negative = against)"},
                                 "zeroline": True},
                     yaxis={"title": {"text": "pnl (USDT)"}, "zeroline": True})
    return {"data": data, "layout": layout}


def grid_heatmap(values: pd.DataFrame, metric: str) -> dict:
    """A metric over two parameters (rows: the first, columns: the second)."""
    trace = {"type": "heatmap", "z": [floats(row) for row in values.to_numpy(dtype=float)],
             "x": [str(c) for c in values.columns], "y": [str(r) for r in values.index],
             "colorscale": "Viridis", "texttemplate": "%{z:.3g}",
             "hovertemplate": f"{values.index.name}=%{{y}}, {values.columns.name}=%{{x}}: "
                              "%{z:.4g}<extra></extra>",
             "colorbar": {"title": {"text": metric}}}
    layout = _layout(140 + 36 * max(len(values), 1),
                     xaxis={"type": "category", "title": {"text": str(values.columns.name)}},
                     yaxis={"type": "category", "title": {"text": str(values.index.name)}})
    return {"data": [trace], "layout": layout}
