"""A newcomer's first runs must not mislead: warm-up, synthetic data, tiers, leverage, parameters,
overwrites, file kinds, and the command line on a real perpetual (candles, funding, mark, tiers)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

import backtest
from backtest import indicators
from backtest.cli import main
from backtest.engine.simulate import StopWarning, TierWarning
from backtest.strategy import Strategy, warm_up_bars
from strategies import TrendFollowing

XRP = "freqtrade/XRP_USDT_USDT-1h-futures.feather"
XRP_FUNDING = "freqtrade/XRP_USDT_USDT-8h-funding_rate.feather"
XRP_MARK = "freqtrade/XRP_USDT_USDT-1h-mark.feather"
CCXT_TIERS = "binance_leverage_tiers.json"


class Cross(Strategy):
    """Parameters written as backtesting.py users write them: plain class attributes."""

    fast = 10
    slow = 30
    threshold = 0.0
    portfolio = True  # a base-class setting, not a parameter
    BARS_PER_DAY = 24  # a constant, not a parameter

    def signals(self, market):
        fast, slow = indicators.ma(market.close, self.fast), indicators.ma(market.close, self.slow)
        return {"entries": fast > slow * (1 + self.threshold), "exits": fast < slow}


@pytest.fixture(scope="module")
def market():
    return backtest.load(backtest.sample_path("BTCUSDT"))[-600:]


# ----- parameters ------------------------------------------------------------------------------------


def test_plain_class_attributes_are_parameters_a_grid_can_vary(market):
    assert Cross.params() == {"fast": 10, "slow": 30, "threshold": 0.0}
    result = Cross().run(market, fast=[5, 10])
    assert list(result.stats().index) == [5, 10]
    # each column is the strategy with that value, not the default twice
    alone = Cross(fast=5).run(market).stats()
    assert result.stats().loc[5, "final_equity"] == pytest.approx(alone["final_equity"], rel=1e-12)
    assert result.stats().loc[5, "trades"] != result.stats().loc[10, "trades"]


def test_plain_parameters_are_typed_by_their_default():
    with pytest.raises(ValueError, match="parameter 'fast' must be an int, got 2.5"):
        Cross(fast=2.5).validate()
    Cross(threshold=1).validate()  # an int where a float is declared is fine
    with pytest.raises(ValueError, match="unknown parameter 'portfolio'"):
        Cross(portfolio=False)


# ----- warm-up -----------------------------------------------------------------------------------------


def test_a_window_longer_than_the_data_is_named_with_the_bars_it_needs(market):
    assert warm_up_bars(TrendFollowing()) == {"fast": 24, "slow": 120, "vol_window": 336}
    with pytest.warns(UserWarning) as caught:
        TrendFollowing().run(market[:200])
    text = [str(w.message) for w in caught]
    assert any("'vol_window'=336 needs 336 bars of history and the data has 200" in t for t in text)
    assert not any("'slow'" in t for t in text)  # 120 bars fit


def test_no_warm_up_warning_when_the_data_is_long_enough(market):
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        TrendFollowing(vol_window=100).run(market)


def test_the_cli_says_why_the_real_xrp_file_trades_nothing(shared_data, in_tmp, capsys):
    assert main(["run", "--data", str(shared_data / XRP)]) == 0
    err = capsys.readouterr().err
    assert "warning: TrendFollowing: parameter 'slow'=120 needs 120 bars" in err
    assert "'vol_window'=336" in err


# ----- synthetic data ------------------------------------------------------------------------------------


def test_the_sample_says_it_is_synthetic_and_real_data_does_not(shared_data):
    sample = backtest.load(backtest.sample_path("ETHUSDT"))
    assert sample.synthetic and "SYNTHETIC" in sample.description
    assert "(SYNTHETIC data)" in repr(sample) and "bars of 1h" in repr(sample)
    assert sample[:100].synthetic and sample.resample("4h").synthetic  # slices keep it
    real = backtest.load(shared_data / XRP)
    assert not real.synthetic and real.description is None


def test_data_info_names_synthetic_data(capsys):
    assert main(["data", "info", str(backtest.sample_path("SOLUSDT"))]) == 0
    out = capsys.readouterr().out
    assert "SYNTHETIC data" in out and "not real prices" in out


# ----- file kinds -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, expected", [
    (XRP_FUNDING, "funding-rate history, 91 payments every 8h"),
    (XRP_MARK, "mark-price candles, 100 bars"),
    (CCXT_TIERS, "maintenance-margin tiers for BTC/USDT:USDT, ETH/USDT:USDT, XRP/USDT:USDT"),
])
def test_data_info_detects_what_a_file_holds(shared_data, capsys, name, expected):
    assert main(["data", "info", str(shared_data / name)]) == 0
    assert expected in capsys.readouterr().out
    assert main(["data", "validate", str(shared_data / name)]) == 0


# ----- tiers ------------------------------------------------------------------------------------------------


def test_a_symbol_without_a_table_is_warned_about_and_labelled_as_flat(market):
    ohlcv = market.ohlcv
    unknown = backtest.Market(ohlcv, symbol="DOGEUSDT")
    entries = np.zeros(len(ohlcv), dtype=bool)
    entries[5] = True
    with pytest.warns(TierWarning, match="no maintenance-margin tier table for DOGEUSDT"):
        result = backtest.simulate(unknown, entries=entries, leverage=3)
    assert result.settings["tiers"].startswith("flat mmr 0.005")
    assert "DOGEUSDT" not in result.settings["tiers"].split("(")[0]


def test_ccxt_tier_file_loads_with_the_symbols_brackets(shared_data):
    path = shared_data / CCXT_TIERS
    from_ccxt = backtest.load_tiers(path, symbol="XRPUSDT")
    raw = json.loads(path.read_text())["XRP/USDT:USDT"]
    assert len(from_ccxt) == len(raw)
    np.testing.assert_allclose(from_ccxt["mmr"], [t["maintenanceMarginRate"] for t in raw])
    np.testing.assert_allclose(from_ccxt["maintenance_amount"], [float(t["info"]["cum"]) for t in raw])


# ----- leverage and stops -------------------------------------------------------------------------------------


def test_a_stop_beyond_the_liquidation_price_is_warned_about(market):
    entries = np.zeros(len(market), dtype=bool)
    entries[10] = True
    with pytest.warns(StopWarning, match=r"a 15.0% stop at 10x isolated, liquidated about 9.6%"):
        backtest.simulate(market, entries=entries, leverage=10, sl_stop=0.15)
    with warnings.catch_warnings():
        warnings.simplefilter("error", StopWarning)
        backtest.simulate(market, entries=entries, leverage=5, sl_stop=0.15)   # 19.6% away
        backtest.simulate(market, entries=entries, leverage=10, sl_stop=0.05)
        backtest.simulate(market, entries=entries, leverage=10, sl_stop=0.15, margin_mode="cross")


def test_a_stop_price_beyond_the_liquidation_price_is_warned_about(market):
    entries = np.zeros(len(market), dtype=bool)
    entries[10] = True
    level = pd.Series(market.close * 0.85, index=market.index)
    with pytest.warns(StopWarning, match="1 column"):
        backtest.simulate(market, entries=entries, leverage=10, sl_price=level)


def test_time_in_market_is_not_called_exposure(market):
    stats = TrendFollowing(vol_window=100).run(market).stats()
    assert "time_in_market" in stats.index and "exposure" not in stats.index
    assert 0.0 <= stats["time_in_market"] <= 1.0


def test_the_cli_says_what_leverage_meant(small_data, in_tmp, capsys):
    assert main(["run", "--data", str(small_data), "--param", "slow=48"]) == 0
    out = capsys.readouterr().out
    assert "leverage 3x sets the margin (initial margin = notional / 3, isolated)" in out
    assert "size_type=exposure: notional / equity" in out
    assert "x of equity (effective leverage)" in out


# ----- outputs -------------------------------------------------------------------------------------------------


def test_report_refuses_to_replace_a_file_unless_forced(market, tmp_path):
    result = TrendFollowing(vol_window=100).run(market)
    kept = tmp_path / "kept.html"
    kept.write_text("a report someone kept")
    with pytest.raises(FileExistsError, match="pass force=True"):
        result.report(kept)
    assert kept.read_text() == "a report someone kept"
    result.report(kept, force=True)
    assert "<html" in kept.read_text()


# ----- the command line on a real perpetual ------------------------------------------------------------------------


def test_cli_runs_candles_funding_mark_and_ccxt_tiers(shared_data, in_tmp, capsys):
    argv = ["run", "--data", str(shared_data / XRP), "--funding", str(shared_data / XRP_FUNDING),
            "--mark", str(shared_data / XRP_MARK), "--tiers", str(shared_data / CCXT_TIERS),
            "--param", "fast=5", "--param", "slow=20", "--param", "vol_window=24",
            "--json", "stats.json"]
    assert main(argv) == 0
    stats = json.loads((in_tmp / "stats.json").read_text())
    assert stats["trades"] > 0 and isinstance(stats["trades"], int)
    direct = TrendFollowing(fast=5, slow=20, vol_window=24, tiers=str(shared_data / CCXT_TIERS)).run(
        backtest.load(shared_data / XRP, funding=shared_data / XRP_FUNDING, mark=shared_data / XRP_MARK))
    assert stats["final_equity"] == pytest.approx(float(direct.stats()["final_equity"]), rel=1e-12)
    assert stats["funding_paid"] != 0.0  # the funding file was used
    assert direct.settings["tiers"] == "binance_leverage_tiers.json (XRPUSDT)"


@pytest.mark.parametrize("tiers, message", [
    ("nosuch.json", "--tiers nosuch.json: no such file"),
    ("DOGEUSDT", "no table shipped for this symbol; shipped: BTCUSDT, ETHUSDT, SOLUSDT, XRPUSDT"),
])
def test_bad_tiers_argument_is_one_line(in_tmp, capsys, tiers, message):
    assert main(["run", "--tiers", tiers]) == 2
    assert message in capsys.readouterr().err


def test_grid_json_and_gates_name_the_parameters(small_data, in_tmp, capsys):
    code = main(["run", "--data", str(small_data), "--param", "slow=48", "--grid", "fast=6,12",
                 "--grid", "leverage=1,3", "--json", "grid.json", "--fail-on", "trades>=0"])
    assert code == 1
    captured = capsys.readouterr()
    assert "[fast=6, leverage=1] total_return=" in captured.out
    assert "gate tripped: [fast=6, leverage=1] trades=" in captured.err
    payload = json.loads((in_tmp / "grid.json").read_text())
    params = [row["params"] for row in payload["combinations"]]
    assert params == [{"fast": 6, "leverage": 1}, {"fast": 6, "leverage": 3},
                      {"fast": 12, "leverage": 1}, {"fast": 12, "leverage": 3}]
    first = payload["combinations"][0]
    assert isinstance(first["stats"]["trades"], int) and isinstance(first["stats"]["liquidations"], int)
    assert "np.int64" not in captured.out + captured.err


# ----- cold start ----------------------------------------------------------------------------------------------------


def test_a_cold_engine_says_it_compiles_once(monkeypatch, capsys):
    from backtest.engine import simulate as module

    monkeypatch.setattr(module, "_compile_notice_given", False)
    monkeypatch.setattr(module, "engine_is_compiled", lambda: False)
    module._notice_first_compile()
    module._notice_first_compile()
    assert capsys.readouterr().err.count("compiling the engine, once") == 1


def test_the_engine_cache_is_detected_as_warm_after_a_run(market):
    from backtest.engine.simulate import engine_is_compiled

    Cross().run(market)
    assert engine_is_compiled()


# ----- the report says what the data and the settings are ------------------------------------------------------------


def test_the_report_names_synthetic_data_relative_source_and_plain_values(monkeypatch):
    from backtest.report import render_report
    from tests.conftest import REPO

    monkeypatch.chdir(REPO)
    market = backtest.load(backtest.sample_path("ETHUSDT"))[-24 * 60:]
    result = TrendFollowing(vol_window=100).run(market, fast=[6, 12], slow=[48])
    html = render_report(result)
    assert "on synthetic data" in html and 'id="synthetic-note"' in html
    assert "source: data/ETHUSDT-1h.parquet" in html
    assert "bars of 1h" in html and "fast=6, 12" in html
    for raw in ("np.int64", "np.float64", "0 days ", " days 0"):
        assert raw not in html
    assert "leverage 3x sets the margin" in html
    real = backtest.load(backtest.sample_path("ETHUSDT"))[-24 * 60:]
    real.synthetic, real.description = False, None
    assert "synthetic-note" not in render_report(TrendFollowing(vol_window=100).run(real))


def test_durations_read_as_days_and_hours():
    from backtest.report import duration_label, format_metric

    assert duration_label(pd.Timedelta("550 days 19:00:00")) == "550d 19h"
    assert duration_label(pd.Timedelta(0)) == "0m"
    assert format_metric("max_drawdown_duration", pd.Timedelta("2 days 01:00:00")) == "2d 1h"
