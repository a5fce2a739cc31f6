"""No silent wrong results: undefined metrics, non-boolean signals, misaligned hook outputs,
unbounded constants, data that cannot be right, look-ahead."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

import backtest
from backtest import Strategy
from backtest.report import render_report
from backtest.result import undefined_metrics

from .conftest import assert_bad_input, flat, random_market, signal_at

NO_TRADES = ("from backtest import Strategy\n"
             "import numpy as np\n"
             "class Idle(Strategy):\n"
             "    def signals(self, market):\n"
             "        return {'entries': np.zeros(len(market), dtype=bool)}\n")


# ----- 5. undefined metrics ------------------------------------------------------------------------


def test_flat_equity_has_undefined_ratios_never_infinite():
    result = backtest.simulate(random_market(1), entries=np.zeros(300, dtype=bool))
    stats = result.stats()
    for key in ("sharpe", "sortino", "calmar", "win_rate", "profit_factor", "expectancy"):
        assert np.isnan(stats[key]), key
    assert undefined_metrics(stats)["sharpe"] == "the equity never moved (no return variance)"
    assert undefined_metrics(stats)["win_rate"] == "no closed trades"


def test_a_gate_on_an_undefined_metric_trips_with_the_reason(small_data, in_tmp, cli):
    (in_tmp / "idle.py").write_text(NO_TRADES)
    code, _, err = cli("run", "idle.py:Idle", "--data", small_data, "--fail-on", "sharpe<0.5")
    assert code == 1
    assert "sharpe is undefined (the equity never moved (no return variance))" in err
    code, _, err = cli("run", "idle.py:Idle", "--data", small_data, "--fail-on", "win_rate<0.4",
                       "--force")
    assert code == 1 and "win_rate is undefined (no closed trades)" in err


def test_undefined_metrics_can_be_let_through_on_request(small_data, in_tmp, cli):
    (in_tmp / "idle.py").write_text(NO_TRADES)
    code, _, _ = cli("run", "idle.py:Idle", "--data", small_data, "--fail-on", "sharpe<0.5",
                     "--undefined", "pass")
    assert code == 0


def test_json_keeps_infinity_and_says_why_a_metric_is_missing(small_data, in_tmp, cli):
    (in_tmp / "idle.py").write_text(NO_TRADES)
    assert cli("run", "idle.py:Idle", "--data", small_data, "--json", "s.json")[0] == 0
    stats = json.loads((in_tmp / "s.json").read_text())
    assert stats["sharpe"] is None
    assert stats["undefined"]["sharpe"].startswith("the equity never moved")
    from backtest.cli import stats_json

    assert json.loads(stats_json(pd.Series({"profit_factor": np.inf})))["profit_factor"] == "inf"


def test_the_best_column_of_a_grid_ignores_columns_with_undefined_metrics():
    market = random_market(4, 400, vol=0.02)
    entries = np.zeros((400, 2), dtype=bool)
    entries[10, 1] = True  # column 1 trades, column 0 never does
    exits = np.zeros((400, 2), dtype=bool)
    exits[200, 1] = True
    result = backtest.simulate(market, entries=entries, exits=exits, funding=False)
    assert np.isnan(result.stats().loc[0, "sharpe"])
    html = render_report(result, metric="sharpe")
    assert "Best column" in html or "best" in html.lower()
    import re

    best = re.search(r"data-best-label=\"([^\"]*)\"", html)
    assert best is not None and best.group(1) == "1"


# ----- 6. signals that are not booleans ------------------------------------------------------------


class Shifted(Strategy):
    def signals(self, market):
        up = market.close > market.open
        return {"entries": up.shift(1), "exits": ~up}


class Strings(Strategy):
    def signals(self, market):
        return {"entries": pd.Series(["False"] * len(market), index=market.index)}


def test_a_shifted_signal_with_nan_is_an_error_naming_the_hook_and_key():
    with pytest.raises(ValueError, match=r"Shifted.signals\(\): 'entries' contains NaN at bar 0 "
                                         r".*fill_value=False"):
        Shifted().run(random_market(2, 100))


def test_a_signal_of_strings_is_an_error_on_both_paths():
    market = random_market(2, 100)
    with pytest.raises(ValueError, match=r"Strings.signals\(\): 'entries' holds 'False' \(str\)"):
        Strings().run(market)
    with pytest.raises(ValueError, match=r"entries holds 'False' \(str\) at bar 0"):
        backtest.simulate(market, entries=np.array(["False"] * 100, dtype=object))


@pytest.mark.parametrize("values", [np.r_[np.nan, np.ones(99)], np.r_[None, [True] * 99]])
def test_nan_signals_are_an_error_in_simulate(values):
    with pytest.raises(ValueError, match="entries contains (NaN|None) at bar 0"):
        backtest.simulate(random_market(2, 100), entries=values)


def test_zero_one_integers_are_signals():
    market = random_market(2, 100)
    ints = backtest.simulate(market, entries=signal_at(100, 5).astype(int))
    bools = backtest.simulate(market, entries=signal_at(100, 5))
    assert ints.equity.equals(bools.equity)


# ----- 7. hook outputs with another index ----------------------------------------------------------


class Reversed(Strategy):
    def signals(self, market):
        entries = pd.Series(signal_at(len(market), 5, 40), index=market.index)
        return {"entries": entries.iloc[::-1], "exits": entries.shift(10, fill_value=False)}


class Elsewhere(Strategy):
    def signals(self, market):
        index = market.index + pd.Timedelta(minutes=30)
        return {"entries": pd.Series(signal_at(len(market), 5), index=index)}


def test_a_series_in_another_order_is_aligned_by_index_on_both_paths():
    market = random_market(3, 100)
    in_order = pd.Series(signal_at(100, 5, 40), index=market.index)
    exits = in_order.shift(10, fill_value=False)
    expected = backtest.simulate(market, entries=in_order, exits=exits)
    reversed_ = backtest.simulate(market, entries=in_order.iloc[::-1], exits=exits)
    assert reversed_.equity.equals(expected.equity)
    strategy = Reversed(fees=0.0, funding=False).run(market)
    direct = backtest.simulate(market, entries=in_order, exits=exits, fees=0.0, funding=False)
    np.testing.assert_array_equal(strategy.equity.to_numpy(), direct.equity.to_numpy())


def test_a_series_on_other_times_is_an_error_on_both_paths():
    market = random_market(3, 100)
    with pytest.raises(ValueError, match=r"Elsewhere.signals\(\): entries is not aligned"):
        Elsewhere().run(market)
    other = pd.Series(signal_at(100, 5), index=market.index + pd.Timedelta(minutes=30))
    with pytest.raises(ValueError, match="entries is not aligned with the market"):
        backtest.simulate(market, entries=other)


# ----- 8. an empty --data -----------------------------------------------------------------------------


def test_an_empty_data_path_is_an_error_not_the_sample(in_tmp, cli):
    code, out, err = cli("run", "--data", "")
    assert_bad_input(code, err, "--data is empty")
    assert out == ""


# ----- 9. unbounded constants ------------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "message"), [
    (dict(funding=5.0), r"funding=5.0: a constant rate per 8 h must be within ±0.05"),
    (dict(funding=1e300), r"must be within ±0.05"),
    (dict(fees=np.nan), "fees contains NaN"),
    (dict(slippage=np.full(50, np.nan)), "slippage contains NaN"),
    (dict(sl_stop=0.0), r"sl_stop must be a fraction in \(0, 1\)"),
    (dict(tp_stop=0.0), r"tp_stop must be a fraction above 0"),
    (dict(trail_stop=1.0), r"trail_stop must be a fraction in \(0, 1\)"),
])
def test_out_of_range_constants_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        backtest.simulate(flat(50), entries=signal_at(50, 1), **kwargs)


def test_leverage_per_bar_is_refused_instead_of_becoming_columns():
    market = flat(50)
    with pytest.raises(ValueError, match="leverage takes one value per column"):
        backtest.simulate(market, entries=signal_at(50, 1),
                          leverage=pd.Series(2.0, index=market.index))
    with pytest.raises(ValueError, match="leverage takes one value per column"):
        backtest.simulate(market, entries=signal_at(50, 1), leverage=np.full(50, 2.0))
    assert backtest.simulate(market, entries=signal_at(50, 1), leverage=[1.0, 2.0]).equity.shape == (50, 2)


def test_a_reversed_market_is_refused():
    with pytest.raises(ValueError, match="step -1 would reverse or skip bars"):
        flat(10)[::-1]


def test_a_one_bar_market_cannot_be_simulated():
    with pytest.raises(ValueError, match=r"market has 1 bar\(s\): a simulation needs at least 2"):
        backtest.simulate(flat(10)[:1], entries=signal_at(1, 0))


def test_an_order_larger_than_the_visible_book_is_rejected_not_filled_at_31x():
    index = pd.date_range("2025-01-01", periods=3, freq="1h", tz="UTC")
    market = backtest.Market(pd.DataFrame(100.0, index=index, columns=["open", "high", "low", "close"]),
                             depth=pd.Series(400e6, index=index))
    result = backtest.simulate(market, entries=signal_at(3, 0), init_cash=1e12, timing="close")
    assert result.orders["reason"].tolist() == ["exceeds_depth"]
    capped = backtest.simulate(market, entries=signal_at(3, 0), init_cash=1e12, timing="close",
                               size=1.0, size_type="exposure")
    order = capped.orders.iloc[0]
    assert order["status"] == "filled"
    assert order["qty"] * order["price"] == pytest.approx(200e6)  # one side of the book
    assert order["price"] == pytest.approx(101.0)  # 2% × 200M / 400M: 1% on average


def test_notional_above_the_top_bracket_is_rejected():
    result = backtest.simulate(flat(3), entries=signal_at(3, 0), size=2e9, size_type="notional",
                               tiers="BTCUSDT", init_cash=5e9, timing="close")
    assert result.orders["reason"].tolist() == ["exceeds_max_notional"]


# ----- 10. data that cannot be right -----------------------------------------------------------------


def _bars(n=48):
    index = pd.date_range("2025-01-01", periods=n, freq="1h", tz="UTC")
    return pd.DataFrame({"open": 100.0, "high": 101.0, "low": 99.0, "close": 100.0}, index=index)


def test_a_funding_file_from_another_year_warns_with_its_coverage(tmp_path):
    funding = tmp_path / "funding.csv"
    funding.write_text("fundingTime,fundingRate\n" + "".join(
        f"{1893456000000 + k * 28_800_000},0.0001\n" for k in range(10)))  # 2030
    data = tmp_path / "bars.csv"
    _bars().reset_index().rename(columns={"index": "timestamp"}).to_csv(data, index=False)
    with pytest.warns(backtest.DataWarning, match=r"the funding series covers 0 of 48 bars \(0%\)"):
        backtest.load(data, funding=funding)


def test_a_mark_file_offset_by_half_a_bar_warns_it_covers_nothing():
    frame = _bars()
    mark = frame.copy()
    mark.index = mark.index + pd.Timedelta(minutes=30)
    with pytest.warns(backtest.DataWarning, match="the mark price series covers 0 of 48 bars"):
        backtest.Market(frame, mark=mark)


def test_a_mark_price_far_from_the_traded_price_is_refused_unless_told():
    frame = _bars()
    mark = frame * 100
    with pytest.raises(backtest.DataError, match=r"column open, row 1: mark open 10000 is 9900% "
                                                 r"away from the traded open 100"):
        backtest.Market(frame, mark=mark)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert backtest.Market(frame, mark=mark, max_mark_divergence=None).mark is not None


def test_mixed_epoch_units_are_an_error_naming_the_row(tmp_path):
    path = tmp_path / "mixed.csv"
    path.write_text("timestamp,open,high,low,close\n"
                    "1735689600000,1,2,0.5,1.5\n1735693200,1,2,0.5,1.5\n1735696800000,1,2,0.5,1.5\n")
    with pytest.raises(backtest.DataError, match=r"mixed.csv: column timestamp, row 2 \(line 3 of "
                                                 r"the file\): epoch timestamps mix units"):
        backtest.load(path)


def test_epoch_seconds_after_2286_are_an_error_not_1970(tmp_path):
    path = tmp_path / "far.csv"
    path.write_text("timestamp,open,high,low,close\n"
                    "11000000000,1,2,0.5,1.5\n11000003600,1,2,0.5,1.5\n")
    with pytest.raises(backtest.DataError, match=r"row 1 .*read as ms gives 1970-05-08.*outside 2000-2100"):
        backtest.load(path)


# ----- 11. look-ahead ------------------------------------------------------------------------------


PEEKING = ("from backtest import Strategy\n"
           "class Peek(Strategy):\n"
           "    leverage = 3.0\n"
           "    def signals(self, market):\n"
           "        up = market.close.shift(-1) > market.close\n"
           "        return {'entries': up.fillna(False), 'exits': ~up.fillna(False)}\n")


def test_check_lookahead_finds_a_peek_into_the_next_bar(small_data, in_tmp, cli):
    (in_tmp / "peek.py").write_text(PEEKING)
    code, out, _ = cli("check-lookahead", "peek.py:Peek", "--data", small_data)
    assert code == 1
    assert "look-ahead: Peek 'entries' at bar" in out and "uses later data" in out


def test_check_lookahead_passes_the_example_strategies(small_data, in_tmp, cli):
    code, out, _ = cli("check-lookahead", "strategies.trend:TrendFollowing", "--data", small_data,
                       "--param", "slow=48")
    assert code == 0 and "no look-ahead found" in out


def test_an_absurd_return_warns_that_look_ahead_is_likely(small_data, in_tmp, cli):
    (in_tmp / "peek.py").write_text(PEEKING.replace("leverage = 3.0", "leverage = 20.0"))
    code, _, err = cli("run", "peek.py:Peek", "--data", small_data)
    assert code == 0
    assert "look-ahead likely" in err and "check-lookahead" in err


def test_lookahead_check_from_python():
    class Peek(Strategy):
        def signals(self, market):
            return {"entries": (market.close.shift(-1) > market.close).fillna(False)}

    class Honest(Strategy):
        def signals(self, market):
            return {"entries": market.close > market.close.shift(1, fill_value=np.inf)}

    market = random_market(5, 300)
    assert Peek().check_lookahead(market)
    assert Honest().check_lookahead(market) == []
