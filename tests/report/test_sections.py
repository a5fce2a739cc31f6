"""The report's sections beyond stats(): each number equals what the equity, records and
market give when computed by hand here."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import backtest
from backtest import levels
from backtest.report import render_report, sections

from .helpers import Page, figures_of, rows_of


@pytest.fixture(scope="module")
def new_year_page(new_year):
    return render_report(new_year)


def test_yearly_returns_equal_year_end_equity_and_prices(new_year, new_year_page):
    equity, market = new_year.equity, new_year.market
    init_cash = float(new_year.init_cash.iloc[0])
    last_2024 = equity.index[equity.index.year == 2024][-1]
    expected = {
        "2024": {"strategy": equity[last_2024] / init_cash - 1,
                 "buy_and_hold": market.close[last_2024] / market.open.iloc[0] - 1},
        "2025": {"strategy": equity.iloc[-1] / equity[last_2024] - 1,
                 "buy_and_hold": market.close.iloc[-1] / market.close[last_2024] - 1},
    }
    shown = rows_of(Page(new_year_page), "data-year", "data-yearly")
    assert set(shown) == {"2024", "2025"}
    for year, values in expected.items():
        for key, value in values.items():
            assert shown[year][key] == pytest.approx(value, rel=1e-12), (year, key)
        assert shown[year]["difference"] == pytest.approx(values["strategy"] - values["buy_and_hold"],
                                                          rel=1e-12)


def test_alpha_and_beta_equal_a_numpy_fit_on_buy_and_hold_returns(new_year, new_year_page):
    market = new_year.market
    close, first_open = market.close.to_numpy(), market.open.iloc[0]
    hold_returns = np.concatenate([[close[0] / first_open - 1], close[1:] / close[:-1] - 1])
    returns = new_year.returns.to_numpy()
    design = np.column_stack([np.ones_like(hold_returns), hold_returns])
    (intercept, slope), *_ = np.linalg.lstsq(design, returns, rcond=None)
    shown = Page(new_year_page).values("data-benchmark")
    assert float(shown["beta"]) == pytest.approx(slope, rel=1e-9)
    assert float(shown["alpha"]) == pytest.approx(intercept * 8760, rel=1e-8)
    assert float(shown["correlation"]) == pytest.approx(np.corrcoef(returns, hold_returns)[0, 1], rel=1e-9)
    assert float(shown["total_return"]) == pytest.approx(close[-1] / first_open - 1, rel=1e-12)
    hold = pd.Series(close / first_open)
    assert float(shown["max_drawdown"]) == pytest.approx((1 - hold / hold.cummax()).max(), rel=1e-12)


def test_trade_breakdowns_add_up_to_the_closed_trades(new_year, new_year_page):
    page = Page(new_year_page)
    stats = new_year.stats()
    closed = new_year.trades[new_year.trades["exit_reason"] != "end"]
    for attribute in ("data-reason", "data-side"):
        rows = rows_of(page, attribute, "data-col")
        assert sum(r["trades"] for r in rows.values()) == stats["trades"]
        assert sum(r["pnl"] for r in rows.values()) == pytest.approx(closed["pnl"].sum(), rel=1e-9)
    by_side = rows_of(page, "data-side", "data-col")
    longs = closed[closed["side"] == "long"]
    assert by_side["long"]["win_rate"] == pytest.approx((longs["pnl"] > 0).mean(), rel=1e-12)


def test_the_shown_excursions_are_the_trades_extremes(new_year, new_year_page):
    trades, market = new_year.trades, new_year.market
    closed = trades[trades["exit_reason"] != "end"]
    worst = []
    for _, trade in closed.iterrows():
        bars = market.ohlcv.loc[trade["entry_time"]:trade["exit_time"]]
        sign = 1 if trade["side"] == "long" else -1
        adverse = bars["low"].min() if sign > 0 else bars["high"].max()
        worst.append(sign * (adverse / trade["entry_price"] - 1))
    shown = Page(new_year_page).values("data-excursion")
    assert float(shown["worst_mae"]) == pytest.approx(min(worst), rel=1e-12)


def test_the_drawdown_table_equals_result_drawdowns(new_year):
    expected = new_year.drawdowns(top=5)
    table = sections.drawdown_table(new_year.equity, 5)
    pd.testing.assert_frame_equal(table[["peak", "valley", "recovery"]].astype("datetime64[ns, UTC]"),
                                  expected[["peak", "valley", "recovery"]].astype("datetime64[ns, UTC]"))
    np.testing.assert_allclose(table["depth"], expected["depth"], rtol=1e-12)
    assert (table["duration"] == expected["duration"]).all()


def test_the_monthly_heatmap_is_centred_on_zero(new_year, new_year_page):
    heatmap = figures_of(new_year_page)["chart-monthly"]["data"][0]
    monthly = sections.monthly_returns(new_year.equity, float(new_year.init_cash.iloc[0])) * 100
    largest = np.nanmax(np.abs(monthly.to_numpy()))
    assert heatmap["zmid"] == 0 and heatmap["zmin"] == -heatmap["zmax"]
    assert heatmap["zmax"] == pytest.approx(largest, rel=1e-12)
    scale = heatmap["colorscale"]
    assert scale[0][1] != scale[-1][1] and scale[0][0] == 0.0 and scale[-1][0] == 1.0


def test_symmetric_limit():
    assert sections.symmetric_limit([[-3.0, 1.0], [np.nan, 2.0]]) == 3.0
    assert sections.symmetric_limit([[np.nan]]) == 1.0


def test_the_price_window_says_it_shows_the_first_liquidation(liquidated):
    html = render_report(liquidated)
    time = liquidated.liquidations["time"].iloc[0]
    assert f"around the first liquidation at {time:%Y-%m-%d %H:%M} UTC" in html
    window = figures_of(html)["chart-window"]
    assert any(trace["name"] == "liquidations" for trace in window["data"])


def test_the_price_window_otherwise_shows_the_deepest_drawdown_valley(result):
    html = render_report(result)
    equity = result.equity
    valley = (equity / equity.cummax()).idxmin()
    assert f"around the deepest drawdown valley at {valley:%Y-%m-%d %H:%M} UTC" in html
    window, _ = sections.price_window(result.market.index, [], equity)
    assert window.start <= result.market.index.get_loc(valley) < window.stop
    assert window.stop - window.start == sections.WINDOW_BARS


def test_levels_on_the_prefix_equal_levels_on_the_whole_market(market):
    full = levels.support_resistance(market)
    stop = len(market) - 700
    prefix = sections.levels_until(market, stop)
    assert len(prefix) == stop
    pd.testing.assert_frame_equal(prefix, full.iloc[:stop])


def test_the_window_gets_the_levels_of_its_own_bars(market):
    from backtest.report import _window_levels

    window = slice(len(market) - 900, len(market) - 660)
    shown = _window_levels(market, window)
    pd.testing.assert_frame_equal(shown, levels.support_resistance(market).iloc[window])


def test_buy_and_hold_starts_at_the_first_open(market):
    hold = sections.buy_and_hold(market.open, market.close, 1000.0)
    assert hold.iloc[0] == pytest.approx(1000.0 * market.close.iloc[0] / market.open.iloc[0])


def test_bars_per_year_follow_the_bar_frequency():
    assert sections.bars_per_year(pd.Timedelta("1min")) == 525_600
    assert sections.bars_per_year(pd.Timedelta("8h")) == 1095
    assert np.isnan(sections.bars_per_year(pd.Timedelta(0)))


def test_the_conventions_state_what_stats_does(result):
    html = render_report(result)
    conventions = html[html.index('<section id="conventions">'):]
    assert "8760 bars per year" in conventions and "365 days" in conventions
    assert "positive fraction" in conventions and "fees" in conventions
    assert result.stats()["max_drawdown"] >= 0


def test_a_report_of_a_run_without_trades():
    market = backtest.load(backtest.sample_path("BTCUSDT"))[-200:]
    result = backtest.simulate(market, entries=np.zeros(len(market), dtype=bool))
    for interactive in (True, False):
        html = render_report(result, interactive=interactive)
        assert "No closed trades." in html
