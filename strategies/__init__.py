"""Example strategies: each runs on the sample data and is the template a new author copies.

- :class:`~strategies.trend.TrendFollowing` — the flagship (what ``backtest run`` runs): moving
  average trend with support/resistance stops and volatility-targeted size.
- :class:`~strategies.breakout.BreakoutRetest` — buy the retest of a broken resistance (and the
  mirror for shorts), stop beyond the level, target the next level.
- :class:`~strategies.funding.FundingAware` — trend following that refuses crowded sides when
  funding is extreme and tilts toward the side that collects funding.
"""

from strategies.breakout import BreakoutRetest
from strategies.funding import FundingAware
from strategies.trend import TrendFollowing

FLAGSHIP = TrendFollowing

__all__ = ["FLAGSHIP", "BreakoutRetest", "FundingAware", "TrendFollowing"]
