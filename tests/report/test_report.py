"""The HTML report: self-contained, every section present, numbers equal to stats(), escaped."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pytest

import backtest
from backtest.report import render_report
from strategies import TrendFollowing

SECTIONS = ("header", "metrics", "equity", "underwater", "drawdowns", "monthly", "rolling",
            "leverage", "levels", "liquidations", "trades")
N_BARS = 24 * 90


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.metrics, self.external, self.scripts = set(), {}, [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if "data-metric" in attrs and attrs["data-metric"] not in self.metrics:
            self.metrics[attrs["data-metric"]] = attrs["data-value"]
        for key in ("src", "href"):
            value = attrs.get(key, "")
            if value and not value.startswith(("data:", "#")):
                self.external.append(value)
        if tag == "script":
            self.scripts.append(attrs)


@pytest.fixture(scope="module")
def market():
    return backtest.load(backtest.sample_path("ETHUSDT"))[-N_BARS:]


@pytest.fixture(scope="module")
def result(market):
    return TrendFollowing(fast=12, slow=48).run(market)


@pytest.fixture(scope="module")
def html(result):
    return render_report(result)


def _parse(html: str) -> _Collector:
    collector = _Collector()
    collector.feed(html)
    return collector


def test_every_section_is_present(html):
    ids = _parse(html).ids
    assert set(SECTIONS) <= ids


def test_no_external_resources(html):
    parsed = _parse(html)
    assert parsed.external == []
    assert "http://" not in html and "https://" not in html
    assert html.count("data:image/png;base64,") >= 6


def test_metric_values_equal_stats(result, html):
    stats = result.stats()
    shown = _parse(html).metrics
    for key in ("total_return", "sharpe", "max_drawdown", "trades", "liquidations", "funding_paid",
                "fees_paid", "max_effective_leverage", "win_rate", "profit_factor"):
        value = stats[key]
        if isinstance(value, float) and np.isnan(value):
            assert shown[key] == "nan"
        else:
            assert float(shown[key]) == pytest.approx(float(value), rel=1e-12), key


def test_strategy_name_and_parameters_are_escaped(result):
    result.strategy_name = "<script>alert('x')</script>"
    result.params = {"note": "<img src=x onerror=alert(1)>"}
    try:
        html = render_report(result)
    finally:
        result.strategy_name, result.params = "TrendFollowing", {}
    assert "<script>alert" not in html
    assert "&lt;script&gt;alert" in html
    assert "<img src=x" not in html


def test_grid_report_has_one_row_per_column(market):
    grid = TrendFollowing().run(market, fast=[12, 24], slow=[48, 96, 144])
    html = render_report(grid)
    rows = re.findall(r"<tr><td class=\"l\">", html.split('id="grid-table"')[1].split("</table>")[0])
    assert len(rows) == 6
    assert 'id="grid-heatmap"' in html
    assert set(SECTIONS) <= _parse(html).ids


def test_write_report_creates_the_file(result, tmp_path):
    path = result.report(tmp_path / "sub" / "r.html")
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def test_report_renders_in_headless_chromium(result, tmp_path):
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing on CI (.ci/run installs Debian's chromium)")
        pytest.skip("chromium not installed")
    path = result.report(tmp_path / "report.html")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0"]
    dom = subprocess.run([browser, *flags, "--dump-dom", path.as_uri()], capture_output=True,
                         text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert set(SECTIONS) <= _parse(dom.stdout).ids
    console = [line for line in dom.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == []
    shot = tmp_path / "shot.png"
    run = subprocess.run([browser, *flags, f"--screenshot={shot}", "--window-size=1280,2400",
                          path.as_uri()], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and shot.exists(), run.stderr[-2000:]
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)[..., :3]
    not_white = (pixels < 0.95).any(axis=2).mean()
    colours = len(np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0))
    assert not_white > 0.05 and colours > 50
