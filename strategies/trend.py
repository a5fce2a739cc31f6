"""Trend following with support/resistance stops and volatility-targeted size (the flagship).

The idea: trends in crypto persist long enough to pay for the whipsaws, but a leveraged trend
follower dies if its position is too big when volatility explodes. So:

- **Signal**: go long when the fast moving average crosses above the slow one, short when it
  crosses below (vectorbt's ``MA``); exit on the opposite cross. No new long within ``resistance_buffer`` of a strong resistance, no new
  short just above a strong support: breakouts into a wall tend to fail.
- **Stop**: below the nearest support less ``stop_buffer_atr`` ATRs for longs (above the nearest
  resistance for shorts), from :mod:`backtest.levels` (pivots known only after their confirmation
  bars) — but never closer than ``min_stop_atr`` ATRs (noise) nor farther than ``max_stop``.
- **Size**: exposure = ``target_vol`` / realized volatility (:func:`backtest.sizing.target_volatility`),
  capped at the strategy's leverage — small when the market is wild, larger when it is calm.

A copyable template: parameters are annotated class attributes, settings (leverage, fees, ...)
are class attributes, and three vectorized hooks return what ``backtest.simulate`` takes.

>>> import backtest
>>> from strategies import TrendFollowing
>>> market = backtest.load(backtest.sample_path("BTCUSDT"))          # doctest: +SKIP
>>> result = TrendFollowing().run(market, fast=[12, 24], slow=[96, 192])  # doctest: +SKIP
>>> result.stats()[["total_return", "max_drawdown", "liquidations"]]  # doctest: +SKIP
"""

from __future__ import annotations

from backtest import indicators, levels, sizing
from backtest.strategy import Param, Strategy


def ma_trend(close, fast: int, slow: int):
    """(up, down): the fast moving average above / below the slow one (vectorbt ``MA``), known
    at each bar's close."""
    fast_ma = indicators.ma(close, fast)
    slow_ma = indicators.ma(close, slow)
    return fast_ma > slow_ma, fast_ma < slow_ma


class TrendFollowing(Strategy):
    """Moving-average trend with S/R stops and volatility-targeted exposure."""

    fast = Param(24, ge=2, doc="fast moving-average window, bars")
    slow = Param(120, ge=3, doc="slow moving-average window, bars")
    target_vol = Param(0.6, gt=0.0, doc="annualized volatility the position aims for")
    vol_window = Param(24 * 14, ge=10, doc="bars of returns behind realized volatility")
    stop_buffer_atr = Param(0.5, ge=0.0, doc="stop distance beyond the level, in ATRs")
    min_stop_atr = Param(2.0, ge=0.0, doc="closest allowed stop distance, in ATRs")
    max_stop = Param(0.08, gt=0.0, lt=1.0, doc="fallback stop (fraction) where no level is known")
    resistance_buffer = Param(0.01, ge=0.0, lt=0.5, doc="no long within this fraction below resistance")
    min_strength = Param(2.0, ge=0.0, doc="level strength that counts as a wall")

    leverage = 3.0
    fees = 0.0005
    slippage = 0.0002

    def check_params(self) -> None:
        if self.fast >= self.slow:
            raise ValueError(f"TrendFollowing: parameter 'fast' ({self.fast}) must be below 'slow' ({self.slow})")

    def _levels(self, market):
        return levels.support_resistance(market, tolerance=0.5, half_life=24 * 30)

    def signals(self, market):
        up, down = ma_trend(market.close, self.fast, self.slow)
        sr = self._levels(market)
        wall_above = levels.near_resistance(market.close, sr, self.resistance_buffer, self.min_strength)
        wall_below = levels.near_support(market.close, sr, self.resistance_buffer, self.min_strength)
        crossed_up = up & ~up.shift(1, fill_value=False)
        crossed_down = down & ~down.shift(1, fill_value=False)
        return {
            "entries": crossed_up & ~wall_above,
            "exits": crossed_down,
            "short_entries": crossed_down & ~wall_below,
            "short_exits": crossed_up,
        }

    def stops(self, market):
        sr = self._levels(market)
        atr = indicators.atr(market, window=14)
        close = market.close
        floor, cap = close * (1 - self.max_stop), close * (1 + self.max_stop)
        # Not farther than max_stop (where no level is known, NaN compares False and the fixed
        # distance is used), and not closer than min_stop_atr ATRs.
        long_stop = levels.support_stop(sr, atr, self.stop_buffer_atr)
        long_stop = long_stop.where(long_stop > floor, floor).clip(upper=close - self.min_stop_atr * atr)
        short_stop = levels.resistance_stop(sr, atr, self.stop_buffer_atr)
        short_stop = short_stop.where(short_stop < cap, cap).clip(lower=close + self.min_stop_atr * atr)
        # One level per bar serves the side the trend would enter.
        up, _ = ma_trend(market.close, self.fast, self.slow)
        return {"sl_price": long_stop.where(up, short_stop)}

    def size(self, market):
        exposure = sizing.target_volatility(
            market.close, self.target_vol, window=self.vol_window, max_leverage=self.leverage
        )
        return {"size": exposure.fillna(0.0), "size_type": "exposure"}
