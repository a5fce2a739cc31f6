"""Walk-forward: folds, the choice on the train window only, capital carried, no entry early."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import backtest
from backtest.strategy import Param, Strategy
from backtest.walkforward import _trading_from, fold_windows


class Direction(Strategy):
    """Enter at the first bar (long or short) and hold: the grid chooses the direction."""

    side = Param("long", choices=("long", "short"))
    window: int = 10

    def signals(self, market):
        trend = market.close > market.close.rolling(self.window).mean()
        key = "entries" if self.side == "long" else "short_entries"
        return {key: trend if self.side == "long" else ~trend}


def _trending(n_bars=1200, seed=0, drift=0.001):
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(drift + rng.normal(0.0, 0.003, n_bars)))
    open_ = np.r_[close[0], close[:-1]]
    spread = np.abs(rng.normal(0.0, 0.001, n_bars)) * close
    frame = pd.DataFrame({"open": open_, "high": np.maximum(open_, close) + spread,
                          "low": np.minimum(open_, close) - spread, "close": close},
                         index=pd.date_range("2024-01-01", periods=n_bars, freq="1h", tz="UTC"))
    return backtest.Market(frame, symbol="UP")


def test_rolling_and_anchored_windows():
    assert fold_windows(100, train=40, test=20) == [(0, 40, 60), (20, 60, 80), (40, 80, 100)]
    assert fold_windows(100, train=40, test=30, step=20, anchored=True) == \
        [(0, 40, 70), (0, 60, 90), (0, 80, 100)]
    with pytest.raises(ValueError, match="exceed the data"):
        fold_windows(50, train=40, test=20)


def test_an_uptrend_is_traded_long_out_of_sample_with_capital_carried():
    market = _trending()
    wf = backtest.walk_forward(Direction(leverage=2.0), market, train=300, test=150,
                               side=["long", "short"], window=[5, 20])
    folds = wf.folds
    assert len(folds) == 6 and (folds["side"] == "long").all()
    np.testing.assert_allclose(folds["start_equity"].iloc[1:], folds["end_equity"].iloc[:-1])
    assert folds["out_of_sample"].notna().all() and (folds["out_of_sample"] > 0).all()
    # the stitched equity covers exactly the test windows, and ends where the last fold ended
    assert wf.equity.index.equals(market.index[300:])
    assert wf.equity.iloc[-1] == folds["end_equity"].iloc[-1]
    assert np.isfinite(wf.degradation())


def test_no_entry_before_the_test_window_opens():
    market = _trending()
    opens = market.index[400]
    trader = _trading_from(Direction, opens)(window=5)
    trades = trader.run(market).trades
    assert len(trades) > 0 and (trades["entry_time"] > opens).all()  # filled after the signal
    unmasked = Direction(window=5).run(market).trades
    assert unmasked["entry_time"].min() < opens  # the same strategy alone enters earlier


def test_changing_the_future_never_changes_a_fold_choice():
    market = _trending(seed=3, drift=0.0)
    grid = dict(side=["long", "short"], window=[5, 10, 40])
    base = backtest.walk_forward(Direction(), market, train=300, test=200, **grid).folds
    rng = np.random.default_rng(1)
    for fold, row in base.iterrows():
        cut = market.index.get_loc(row["test_start"])
        frame = market.ohlcv.copy()
        shock = np.exp(np.cumsum(rng.normal(0.0, 0.05, len(frame) - cut)))  # any other future
        frame.iloc[cut:, :4] = frame.iloc[cut:, :4].to_numpy() * shock[:, None]
        other = backtest.walk_forward(Direction(), backtest.Market(frame, symbol="UP"),
                                      train=300, test=200, **grid).folds
        for k in range(fold + 1):  # this fold and every earlier one chose the same
            assert other.loc[k, ["side", "window", "in_sample"]].tolist() == \
                base.loc[k, ["side", "window", "in_sample"]].tolist()


def test_bad_arguments_are_named():
    market = _trending(n_bars=400)
    with pytest.raises(ValueError, match="objective must be one of"):
        backtest.walk_forward(Direction(), market, train=200, test=100, objective="pnl", window=[5, 10])
    with pytest.raises(ValueError, match="needs a grid"):
        backtest.walk_forward(Direction(), market, train=200, test=100)


def test_the_command_prints_folds_writes_json_and_gates(small_data, in_tmp, capsys):
    import json

    from backtest.cli import main
    from strategies import TrendFollowing

    argv = ["walk-forward", "--data", str(small_data), "--grid", "fast=6,12", "--grid", "slow=48,96",
            "--train", "480", "--test", "240"]
    assert main([*argv, "--json", "wf.json"]) == 0
    assert "2 folds" in capsys.readouterr().out
    payload = json.loads((in_tmp / "wf.json").read_text())
    expected = backtest.walk_forward(TrendFollowing(), backtest.load(small_data), train=480, test=240,
                                     fast=[6, 12], slow=[48, 96])
    assert [fold["fast"] for fold in payload["folds"]] == expected.folds["fast"].tolist()
    assert payload["folds"][-1]["end_equity"] == pytest.approx(expected.folds["end_equity"].iloc[-1])
    assert main([*argv, "--fail-on", "in_sample>-1000"]) == 1
    assert main(["walk-forward", "--data", str(small_data), "--train", "480", "--test", "240"]) == 2
    assert "give at least one --grid" in capsys.readouterr().err
