"""Self-contained HTML pages of the research tools: Monte Carlo (the leverage survival curve),
walk-forward (folds, chosen parameters over time, stitched out-of-sample equity against the
in-sample best) and stress scenarios. One file each, plotly.js inlined, no network.

>>> mc = backtest.monte_carlo(TrendFollowing(), market, leverage=[1, 3, 10])   # doctest: +SKIP
>>> write_montecarlo_page(mc, "reports/montecarlo.html", subject="TrendFollowing on BTCUSDT")  # doctest: +SKIP
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from backtest.report import interactive as plot

WILSON_Z = 1.96  # 95% intervals on a probability estimated from a number of paths
LIQUIDATION, RUIN, DRAWDOWN = "#d62728", "#9467bd", "#ff7f0e"


def wilson_interval(p, n, z: float = WILSON_Z) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a proportion ``p`` observed on ``n`` paths (never outside
    [0, 1], sensible at 0 and 1 where the normal interval collapses).

    >>> low, high = wilson_interval(0.0, 100)
    >>> float(low), round(float(high), 4)
    (0.0, 0.037)
    """
    p, n = np.asarray(p, dtype=float), np.asarray(n, dtype=float)
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)


def survival_figure(summary: pd.DataFrame, kelly: float | None = None) -> dict:
    """The leverage survival curve: probability of liquidation, ruin and a deep drawdown per
    leverage (log axis) with 95% Wilson bands; Kelly and half-Kelly leverage as lines."""
    leverage = plot.floats(summary.index.to_numpy(dtype=float))
    data = []
    for column, color, name in (("p_liquidation", LIQUIDATION, "P(liquidated at least once)"),
                                ("p_ruin", RUIN, "P(ruin)"), ("p_drawdown", DRAWDOWN, "P(deep drawdown)")):
        low, high = wilson_interval(summary[column], summary["paths"])
        data.append({"type": "scatter", "mode": "lines", "x": leverage + leverage[::-1],
                     "y": plot.floats(np.r_[high, low[::-1]]), "fill": "toself", "opacity": 0.15,
                     "line": {"width": 0, "color": color}, "hoverinfo": "skip",
                     "showlegend": False, "name": f"{name}, 95% band"})
        data.append({"type": "scatter", "mode": "lines+markers", "x": leverage, "name": name,
                     "y": plot.floats(summary[column]), "line": {"color": color}})
    shapes, notes = [], []
    if kelly is not None and np.isfinite(kelly) and kelly > 0:
        for value, dash, label in ((kelly, "dash", "Kelly"), (kelly / 2, "dot", "half-Kelly")):
            shapes.append({"type": "line", "xref": "x", "yref": "paper", "x0": value, "x1": value,
                           "y0": 0, "y1": 1, "line": {"color": "#555", "dash": dash}})
            notes.append({"x": math.log10(value), "xref": "x", "y": 1.0, "yref": "paper",
                          "text": f"{label} {value:.2g}x", "showarrow": False, "yanchor": "bottom"})
    layout = plot._layout(420, xaxis={"type": "log", "title": {"text": "leverage"}},
                          yaxis={"title": {"text": "probability over the paths"}, "range": [0, 1.02]},
                          shapes=shapes, annotations=notes, hovermode="x unified")
    return {"data": data, "layout": layout}


def _final_equity_figure(table: pd.DataFrame) -> dict:
    data = [{"type": "box", "name": f"{lev:g}x", "y": plot.floats(group["final_equity"]),
             "boxpoints": False} for lev, group in table.groupby(level="leverage")]
    return {"data": data, "layout": plot._layout(360, xaxis={"title": {"text": "leverage"}},
                                                 yaxis={"title": {"text": "final equity (USDT)"}},
                                                 showlegend=False)}


def _render(path, *, title: str, subtitle: str, sections: list[dict], figures: dict,
            notes=(), synthetic: str | None = None) -> Path:
    from backtest.outputs import write_atomic
    from backtest.report import _environment

    env = _environment()
    env.filters["cell"] = _cell
    html = env.get_template("research.html").render(
        title=title, subtitle=subtitle, sections=sections, notes=list(notes), synthetic=synthetic,
        figures_json=plot.to_json({f"chart-{k}": v for k, v in figures.items()}),
        plotly_js=plot.plotly_js())
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_atomic(path, html)


def _cell(value) -> str:
    if isinstance(value, float | np.floating):
        return "—" if not np.isfinite(value) else f"{value:.4g}"
    if isinstance(value, pd.Timestamp):
        return "—" if value is pd.NaT else value.strftime("%Y-%m-%d %H:%M")
    if value is pd.NaT or value is None:
        return "—"
    return str(value.item() if isinstance(value, np.generic) else value)


def write_montecarlo_page(mc, path, *, subject: str = "", synthetic: str | None = None) -> Path:
    """The Monte Carlo page: survival curve, summary per leverage, final-equity spread."""
    summary = mc.summary()
    kelly = getattr(mc, "kelly_leverage", None)
    n_paths = int(summary["paths"].iloc[0])
    kelly_text = (f"Kelly leverage from the strategy's own returns at 1x: {kelly:.2f}x "
                  f"(half-Kelly {kelly / 2:.2f}x)." if kelly is not None and np.isfinite(kelly)
                  else "")
    sections = [
        {"id": "survival", "title": "Leverage survival curve", "chart": True, "table": None,
         "text": f"Each point is the share of {n_paths} bootstrap paths on which the account was "
                 f"liquidated at least once, ruined (equity below {mc.ruin:g} × the initial cash "
                 f"at some bar) or in a drawdown deeper than {mc.drawdown:.0%}; bands are 95% "
                 f"Wilson intervals for that many paths. {kelly_text}"},
        {"id": "summary", "title": "Per leverage", "chart": False, "table": summary, "text": ""},
        {"id": "final-equity", "title": "Final equity over the paths", "chart": True,
         "table": None, "text": ""},
    ]
    figures = {"survival": survival_figure(summary, kelly), "final-equity": _final_equity_figure(mc.table)}
    return _render(path, title=f"Which leverage survives? {subject}".strip(),
                   subtitle=f"Monte Carlo: {n_paths} stationary-block-bootstrap paths per leverage",
                   sections=sections, figures=figures, synthetic=synthetic)


def _params_figure(folds: pd.DataFrame, params: list[str]) -> dict:
    data = [{"type": "scatter", "mode": "lines+markers", "line": {"shape": "hv"}, "name": name,
             "x": plot.times(folds["test_start"]), "y": plot.floats(folds[name].astype(float)),
             "yaxis": "y" if k == 0 else f"y{k + 1}"} for k, name in enumerate(params)]
    extra = {f"yaxis{k + 1}": {"title": {"text": name}, "overlaying": "y", "side": "right"}
             for k, name in enumerate(params) if k}
    return {"data": data, "layout": plot._layout(320, yaxis={"title": {"text": params[0]}}, **extra)}


def write_walkforward_page(wf, path, *, subject: str = "", synthetic: str | None = None) -> Path:
    """The walk-forward page: folds, chosen parameters over time, stitched out-of-sample equity
    against the full-period in-sample best, degradation."""
    summary = wf.summary()
    fixed = {"train_start", "test_start", "test_end", "in_sample", "out_of_sample",
             "start_equity", "end_equity"}
    params = [c for c in wf.folds.columns if c not in fixed]
    equity = [plot.line(wf.equity, "walk-forward (out of sample, stitched)", plot.STRATEGY)]
    best = getattr(wf, "in_sample_best", None)
    if best is not None:
        rebased = best.loc[wf.equity.index[0]:] / best.loc[wf.equity.index[0]:].iloc[0] * wf.init_cash
        label = ", ".join(f"{k}={v}" for k, v in wf.in_sample_best_params.items())
        equity.append(plot.line(rebased, f"in-sample best over the whole period ({label})", plot.HOLD))
    sections = [
        {"id": "summary", "title": "Out of sample against in sample", "chart": False,
         "table": summary.to_frame("value"),
         "text": f"Objective {wf.objective}: the folds' mean in-sample value, the stitched "
                 "out-of-sample value and their ratio (degradation: 1 keeps everything, 0 or "
                 "below means the choice did not carry over)."},
        {"id": "equity", "title": "Stitched out-of-sample equity", "chart": True, "table": None,
         "text": "Against the combination that was best on the whole period, chosen with "
                 "hindsight and rebased to the first test bar: the gap is what choosing on the "
                 "past only costs."},
        {"id": "params", "title": "Chosen parameters over time", "chart": True, "table": None, "text": ""},
        {"id": "folds", "title": "Folds", "chart": False, "table": wf.folds, "text": ""},
    ]
    figures = {"equity": {"data": equity, "layout": plot._layout(380)},
               "params": _params_figure(wf.folds, params)}
    return _render(path, title=f"Walk-forward {subject}".strip(),
                   subtitle=f"{len(wf.folds)} folds, chosen by {wf.objective}", sections=sections,
                   figures=figures, synthetic=synthetic)


def write_stress_page(table: pd.DataFrame, path, *, subject: str = "", shocks: dict | None = None,
                      synthetic: str | None = None) -> Path:
    """The stress page: survival and loss per leverage for every scenario."""
    data = []
    for scenario, rows in table.groupby(level="scenario"):
        levels = rows.index.get_level_values("leverage").to_numpy(dtype=float)
        data.append({"type": "scatter", "mode": "lines+markers", "name": str(scenario),
                     "x": plot.floats(levels), "y": plot.floats(rows["loss"].to_numpy(dtype=float)),
                     "text": ["survives" if s else f"liquidated {t}" for s, t in
                              zip(rows["survives"], rows["liquidated_at"], strict=True)],
                     "hovertemplate": "%{x}x: loss %{y:.1%} (%{text})<extra>%{fullData.name}</extra>"})
    layout = plot._layout(380, xaxis={"type": "log", "title": {"text": "leverage"}},
                          yaxis={"title": {"text": "loss (fraction of the initial cash)"},
                                 "tickformat": ".0%"})
    described = [f"{name}: {shock}" for name, shock in (shocks or {}).items()]
    sections = [
        {"id": "loss", "title": "Loss per leverage and scenario", "chart": True, "table": None,
         "text": "A point per (scenario, leverage); hover for when the account was liquidated."},
        {"id": "scenarios", "title": "Survives / liquidated at / loss", "chart": False,
         "table": table, "text": ""},
    ]
    return _render(path, title=f"Stress scenarios {subject}".strip(),
                   subtitle=f"{table.index.get_level_values('scenario').nunique()} scenarios "
                            "(\"none\" is the data untouched)",
                   sections=sections, figures={"loss": {"data": data, "layout": layout}},
                   notes=described, synthetic=synthetic)
