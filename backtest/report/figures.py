"""Matplotlib figures of a result, each returned as a base64 PNG data URI: the static report
(``interactive=False``, for places that strip JavaScript; see :mod:`backtest.report.interactive`
for the default, interactive one).

Long series are downsampled for plotting only, keeping each bucket's lowest and highest point so
spikes survive (the numbers in tables come from ``stats()`` and the records).
"""

from __future__ import annotations

import base64
import io

import numpy as np
import pandas as pd

from backtest.report.analysis import minmax_indices
from backtest.report.sections import WINDOW_BARS, monthly_returns, symmetric_limit  # noqa: F401

MAX_PLOT_POINTS = 4000
FIG_WIDTH, FIG_HEIGHT, DPI = 11.0, 3.2, 80


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _encode(fig) -> str:
    plt = _pyplot()
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=DPI)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _thin(series: pd.Series) -> pd.Series:
    return series.iloc[minmax_indices(series.to_numpy(dtype=float), MAX_PLOT_POINTS)]


def equity_figure(equity: pd.Series, hold: pd.Series | None, liquidations: pd.DataFrame,
                  stops: pd.DataFrame, label_legs: bool = False) -> str:
    """Equity against buy-and-hold (``hold``: its value, same initial cash; one instrument
    only), stop exits and liquidations marked — for a portfolio each liquidation is labelled
    with the leg that lost the most (``liquidations``: one row per event with ``time`` and
    ``symbol``)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(FIG_WIDTH, FIG_HEIGHT))
    ax.plot(_thin(equity).index, _thin(equity).to_numpy(), label="strategy", color="#1f77b4", lw=1.2)
    if hold is not None:
        ax.plot(_thin(hold).index, _thin(hold).to_numpy(), label="buy and hold", color="#999999", lw=0.9)
    if len(stops):
        ax.scatter(stops["exit_time"], equity.reindex(stops["exit_time"]).to_numpy(), marker="v",
                   s=14, color="#ff7f0e", label="stop exits", zorder=3)
    if len(liquidations):
        values = equity.reindex(liquidations["time"]).to_numpy()
        ax.scatter(liquidations["time"], values, marker="X", s=60, color="#d62728",
                   label="liquidations", zorder=4)
        if label_legs:
            for time, value, symbol in zip(liquidations["time"], values, liquidations["symbol"],
                                           strict=True):
                ax.annotate(f"{symbol} leg", (time, value), textcoords="offset points",
                            xytext=(6, 8), fontsize=8, color="#d62728")
    ax.set_ylabel("equity (USDT)")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    return _encode(fig)


def underwater_figure(equity: pd.Series) -> str:
    plt = _pyplot()
    drawdown = equity / equity.cummax() - 1.0
    thin = _thin(drawdown)
    fig, ax = plt.subplots(figsize=(FIG_WIDTH, FIG_HEIGHT * 0.8))
    ax.fill_between(thin.index, thin.to_numpy() * 100, 0, color="#d62728", alpha=0.4)
    ax.set_ylabel("drawdown (%)")
    ax.grid(alpha=0.3)
    return _encode(fig)


def monthly_heatmap(table: pd.DataFrame) -> str:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(FIG_WIDTH, 0.6 + 0.45 * max(len(table), 1)))
    values = table.to_numpy(dtype=float) * 100
    limit = symmetric_limit(values)  # centred on 0: red losses, green gains
    ax.imshow(values, cmap="RdYlGn", vmin=-limit, vmax=limit, aspect="auto")
    ax.set_xticks(range(table.shape[1]), [f"{m:02d}" for m in table.columns])
    ax.set_yticks(range(table.shape[0]), [str(y) for y in table.index])
    for (row, col), value in np.ndenumerate(values):
        if np.isfinite(value):
            ax.text(col, row, f"{value:.1f}", ha="center", va="center", fontsize=7)
    return _encode(fig)


def rolling_figure(sharpe: pd.Series, volatility: pd.Series, days: int) -> str:
    """Rolling Sharpe and annualized volatility (see :mod:`backtest.report.analysis`)."""
    plt = _pyplot()
    sharpe = sharpe.replace([np.inf, -np.inf], np.nan)
    fig, (left, right) = plt.subplots(1, 2, figsize=(FIG_WIDTH, FIG_HEIGHT * 0.9))
    left.plot(_thin(sharpe).index, _thin(sharpe).to_numpy(), color="#2ca02c", lw=0.9)
    left.axhline(0, color="black", lw=0.5)
    left.set_title(f"rolling Sharpe ({days} days)", fontsize=9)
    right.plot(_thin(volatility).index, _thin(volatility).to_numpy() * 100, color="#9467bd", lw=0.9)
    right.set_title(f"rolling volatility, % annualized ({days} days)", fontsize=9)
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.tick_params(axis="x", labelsize=7)
    return _encode(fig)


def leverage_figure(effective_leverage: pd.Series, margin_ratio: pd.Series) -> str:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(FIG_WIDTH, FIG_HEIGHT * 0.9))
    lev = _thin(effective_leverage.replace(np.inf, np.nan))
    ax.plot(lev.index, lev.to_numpy(), color="#1f77b4", lw=0.9, label="effective leverage (x)")
    ax.set_ylabel("effective leverage (x)")
    twin = ax.twinx()
    ratio = _thin(margin_ratio.replace(np.inf, np.nan).clip(upper=1.5))
    twin.plot(ratio.index, ratio.to_numpy() * 100, color="#d62728", lw=0.8, label="margin ratio (%)")
    twin.axhline(100, color="#d62728", lw=0.6, ls="--")
    twin.set_ylabel("margin ratio (%) — 100 = liquidation")
    ax.grid(alpha=0.3)
    return _encode(fig)


def price_window_figure(market, window: slice, levels: pd.DataFrame | None,
                        trades: pd.DataFrame) -> str:
    """Close, high-low range, nearest support/resistance (``levels``: the window's rows of
    ``support_resistance``) and trades over a window of bars."""
    plt = _pyplot()
    bars = market[window]
    fig, ax = plt.subplots(figsize=(FIG_WIDTH, FIG_HEIGHT * 1.2))
    ax.fill_between(bars.index, bars.low.to_numpy(), bars.high.to_numpy(), color="#cccccc", step="mid")
    ax.plot(bars.index, bars.close.to_numpy(), color="black", lw=0.9, label="close")
    if levels is not None:
        ax.step(levels.index, levels["support"].to_numpy(), color="#2ca02c", lw=1, where="post",
                label="support")
        ax.step(levels.index, levels["resistance"].to_numpy(), color="#d62728", lw=1, where="post",
                label="resistance")
    inside = trades[(trades["entry_time"] >= bars.index[0]) & (trades["entry_time"] <= bars.index[-1])]
    for _, trade in inside.iterrows():
        color = "#1f77b4" if trade["side"] == "long" else "#ff7f0e"
        ax.plot([trade["entry_time"], trade["exit_time"]], [trade["entry_price"], trade["exit_price"]],
                color=color, lw=1.5, marker="o", ms=3)
    ax.set_xlim(bars.index[0], bars.index[-1])  # a trade that exits later is cut at the edge
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    return _encode(fig)


def mae_figure(trades: pd.DataFrame) -> str:
    """Each closed trade's maximum adverse excursion (% of entry) against its pnl, by side."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(FIG_WIDTH, FIG_HEIGHT))
    for side, color in (("long", "#1f77b4"), ("short", "#ff7f0e")):
        part = trades[trades["side"] == side]
        ax.scatter(part["mae"].to_numpy() * 100, part["pnl"].to_numpy(), s=12, color=color,
                   alpha=0.7, label=f"{side} trades")
    ax.axhline(0, color="black", lw=0.5)
    ax.set_xlabel("MAE (% of entry price, negative = against)")
    ax.set_ylabel("pnl (USDT)")
    ax.legend(loc="upper left", fontsize=8)
    ax.grid(alpha=0.3)
    return _encode(fig)


def grid_heatmap(values: pd.DataFrame, metric: str) -> str:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(min(FIG_WIDTH, 2 + 0.8 * values.shape[1]), 1 + 0.5 * values.shape[0]))
    data = values.to_numpy(dtype=float)
    image = ax.imshow(data, cmap="viridis", aspect="auto")
    ax.set_xticks(range(values.shape[1]), [str(c) for c in values.columns])
    ax.set_yticks(range(values.shape[0]), [str(r) for r in values.index])
    ax.set_xlabel(str(values.columns.name))
    ax.set_ylabel(str(values.index.name))
    for (row, col), value in np.ndenumerate(data):
        if np.isfinite(value):
            ax.text(col, row, f"{value:.3g}", ha="center", va="center", fontsize=7, color="white")
    fig.colorbar(image, ax=ax, label=metric)
    return _encode(fig)
