"""Funding-aware trend following: stay out of crowded trades, lean toward collecting funding.

The idea: perpetual funding is the price of being on the crowded side. When longs pay an extreme
rate, the market is stretched long and the next liquidation cascade will be a long squeeze — so
no new longs then (and the mirror for shorts). Between extremes, a trend signal decides, and the
position is sized up when it *receives* funding and down when it pays (a carry tilt).

- **Funding signal**: the mean of the last ``funding_events`` funding rates, known at each
  funding time and carried forward (no look-ahead: a rate counts from the bar it is paid on).
- **Trend**: the fast moving average crossing above / below the slow one (vectorbt ``MA``)
  opens a position; the opposite cross closes it.
- **Filter**: no long when mean funding > ``extreme``; no short when < −``extreme``.
- **Carry tilt**: exposure = ``base_exposure`` × (1 + ``tilt`` × sign of the funding the
  position would receive).

Markets without a funding series (spot data) run as plain trend following.

>>> from strategies import FundingAware
>>> result = FundingAware().run(market, extreme=[0.0003, 0.0005])   # doctest: +SKIP
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from backtest.strategy import Param, Strategy
from strategies.trend import ma_trend


class FundingAware(Strategy):
    """Trend following that avoids the crowded side and tilts toward collecting funding."""

    fast = Param(48, ge=2, doc="fast moving-average window, bars")
    slow = Param(240, ge=3, doc="slow moving-average window, bars")
    funding_events = Param(3, ge=1, doc="funding payments averaged (3 = one day at 8 h)")
    extreme = Param(0.0005, gt=0.0, doc="mean funding rate per interval that counts as crowded")
    base_exposure = Param(1.0, gt=0.0, doc="notional / equity before the tilt")
    tilt = Param(0.3, ge=0.0, lt=1.0, doc="relative size change for receiving vs paying funding")
    stop = Param(0.08, gt=0.0, lt=1.0, doc="stop-loss, fraction of the entry price")

    leverage = 3.0
    fees = 0.0005
    slippage = 0.0002

    def mean_funding(self, market) -> pd.Series:
        """Mean of the last ``funding_events`` rates, carried forward; 0 without funding data."""
        if market.funding is None:
            return pd.Series(0.0, index=market.index)
        events = market.funding.dropna()
        mean = events.rolling(self.funding_events, min_periods=1).mean()
        return mean.reindex(market.index).ffill().fillna(0.0)

    def signals(self, market):

        up, down = ma_trend(market.close, self.fast, self.slow)
        turned_up = up & ~up.shift(1, fill_value=False)
        turned_down = down & ~down.shift(1, fill_value=False)
        funding = self.mean_funding(market)
        return {
            "entries": turned_up & (funding <= self.extreme),
            "exits": turned_down | (funding > self.extreme),
            "short_entries": turned_down & (funding >= -self.extreme),
            "short_exits": turned_up | (funding < -self.extreme),
        }

    def stops(self, market):
        return {"sl_stop": self.stop}

    def size(self, market):
        up, _ = ma_trend(market.close, self.fast, self.slow)
        side = np.where(up, 1.0, -1.0)
        # Longs receive funding when it is negative, shorts when it is positive.
        receives = -side * np.sign(self.mean_funding(market).to_numpy())
        exposure = self.base_exposure * (1.0 + self.tilt * receives)
        return {"size": np.minimum(exposure, self.leverage), "size_type": "exposure"}
