"""A result in a notebook: ``_repr_html_`` (key metrics, escaped) and ``plot()`` (plotly figure
of equity and drawdown)."""

from __future__ import annotations

import re
from html import escape

import numpy as np
import pytest

from backtest.report import METRIC_LABELS, format_metric
from strategies import TrendFollowing

from .helpers import Page

KEY_METRICS = ("total_return", "cagr", "sharpe", "max_drawdown", "trades", "liquidations",
               "funding_paid", "fees_paid", "max_effective_leverage")


@pytest.fixture(scope="module")
def grid(market):
    return TrendFollowing().run(market, fast=[6, 12, 24], slow=[48, 96, 144, 192])


def _cells(html: str) -> list[str]:
    return re.findall(r"<td>(.*?)</td>", html)


def test_one_account_shows_its_key_metrics(result):
    html = result._repr_html_()
    stats = result.stats()
    for key in KEY_METRICS:
        row = f"<th style='text-align:left'>{escape(METRIC_LABELS[key])}</th><td>{escape(format_metric(key, stats[key]))}</td>"
        assert row in html, key
    assert len(_cells(html)) == len(KEY_METRICS)


def test_a_grid_shows_the_first_rows_of_its_stats(grid):
    html = grid._repr_html_()
    stats = grid.stats()
    rows = re.findall(r"<tr>(.*?)</tr>", html.split("<tbody>")[1])
    assert len(rows) == 10 and len(stats) == 12
    first = re.findall(r"<td>(.*?)</td>", rows[0])
    label = stats.index[0]
    assert first[:2] == [str(label[0]), str(label[1])]
    assert first[2 + KEY_METRICS.index("sharpe")] == format_metric("sharpe", stats.iloc[0]["sharpe"])
    assert "First 10 of 12 columns" in html


def test_the_table_is_escaped(result):
    result.strategy_name = "<b>bold</b>"
    try:
        html = result._repr_html_()
    finally:
        result.strategy_name = "TrendFollowing"
    assert "<b>" not in html and "&lt;b&gt;bold" in html
    Page(html)  # well-formed enough to parse


def test_plot_is_equity_over_drawdown_on_one_time_axis(result):
    import plotly.graph_objects as go

    figure = result.plot()
    assert isinstance(figure, go.Figure)
    names = [trace.name for trace in figure.data]
    assert names == ["strategy", "buy and hold ETHUSDT", "drawdown"]
    assert {trace.xaxis for trace in figure.data} == {"x"}  # shared x axis
    assert [trace.yaxis for trace in figure.data] == ["y", "y", "y2"]
    top, bottom = figure.layout.yaxis.domain, figure.layout.yaxis2.domain
    assert bottom[1] < top[0]  # two rows, drawdown below
    equity = result.equity
    assert figure.data[0].y[-1] == pytest.approx(equity.iloc[-1], rel=1e-5)
    drawdown = equity / equity.cummax() - 1
    assert min(figure.data[2].y) == pytest.approx(drawdown.min() * 100, rel=1e-5)


def test_plot_of_one_column_of_a_grid(grid):
    figure = grid.plot(column=(12, 96))
    equity = grid.equity[(12, 96)]
    assert figure.data[0].y[-1] == pytest.approx(equity.iloc[-1], rel=1e-5)
    assert "(12, 96)" in figure.layout.title.text
    assert np.isfinite(figure.data[1].y[0])
