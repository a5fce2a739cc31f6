"""Support/resistance breakout and retest.

The idea: a resistance that breaks often becomes support. Chasing the breakout buys the top of a
spike; waiting for the retest buys near the old level with a tight, well-defined stop beneath it.

- **Breakout**: the close crosses above the resistance known at the previous bar (levels from
  :mod:`backtest.levels`, pivots known only after their confirmation bars).
- **Retest entry**: within ``retest_bars`` bars, a bar's low comes back to within
  ``retest_tolerance`` of the broken level and the bar still closes above it.
- **Stop** below the broken level less ``stop_buffer_atr`` ATRs (at least ``min_stop_atr`` ATRs
  away); **target** at the next resistance above, but at least ``min_reward`` × the risk.
- **Size** risks ``risk`` of equity between entry and stop (``size_type="risk"``).
- Shorts mirror all of it around support; only setups on the side of the ``trend_window``
  moving average are taken.

>>> from strategies import BreakoutRetest
>>> result = BreakoutRetest(risk=0.005).run(market)      # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from backtest import indicators, levels
from backtest.strategy import Param, Strategy


class BreakoutRetest(Strategy):
    """Buy the retest of a broken resistance, sell the retest of a broken support."""

    retest_bars = Param(24, ge=1, doc="bars after a breakout during which a retest counts")
    retest_tolerance = Param(0.003, ge=0.0, lt=0.1, doc="how close (fraction) the retest must come")
    stop_buffer_atr = Param(1.0, ge=0.0, doc="stop distance beyond the broken level, in ATRs")
    min_reward = Param(2.0, gt=0.0, doc="target in multiples of the risk when no level is known")
    min_stop_atr = Param(1.5, ge=0.0, doc="closest allowed stop distance, in ATRs")
    risk = Param(0.005, gt=0.0, lt=0.2, doc="fraction of equity lost if the stop is hit")
    trend_window = Param(200, ge=2, doc="moving average whose side picks long or short setups")
    pivot_bars = Param(5, ge=1, doc="bars each side of a swing pivot")

    leverage = 3.0
    fees = 0.0005
    slippage = 0.0002

    def _setup(self, market):
        sr = levels.support_resistance(market, left=self.pivot_bars, right=self.pivot_bars)
        atr = indicators.atr(market, window=14)
        return sr, atr

    def _broken(self, level_before: pd.Series, crossed: pd.Series) -> pd.Series:
        """The level broken at each crossing bar, carried forward for ``retest_bars`` bars."""
        broken = level_before.where(crossed)
        return broken.ffill(limit=self.retest_bars)

    def _lines(self, market):
        """Per bar: (long level, short level) — the broken resistance / support being retested."""
        sr, atr = self._setup(market)
        close, low, high = market.close, market.low, market.high
        resistance_before = sr["resistance"].shift(1)
        support_before = sr["support"].shift(1)
        long_level = self._broken(resistance_before, close > resistance_before)
        short_level = self._broken(support_before, close < support_before)
        return sr, atr, close, low, high, long_level, short_level

    def signals(self, market):
        _, _, close, low, high, long_level, short_level = self._lines(market)
        tol = self.retest_tolerance
        long_retest = (low <= long_level * (1 + tol)) & (close > long_level)
        short_retest = (high >= short_level * (1 - tol)) & (close < short_level)
        # The breakout bar itself is not a retest: the level must be revisited afterwards.
        long_retest &= long_level.shift(1).notna()
        short_retest &= short_level.shift(1).notna()
        # One entry per breakout: the first bar that retests it. Exits are the stop and target.
        first_long = long_retest & ~long_retest.shift(1, fill_value=False)
        first_short = short_retest & ~short_retest.shift(1, fill_value=False)
        # trade with the broader trend only, so opposite setups do not flip the position
        trend = indicators.ma(close, self.trend_window)
        first_long &= close > trend
        first_short &= close < trend
        return {"entries": first_long & ~first_short, "short_entries": first_short & ~first_long}

    def stops(self, market):
        sr, atr, close, _, _, long_level, short_level = self._lines(market)
        buffer = self.stop_buffer_atr * atr
        # beyond the broken level, and at least min_stop_atr ATRs away from the close
        long_stop = np.minimum(long_level - buffer, close - self.min_stop_atr * atr)
        short_stop = np.maximum(short_level + buffer, close + self.min_stop_atr * atr)
        # the next level, but never less than min_reward × the risk taken
        long_target = np.maximum(sr["resistance"].fillna(0.0), close + self.min_reward * (close - long_stop))
        short_target = np.minimum(sr["support"].fillna(np.inf), close - self.min_reward * (short_stop - close))
        is_long = long_level.notna()
        return {
            "sl_price": long_stop.where(is_long, short_stop),
            "tp_price": long_target.where(is_long, short_target),
        }

    def size(self, market):
        return {"size": self.risk, "size_type": "risk"}
