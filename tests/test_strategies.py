"""One contract every strategy in ``strategies/`` must meet (like sklearn's estimator checks).

Each strategy: runs on the sample data with its defaults, makes trades, validates its
parameters, and never looks ahead (signals, stops and sizes for the first n bars do not change
when the future is removed).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import backtest
import strategies
from backtest.strategy import Param, Strategy

ALL = [strategies.TrendFollowing, strategies.BreakoutRetest, strategies.FundingAware]
N_BARS = 24 * 120  # four months of hourly bars keeps the suite fast


@pytest.fixture(scope="module")
def market():
    full = backtest.load(backtest.sample_path("BTCUSDT"))
    return full[:N_BARS]


def _hook_outputs(strategy: Strategy, market) -> dict[str, np.ndarray]:
    out = {}
    for hook in (strategy.signals, strategy.stops, strategy.size):
        for key, value in (hook(market) or {}).items():
            if key == "size_type":
                continue
            array = np.asarray(value, dtype=float)
            out[key] = np.broadcast_to(array, (len(market),)) if array.ndim == 0 else array
    return out


def test_every_strategy_is_exported():
    exported = {getattr(strategies, name) for name in strategies.__all__}
    assert set(ALL) <= exported
    assert strategies.FLAGSHIP in ALL


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_runs_on_sample_data_with_defaults_and_trades(cls, market):
    result = cls().run(market)
    stats = result.stats()
    assert stats["trades"] > 0
    assert np.isfinite(stats["final_equity"])
    assert (result.equity >= 0).all()


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_has_a_docstring_explaining_the_idea(cls):
    module_doc = __import__(cls.__module__, fromlist=["_"]).__doc__ or ""
    assert len(module_doc.split()) > 40
    assert cls.__doc__


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_no_look_ahead_in_hooks(cls, market):
    strategy = cls()
    full = _hook_outputs(strategy, market)
    for cut in (N_BARS // 3, N_BARS // 2 + 7):
        past = _hook_outputs(strategy, market[:cut])
        assert past.keys() == full.keys()
        for key, values in past.items():
            np.testing.assert_array_equal(values, full[key][:cut], err_msg=f"{cls.__name__}: {key} at cut {cut}")


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_invalid_parameter_values_are_rejected_by_name(cls, market):
    for name, value in cls.params().items():
        declared = vars(cls).get(name)
        if isinstance(declared, Param) and declared.ge is not None:
            bad = declared.ge - (1 if isinstance(value, int) else 0.5)
        elif isinstance(declared, Param) and declared.gt is not None:
            bad = declared.gt - (1 if isinstance(value, int) else 0.5)
        else:
            continue
        with pytest.raises(ValueError, match=f"'{name}'"):
            cls(**{name: type(value)(bad)}).run(market)


def test_custom_strategy_in_a_few_lines(market):
    """The README's example: a newcomer's strategy is a subclass with one hook."""

    class Donchian(Strategy):
        window: int = 48
        leverage = 2.0

        def signals(self, market):
            upper = market.high.rolling(self.window).max().shift(1)
            lower = market.low.rolling(self.window).min().shift(1)
            return {"entries": market.close > upper, "exits": market.close < lower}

    result = Donchian().run(market, window=[24, 48])
    assert isinstance(result.equity, pd.DataFrame)
    assert list(result.equity.columns) == [24, 48]
