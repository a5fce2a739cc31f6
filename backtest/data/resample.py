"""Resampling bars to a coarser timeframe.

Open first, high max, low min, close last, volume summed; funding summed per bar (the bar pays
every funding event inside it); mark candles resampled like the bars; depth the minimum over the
bar (the thinnest book a fill could meet). Bins with no bars are dropped. Bins are labelled by
their open time and closed on the left, as exchanges label candles.
"""

from __future__ import annotations

import pandas as pd

OHLC_RULES = {"open": "first", "high": "max", "low": "min", "close": "last"}


def _check_rule(rule: str, market) -> pd.Timedelta:
    try:
        width = pd.Timedelta(pd.tseries.frequencies.to_offset(rule))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"timeframe {rule!r} is not a pandas frequency like '4h' or '1D'") from exc
    if len(market) > 1 and width < market.freq:
        raise ValueError(f"timeframe {rule!r} is finer than the bars ({market.freq}); "
                         "resampling only makes bars coarser")
    return width


def resample_market(market, rule: str):
    """A new :class:`~backtest.market.Market` with bars of ``rule`` (e.g. ``"4h"``)."""
    from backtest.market import Market

    _check_rule(rule, market)
    grouper = market.ohlcv.resample(rule, label="left", closed="left")
    ohlcv = grouper.agg({**OHLC_RULES, "volume": lambda v: v.sum(min_count=1)})
    ohlcv = ohlcv.dropna(subset=["open", "close"])
    index = ohlcv.index

    mark = funding = depth = None
    if market.mark is not None:
        mark = market.mark.resample(rule, label="left", closed="left").agg(OHLC_RULES).reindex(index)
    if market.funding is not None:
        funding = market.funding.resample(rule, label="left", closed="left").sum(min_count=1)
        funding = funding.reindex(index)
    if market.depth is not None:
        depth = market.depth.resample(rule, label="left", closed="left").min().reindex(index)
    return Market(ohlcv, mark=mark, funding=funding, depth=depth, symbol=market.symbol,
                  source=market.source, validate=False,
                  synthetic=market.synthetic, description=market.description)
