"""The HTML report: self-contained (offline), every section present, numbers equal to stats(),
escaped; interactive by default, static on request; small enough for very long runs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import numpy as np
import pandas as pd
import pytest

import backtest
from backtest.report import render_report, write_report
from backtest.report.interactive import plotly_js
from strategies import TrendFollowing

from .helpers import Page, figures_of

SECTIONS = ("header", "metrics", "equity", "underwater", "drawdowns", "yearly", "monthly",
            "benchmark", "rolling", "leverage", "levels", "trade-analysis", "liquidations",
            "trades", "conventions")
CHARTS = ("chart-equity", "chart-underwater", "chart-monthly", "chart-rolling", "chart-leverage",
          "chart-window", "chart-mae")
OFFLINE_TRACES = {"scatter", "heatmap", "candlestick"}  # none of them loads tiles or maps
MAX_BYTES = 6_000_000


@pytest.fixture(scope="module")
def html(result):
    return render_report(result)


@pytest.fixture(scope="module")
def static(result):
    return render_report(result, interactive=False)


def _without_plotly(html: str) -> str:
    assert html.count(plotly_js()) == 1  # inlined once
    return html.replace(plotly_js(), "")


def test_every_section_is_present(html, static):
    for page in (html, static):
        assert set(SECTIONS) <= Page(page).ids


def test_the_interactive_page_has_one_plotly_chart_per_figure(html):
    page = Page(html)
    assert set(CHARTS) <= page.ids
    assert set(figures_of(html)) == set(CHARTS)


def test_no_external_resources(html):
    page = Page(html)
    assert page.external == []  # every src/href is inline
    assert all("src" not in script for script in page.scripts)
    ours = _without_plotly(html)  # plotly.js carries URLs in licence comments and map code
    assert "http://" not in ours and "https://" not in ours
    assert not re.search(r"\bfetch\s*\(|XMLHttpRequest|import\s*\(", ours)
    types = {trace["type"] for figure in figures_of(html).values() for trace in figure["data"]}
    assert types <= OFFLINE_TRACES


def test_the_static_page_has_no_javascript_and_no_network(static):
    page = Page(static)
    assert page.scripts == [] and "<script" not in static
    assert page.external == []
    assert "http://" not in static and "https://" not in static
    assert static.count("data:image/png;base64,") >= 7


def test_the_interactive_page_says_how_to_get_the_static_one(html):
    note = html[html.index("<noscript>"):html.index("</noscript>")]
    assert "interactive=False" in note


def test_metric_values_equal_stats(result, html, static):
    stats = result.stats()
    for page in (html, static):
        shown = Page(page).values("data-metric")
        for key in ("total_return", "sharpe", "max_drawdown", "trades", "liquidations",
                    "funding_paid", "fees_paid", "max_effective_leverage", "win_rate",
                    "profit_factor"):
            value = stats[key]
            if isinstance(value, float) and np.isnan(value):
                assert shown[key] == "nan"
            else:
                assert float(shown[key]) == pytest.approx(float(value), rel=1e-12), key


@pytest.mark.parametrize("interactive", [True, False])
def test_strategy_name_and_parameters_are_escaped(result, interactive):
    result.strategy_name = "<script>alert('x')</script>"
    result.params = {"note": "<img src=x onerror=alert(1)>"}
    try:
        html = render_report(result, interactive=interactive)
    finally:
        result.strategy_name, result.params = "TrendFollowing", {}
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert" in html
    assert "<img src=x" not in html


def test_the_figure_data_cannot_close_its_script_element(html):
    start = html.index('id="report-figures">')
    data = html[start + len('id="report-figures">'):html.index("</script>", start)]
    assert "<" not in data and ">" not in data


@pytest.mark.parametrize("interactive", [True, False])
def test_grid_report_has_one_row_per_column(market, interactive):
    grid = TrendFollowing().run(market, fast=[12, 24], slow=[48, 96, 144])
    html = render_report(grid, interactive=interactive)
    rows = re.findall(r"<tr><td class=\"l\">", html.split('id="grid-table"')[1].split("</table>")[0])
    assert len(rows) == 6
    assert 'id="grid-heatmap"' in html
    assert set(SECTIONS) <= Page(html).ids
    if interactive:
        heatmap = figures_of(html)["grid-heatmap"]["data"][0]
        assert heatmap["type"] == "heatmap" and np.shape(heatmap["z"]) == (2, 3)
        assert heatmap["x"] == ["48", "96", "144"] and heatmap["y"] == ["12", "24"]


def test_a_portfolio_labels_each_liquidation_with_its_leg():
    markets = backtest.Markets([_walk(400, "AAAUSDT", seed=1),
                                _walk(400, "BBBUSDT", seed=2, crash_at=300)])
    entries = pd.DataFrame(False, index=markets.index, columns=list(markets.symbols))
    entries.iloc[10] = True
    result = backtest.simulate(markets, entries=entries, size=0.4, leverage=10.0, group_by=True,
                               margin_mode="cross", funding=False)
    assert result.liquidation_triggers("account")["symbol"].tolist() == ["BBBUSDT"]
    assert result.stats()["liquidations"] >= 1
    html = render_report(result)
    equity = figures_of(html)["chart-equity"]["data"]
    liquidations = next(trace for trace in equity if trace["name"] == "liquidations")
    assert "BBBUSDT leg" in liquidations["text"]
    assert {"instruments", *SECTIONS} <= Page(html).ids
    assert "BBBUSDT" in render_report(result, interactive=False)


@pytest.mark.parametrize("interactive", [True, False])
def test_write_report_creates_the_file(result, tmp_path, interactive):
    path = result.report(tmp_path / "sub" / "r.html", interactive=interactive)
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>")
    assert ("<script" in text) == interactive
    assert [p.name for p in path.parent.iterdir()] == ["r.html"]  # no temporary file left


def test_the_sample_report_stays_under_6_mb(tmp_path):
    result = TrendFollowing().run(backtest.load(backtest.sample_path("ETHUSDT")))
    path = write_report(result, tmp_path / "sample.html")
    assert path.stat().st_size < MAX_BYTES


def _walk(n_bars, symbol, seed, freq="1h", crash_at=None):
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.standard_t(4, n_bars) * 0.002))
    open_ = np.r_[close[0], close[:-1]]
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0, 0.001, n_bars)))
    if crash_at is not None:
        low[crash_at] *= 0.5  # a wick deep enough to liquidate a 10x long
    index = pd.date_range("2020-01-01", periods=n_bars, freq=freq, tz="UTC")
    frame = pd.DataFrame({"open": open_, "high": np.maximum(open_, close) * 1.0005, "low": low,
                          "close": close, "volume": 1.0}, index=index)
    return backtest.Market(frame, symbol=symbol)


def test_a_million_bar_report_stays_under_6_mb(tmp_path):
    """Lines are downsampled (spikes kept), trade markers capped: the size does not grow with
    the bars."""
    market = _walk(1_000_000, "BTCUSDT", seed=7, freq="1min")
    close = market.close
    fast, slow = close.rolling(30).mean(), close.rolling(300).mean()
    up, down = fast > slow, fast < slow
    crossed_up, crossed_down = up & ~up.shift(1, fill_value=False), down & ~down.shift(1, fill_value=False)
    result = backtest.simulate(market, entries=crossed_up, exits=crossed_down,
                               short_entries=crossed_down, short_exits=crossed_up)
    assert result.stats()["trades"] > 1000
    path = write_report(result, tmp_path / "long.html")
    assert path.stat().st_size < MAX_BYTES
    equity = figures_of(path.read_text(encoding="utf-8"))["chart-equity"]["data"][0]
    assert len(equity["x"]) <= 2002


# ----- in a browser -----------------------------------------------------------------------------


def _chromium() -> str | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing on CI (.ci/run installs Debian's chromium)")
        pytest.skip("chromium not installed")
    return browser


def _offline_chromium(browser, tmp_path, *args) -> subprocess.CompletedProcess:
    """Headless Chromium with the network unreachable (every host unresolvable, a proxy to a
    closed port), console messages on stderr."""
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--host-resolver-rules=MAP * ~NOTFOUND", "--proxy-server=127.0.0.1:9",
             f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0"]
    return subprocess.run([browser, *flags, *args], capture_output=True, text=True, timeout=120)


def _console_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines()
            if "CONSOLE" in line or "Uncaught" in line or "net::ERR" in line]


def test_the_interactive_report_renders_offline_in_headless_chromium(result, tmp_path):
    browser = _chromium()
    path = result.report(tmp_path / "report.html")
    dom = _offline_chromium(browser, tmp_path, "--dump-dom", path.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert _console_errors(dom.stderr) == []
    assert set(SECTIONS) <= Page(dom.stdout).ids
    for chart in CHARTS:  # plotly drew each one: its container and SVG are in the DOM
        start = dom.stdout.index(f'id="{chart}"')
        inside = dom.stdout[start:dom.stdout.index("</section>", start)]
        assert "plot-container" in inside and "main-svg" in inside, chart
    shot = tmp_path / "shot.png"
    run = _offline_chromium(browser, tmp_path, f"--screenshot={shot}", "--window-size=1280,2400",
                            path.as_uri())
    assert run.returncode == 0 and shot.exists(), run.stderr[-2000:]
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)[..., :3]
    not_white = (pixels < 0.95).any(axis=2).mean()
    colours = len(np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0))
    assert not_white > 0.05 and colours > 50


def test_the_static_report_renders_in_headless_chromium(result, tmp_path):
    browser = _chromium()
    path = result.report(tmp_path / "static.html", interactive=False)
    dom = _offline_chromium(browser, tmp_path, "--dump-dom", path.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert _console_errors(dom.stderr) == []
    assert set(SECTIONS) <= Page(dom.stdout).ids
    assert "plot-container" not in dom.stdout
