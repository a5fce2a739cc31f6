"""The Strategy contract: parameters, validation, hooks and parameter grids."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backtest.market import Market
from backtest.strategy import Param, Strategy


def _market(n_bars: int = 400, seed: int = 7) -> Market:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n_bars)))
    open_ = np.r_[close[0], close[:-1]]
    spread = np.abs(rng.normal(0.0, 0.004, n_bars)) * close
    frame = pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) + spread,
            "low": np.minimum(open_, close) - spread,
            "close": close,
            "volume": rng.uniform(1.0, 2.0, n_bars),
        },
        index=pd.date_range("2024-01-01", periods=n_bars, freq="1h", tz="UTC"),
    )
    return Market(frame, symbol="TEST")


class MomentumFlip(Strategy):
    """Long when the close is above its rolling mean, short below: enough to exercise the API."""

    window: int = 20
    band = Param(0.0, ge=0.0, lt=0.5)
    stop = Param(0.05, gt=0.0, lt=1.0)

    def signals(self, market):
        mean = market.close.rolling(self.window).mean()
        above = market.close > mean * (1 + self.band)
        below = market.close < mean * (1 - self.band)
        return {"entries": above, "exits": below, "short_entries": below, "short_exits": above}

    def stops(self, market):
        return {"sl_stop": self.stop}


class OnlySignals(Strategy):
    def signals(self, market):
        entries = np.zeros(len(market), dtype=bool)
        entries[10] = True
        exits = np.zeros(len(market), dtype=bool)
        exits[50] = True
        return {"entries": entries, "exits": exits}


def test_parameters_are_class_attributes_overridden_by_keywords():
    strategy = MomentumFlip(window=5)
    assert strategy.get_params() == {"window": 5, "band": 0.0, "stop": 0.05}
    assert MomentumFlip().window == 20


def test_settings_are_class_attributes_too():
    class Levered(OnlySignals):
        leverage = 5.0

    assert Levered().leverage == 5.0
    assert Levered(leverage=2.0).get_settings()["leverage"] == 2.0


def test_misspelled_parameter_gets_a_did_you_mean_hint():
    with pytest.raises(ValueError, match=r"unknown parameter 'windw'.*did you mean 'window'"):
        MomentumFlip(windw=3)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"window": 2.5}, r"parameter 'window' must be an int"),
        ({"band": -0.1}, r"parameter 'band' must be >= 0.0"),
        ({"stop": 1.0}, r"parameter 'stop' must be < 1.0"),
        ({"leverage": 0}, r"parameter 'leverage' must be > 0"),
        ({"margin_mode": "portfolio"}, r"parameter 'margin_mode' must be one of"),
        ({"timing": "tomorrow"}, r"parameter 'timing' must be one of"),
    ],
)
def test_invalid_parameter_value_names_the_parameter(params, message):
    with pytest.raises(ValueError, match=message):
        MomentumFlip(**params).validate()


def test_invalid_grid_value_is_rejected_before_simulating():
    with pytest.raises(ValueError, match=r"parameter 'band' must be >= 0.0"):
        MomentumFlip().run(_market(), band=[0.0, -1.0])


def test_call_wide_setting_cannot_be_a_grid_axis():
    with pytest.raises(ValueError, match="'margin_mode'.*cannot vary"):
        MomentumFlip().run(_market(), margin_mode=["isolated", "cross"])


def test_subclass_defining_only_signals_runs():
    result = OnlySignals().run(_market())
    trades = result.trades
    assert len(trades) == 1
    assert trades["exit_reason"].iloc[0] == "signal"


def test_hook_returning_unknown_key_is_an_error():
    class Typo(Strategy):
        def signals(self, market):
            return {"entry": np.ones(len(market), dtype=bool)}

    with pytest.raises(ValueError, match=r"unknown keys \['entry'\]"):
        Typo().run(_market())


def test_signal_of_wrong_length_is_an_error():
    class Short(Strategy):
        def signals(self, market):
            return {"entries": np.ones(3, dtype=bool)}

    with pytest.raises(ValueError, match="entries must be a scalar or one value per bar"):
        Short().run(_market())


def test_grid_of_3_by_4_gives_12_columns_equal_to_12_separate_runs():
    market = _market()
    windows, stops = [5, 10, 20], [0.02, 0.03, 0.05, 0.08]
    grid = MomentumFlip(leverage=3.0).run(market, window=windows, stop=stops)
    assert list(grid.equity.columns.names) == ["window", "stop"]
    assert grid.equity.shape == (len(market), 12)
    for window in windows:
        for stop in stops:
            single = MomentumFlip(leverage=3.0, window=window, stop=stop).run(market)
            np.testing.assert_allclose(
                grid.equity[(window, stop)].to_numpy(), single.equity.to_numpy(), rtol=1e-12
            )


def test_grid_over_leverage_varies_the_engine_setting_per_column():
    market = _market()
    result = MomentumFlip().run(market, leverage=[1.0, 3.0])
    assert list(result.equity.columns) == [1.0, 3.0]
    low, high = result.equity[1.0], result.equity[3.0]
    assert not np.allclose(low.to_numpy(), high.to_numpy())


def test_grid_progress_bar_only_on_a_terminal(monkeypatch):
    from backtest.strategy import _progress

    items = [1, 2, 3]
    assert _progress(items, True) is items  # pytest's stderr is not a terminal: quiet
    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    bar = _progress(items, True)
    assert list(bar) == items and bar is not items
    assert _progress(items, False) is items
