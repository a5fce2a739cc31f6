"""A grid calls each hook once per distinct value of what it reads from the strategy."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

import backtest
from backtest.strategy import Strategy
from tests.test_strategy import MomentumFlip, _market


class Counted(MomentumFlip):
    """MomentumFlip that counts its hook calls (class-level, reset by the fixture)."""

    calls: Counter = Counter()

    def signals(self, market):
        Counted.calls["signals"] += 1
        return super().signals(market)

    def stops(self, market):
        Counted.calls["stops"] += 1
        return super().stops(market)

    def size(self, market):
        Counted.calls["size"] += 1
        return super().size(market)


@pytest.fixture(autouse=True)
def _reset():
    Counted.calls.clear()


def _each_alone(strategy_type, market, **grid):
    """The grid's equity, column by column, from one run per combination."""
    result = strategy_type().run(market, **grid)
    for label in result.equity.columns:
        label = label if isinstance(label, tuple) else (label,)
        alone = strategy_type(**dict(zip(grid, label, strict=True))).run(market)
        np.testing.assert_allclose(result.equity[label if len(label) > 1 else label[0]].to_numpy(),
                                   alone.equity.to_numpy(), rtol=1e-12)
    return result


def test_each_hook_runs_once_per_distinct_value_it_reads():
    result = _each_alone(Counted, _market(), window=[5, 10, 20], stop=[0.02, 0.05],
                         leverage=[1.0, 3.0])
    assert result.equity.shape[1] == 12
    # the solo runs add one call per hook per column (12); the default size() of one
    # instrument reads nothing from the strategy, so the grid calls it once
    assert Counted.calls == {"signals": 3 + 12, "stops": 2 + 12, "size": 1 + 12}


class Branching(Strategy):
    """What a hook reads depends on a value it read: the cache must key on both branches."""

    mode: str = "mean"
    window: int = 10
    quantile: float = 0.5

    def signals(self, market):
        close = market.close
        if self.mode == "mean":
            line = close.rolling(self.window).mean()
        else:
            line = close.rolling(20).quantile(self.quantile)
        return {"entries": close > line, "exits": close < line}


def test_branches_that_read_different_values_are_told_apart():
    _each_alone(Branching, _market(), mode=["mean", "quantile"], window=[5, 20],
                quantile=[0.2, 0.8])


class ListParam(Strategy):
    """An unhashable parameter value: no caching, still right."""

    weights: list = None
    calls = 0

    def signals(self, market):
        ListParam.calls += 1
        window = len(self.weights)
        mean = market.close.rolling(window).mean()
        return {"entries": market.close > mean, "exits": market.close < mean}


def test_unhashable_values_are_called_every_time():
    ListParam.calls = 0
    result = ListParam().run(_market(), weights=[[1, 1], [1, 1, 1]])
    assert ListParam.calls == 2
    assert result.equity.shape[1] == 2


def test_a_portfolio_grid_runs_each_hook_once_per_instrument_and_value():
    markets = backtest.Markets([backtest.Market(_market(seed=seed).ohlcv, symbol=symbol)
                                for seed, symbol in ((1, "AAA"), (2, "BBB"))])
    Counted().run(markets, window=[5, 10], stop=[0.02, 0.05, 0.08])
    # 2 instruments x 2 windows; stops: 2 instruments x 3 stops; size reads leverage and the
    # instrument count, the same for every combination: once per instrument
    assert Counted.calls == {"signals": 4, "stops": 6, "size": 2}


class Rewrites(Strategy):
    """A hook that changes a value after reading it: the cache keys on the value it read."""

    window: int = 5

    def signals(self, market):
        window = self.window
        self.window = window + 100  # bad manners, but it must not poison the cache
        mean = market.close.rolling(window).mean()
        return {"entries": market.close > mean, "exits": market.close < mean}


def test_the_cache_keys_on_values_as_read_not_as_left():
    market = _market()
    grid = Rewrites().run(market, window=[5, 105])
    for window in (5, 105):
        alone = Rewrites(window=window).run(market)
        np.testing.assert_allclose(grid.equity[window].to_numpy(), alone.equity.to_numpy(), rtol=1e-12)
