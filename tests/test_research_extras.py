"""Kelly leverage, trade-order reshuffling, the tiers of bootstrap paths and the stress command."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import backtest
from backtest.cli import main, parse_shock
from backtest.montecarlo import original_tiers, reshuffle_trades, trade_returns
from backtest.sizing import kelly_leverage
from backtest.strategy import Strategy


class EveryDay(Strategy):
    """A long opened every 24 bars and closed 12 bars later: trades never overlap."""

    fees = 0.0005

    def signals(self, market):
        bar = np.arange(len(market))
        return {"entries": bar % 24 == 0, "exits": bar % 24 == 12}


@pytest.fixture(scope="module")
def market():
    return backtest.load(backtest.sample_path("ETHUSDT"))[-24 * 60:]


def test_kelly_leverage_is_mean_over_variance():
    rng = np.random.default_rng(3)
    returns = pd.Series(rng.normal(0.0004, 0.01, 5000))
    expected = returns.mean() / returns.var(ddof=1)
    assert kelly_leverage(returns) == pytest.approx(expected, rel=1e-12)
    assert kelly_leverage(returns, fraction=0.5) == pytest.approx(expected / 2, rel=1e-12)
    assert np.isnan(kelly_leverage([0.01, 0.01, 0.01]))
    with pytest.raises(ValueError, match="at least 2 finite values"):
        kelly_leverage([0.01])


def test_kelly_leverage_maximizes_simulated_growth():
    """The growth rate of a levered stream E[log(1 + L r)] peaks near μ/σ² (small returns)."""
    rng = np.random.default_rng(7)
    returns = rng.normal(0.0002, 0.004, 200_000)
    kelly = kelly_leverage(returns)
    grid = np.linspace(0.2 * kelly, 1.8 * kelly, 81)
    growth = [np.log1p(lev * returns).mean() for lev in grid]
    assert grid[int(np.argmax(growth))] == pytest.approx(kelly, rel=0.05)


def test_reshuffled_trades_compound_to_the_runs_final_equity(market):
    result = EveryDay(leverage=3.0).run(market)
    returns = trade_returns(result)
    assert len(returns) == len(result.trades) > 20
    final = float(result.stats()["final_equity"])
    assert float(result.init_cash.iloc[0] * (1 + returns).prod()) == pytest.approx(final, rel=1e-9)
    table = reshuffle_trades(result, n_paths=300, seed=4)
    np.testing.assert_allclose(table["final_equity"], final, rtol=1e-9)
    # the history's own order is one of the orders: its deepest trade-to-trade drawdown lies
    # within the reshuffled range, and orders differ
    own = np.r_[1.0, np.cumprod(1 + returns.to_numpy())]
    own_drawdown = (1 - own / np.maximum.accumulate(own)).max()
    assert table["max_drawdown"].min() <= own_drawdown <= table["max_drawdown"].max()
    assert table["max_drawdown"].std() > 0
    again = reshuffle_trades(result, n_paths=300, seed=4)
    pd.testing.assert_frame_equal(table, again)
    assert (table["ruined"] == (table["min_equity"] < 0.5 * 10_000)).all()


def test_bootstrap_paths_are_margined_on_the_instruments_own_brackets(market):
    table = original_tiers(EveryDay(), market)
    pd.testing.assert_frame_equal(table, backtest.load_tiers("ETHUSDT"))
    assert original_tiers(EveryDay(mmr=0.01), market) is None
    mc = backtest.monte_carlo(EveryDay(), market, leverage=[2], n_paths=2, seed=1)
    assert len(mc.table) == 2


def test_parse_shock_names_bad_fields():
    name, shock = parse_shock("crash:at=2025-06-01,drop=0.3,bars=6,depth_factor=0.1")
    assert name == "crash" and shock.drop == 0.3 and shock.bars == 6 and shock.depth_factor == 0.1
    from backtest.cli import UsageError

    with pytest.raises(UsageError, match="did you mean 'drop'"):
        parse_shock("x:at=2025-06-01,dorp=0.3")
    with pytest.raises(UsageError, match="give drop"):
        parse_shock("x:at=2025-06-01")
    with pytest.raises(UsageError, match="drop is a fraction"):
        parse_shock("x:at=2025-06-01,drop=1.5")


def test_the_stress_command_prints_writes_json_and_gates(small_data, in_tmp, capsys):
    from backtest.stress import stress_test
    from strategies import TrendFollowing

    argv = ["stress", "--data", str(small_data), "--param", "slow=48", "--leverage", "1,20",
            "--shock", "crash:at=2025-12-10,drop=0.4,bars=3,wick=0.05"]
    assert main([*argv, "--json", "stress.json"]) == 0
    rows = json.loads((in_tmp / "stress.json").read_text())["scenarios"]
    expected = stress_test(TrendFollowing(slow=48), backtest.load(small_data),
                           {"crash": parse_shock("c:at=2025-12-10,drop=0.4,bars=3,wick=0.05")[1]},
                           leverage=[1, 20])
    assert [(r["scenario"], r["leverage"]) for r in rows] == list(expected.index)
    for row in rows:
        want = expected.loc[(row["scenario"], row["leverage"])]
        assert row["loss"] == pytest.approx(want["loss"], rel=1e-12)
        assert row["survives"] == int(want["survives"])
    assert main([*argv, "--fail-on", "loss>-1"]) == 1   # every row loses more than -100%
    assert "[crash, leverage 1] loss=" in capsys.readouterr().err
    assert main(["stress", "--data", str(small_data), "--leverage", "3"]) == 2
    assert "give at least one --shock" in capsys.readouterr().err


def _cells(html: str, table_id: str) -> dict:
    """{column: [data-value, ...]} of one table of a research page."""
    import re

    body = html.split(f'id="table-{table_id}"', 1)[1].split("</table>", 1)[0]
    out: dict = {}
    for column, value in re.findall(r'data-column="([^"]+)" data-value="([^"]*)"', body):
        out.setdefault(column, []).append(value)
    return out


def test_montecarlo_page_shows_the_summary_and_the_survival_curve(market, tmp_path):
    from backtest.report.research import survival_figure, wilson_interval, write_montecarlo_page

    mc = backtest.monte_carlo(EveryDay(), market, leverage=[1, 5, 40], n_paths=8, mean_block=24, seed=3)
    assert mc.kelly_leverage == pytest.approx(kelly_leverage(EveryDay().run(market, leverage=1.0).returns))
    path = write_montecarlo_page(mc, tmp_path / "mc.html", subject="EveryDay")
    html = path.read_text()
    summary = mc.summary()
    cells = _cells(html, "summary")
    np.testing.assert_allclose([float(v) for v in cells["p_ruin"]], summary["p_ruin"])
    np.testing.assert_allclose([float(v) for v in cells["final_equity_median"]],
                               summary["final_equity_median"], rtol=1e-12)
    assert 'id="chart-survival"' in html and "Plotly.newPlot" in html
    from backtest.report.interactive import plotly_js

    page = html.replace(plotly_js(), "")  # the library's own code mentions URLs it never loads
    assert "http://" not in page and "https://" not in page
    figure = survival_figure(summary, kelly=2.0)
    low, high = wilson_interval(summary["p_liquidation"], summary["paths"])
    assert figure["data"][1]["y"] == pytest.approx(list(summary["p_liquidation"]))
    assert figure["data"][0]["y"] == pytest.approx(list(np.r_[high, low[::-1]]), abs=1e-6)
    assert [s["x0"] for s in figure["layout"]["shapes"]] == [2.0, 1.0]   # Kelly and half


def test_wilson_interval_matches_its_formula_and_stays_in_range():
    from backtest.report.research import wilson_interval

    low, high = wilson_interval(np.array([0.0, 0.3, 1.0]), np.array([50, 50, 50]))
    z, n, p = 1.96, 50, 0.3
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert (low[1], high[1]) == pytest.approx((centre - half, centre + half))
    assert low[0] == 0.0 and high[2] == 1.0 and 0 < high[0] < 0.1 and 0.9 < low[2] < 1


def test_walkforward_page_has_folds_params_and_the_hindsight_benchmark(market, tmp_path):
    from backtest.report.research import write_walkforward_page
    from strategies import TrendFollowing

    wf = backtest.walk_forward(TrendFollowing(vol_window=48), market, train=24 * 20, test=24 * 10,
                               fast=[6, 12], slow=[48])
    full = TrendFollowing(vol_window=48).run(market, fast=[6, 12], slow=[48]).stats()
    best = full["sharpe"].idxmax()
    assert wf.in_sample_best_params == {"fast": best[0], "slow": 48}
    html = write_walkforward_page(wf, tmp_path / "wf.html").read_text()
    cells = _cells(html, "folds")
    assert [int(v) for v in cells["fast"]] == wf.folds["fast"].tolist()
    for part in ('id="chart-equity"', 'id="chart-params"', "in-sample best over the whole period"):
        assert part in html


def test_research_commands_write_their_pages(small_data, in_tmp):
    argv = {"montecarlo": ["--leverage", "1,3", "--paths", "4", "--block", "24"],
            "stress": ["--leverage", "1,3", "--shock", "crash:at=2025-12-10,drop=0.3,bars=3"],
            "walk-forward": ["--grid", "fast=6,12", "--train", "480", "--test", "240"]}
    for command, extra in argv.items():
        page = in_tmp / f"{command}.html"
        code = main([command, "--data", str(small_data), "--param", "slow=48",
                     "--param", "vol_window=48", *extra, "--report", str(page)])
        assert code == 0 and page.stat().st_size > 1_000_000   # plotly.js inlined
        assert main([command, "--data", str(small_data), *extra, "--report", str(page)]) == 2


def _flat_market(symbol: str, price: float, n: int = 200) -> backtest.Market:
    index = pd.date_range("2025-01-01", periods=n, freq="h", tz="UTC")
    bars = pd.DataFrame({"open": price, "high": price * 1.001, "low": price * 0.999, "close": price,
                         "volume": 1.0}, index=index)
    return backtest.Market(bars, symbol=symbol)


class HoldBoth(Strategy):
    fees = 0.0

    def signals(self, market):
        entries = np.zeros(len(market), dtype=bool)
        entries[0] = True
        return {"entries": entries}


def test_stress_portfolio_names_the_leg_that_killed_the_cross_account():
    from backtest.stress import Shock, stress_portfolio

    markets = backtest.Markets([_flat_market("BTCUSDT", 100.0), _flat_market("SOLUSDT", 10.0)])
    alt = {"SOLUSDT": Shock(at="2025-01-03", drop=0.6, bars=4)}
    table = stress_portfolio(HoldBoth(margin_mode="cross"), markets, {"alt crash": alt},
                             leverage=[1, 8])
    assert table.loc[("none", 8.0), "survives"] and table.loc[("alt crash", 1.0), "survives"]
    # 8x split over two legs: 4x of equity in SOL; a 60% fall takes 240% of the equity
    assert not table.loc[("alt crash", 8.0), "survives"]
    assert table.loc[("alt crash", 8.0), "trigger"] == "SOLUSDT"
    assert table.loc[("alt crash", 8.0), "liquidated_at"] >= pd.Timestamp("2025-01-03", tz="UTC")
    # at 1x (0.5x of equity in SOL) the account loses 30% of its cash on the alt leg, no fees
    assert table.loc[("alt crash", 1.0), "loss"] == pytest.approx(0.5 * 0.6, rel=0.02)
    assert table.loc[("none", 1.0), "loss"] == pytest.approx(0.0, abs=1e-9)
