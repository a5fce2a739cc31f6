"""Stress scenarios: inject a crash into a market and see which leverage survives it.

A :class:`Shock` rewrites the bars from ``at`` for ``bars`` bars: the price falls by ``drop``
(log-linearly; a negative ``drop`` is a squeeze up), the bottom bar's low wicks ``wick``
further, and then the price recovers ``recovery`` of the fall by the window's end (1: all of
it, 0: none). Within the window the mark price's extreme can diverge a further
``mark_divergence`` from the traded one, the order-book depth is multiplied by
``depth_factor`` (0.1: the October 2025 books), and funding events pay ``funding_rate``
(one is added at the window's last bar when it holds none). Bars before the window are
untouched; bars after it too when the price recovers fully, else they are scaled by the level
the shock left (their own moves intact).

>>> import backtest
>>> from strategies import TrendFollowing
>>> market = backtest.load(backtest.sample_path("BTCUSDT"))                           # doctest: +SKIP
>>> crash = Shock(at="2025-06-01", drop=0.3, bars=6, wick=0.05, depth_factor=0.1)      # doctest: +SKIP
>>> stress_test(TrendFollowing(), market, {"crash": crash}, leverage=[1, 3, 10])       # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from backtest.market import Market
from backtest.markets import Markets

PRICES = ["open", "high", "low", "close"]


@dataclass(frozen=True)
class Shock:
    """A crash (or squeeze) injected from bar time ``at`` for ``bars`` bars; see the module."""

    at: str | pd.Timestamp
    drop: float
    bars: int = 1
    wick: float = 0.0
    recovery: float = 0.0
    mark_divergence: float = 0.0
    depth_factor: float = 1.0
    funding_rate: float | None = None

    def check(self) -> None:
        if not -1.0 < self.drop < 1.0:
            raise ValueError(f"Shock: drop is a fraction in (-1, 1), got {self.drop}")
        if int(self.bars) != self.bars or self.bars < 1:
            raise ValueError(f"Shock: bars must be a whole number, at least 1, got {self.bars}")
        for name in ("wick", "mark_divergence"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"Shock: {name} is a fraction in [0, 1), got {getattr(self, name)}")
        if not 0.0 <= self.recovery <= 1.0:
            raise ValueError(f"Shock: recovery is a fraction in [0, 1], got {self.recovery}")
        if not self.depth_factor > 0.0:
            raise ValueError(f"Shock: depth_factor must be positive, got {self.depth_factor}")


def _factors(shock: Shock) -> tuple[np.ndarray, float]:
    """Price multipliers at the window's bar boundaries (``bars + 1`` of them) and after it."""
    n = int(shock.bars)
    bottom = np.log1p(-shock.drop)
    end = np.log1p(-shock.drop * (1.0 - shock.recovery))
    down = n if shock.recovery == 0.0 else max(1, n // 2)
    path = np.r_[np.linspace(0.0, bottom, down + 1), np.linspace(bottom, end, n - down + 1)[1:]]
    return np.exp(path), float(np.exp(end))


def _shock_candles(candles: np.ndarray, start: int, factors: np.ndarray, after: float,
                   wick: float, bottom_bar: int, falling: bool) -> np.ndarray:
    """OHLC rows (bars × 4) with the window scaled bar by bar and the bars after by ``after``."""
    out = candles.copy()
    for k in range(len(factors) - 1):
        row = start + k
        if row >= len(out):
            break
        f_open, f_close = factors[k], factors[k + 1]
        o, h, lo, c = candles[row]
        new_open, new_close = o * f_open, c * f_close
        new_high = max(h * max(f_open, f_close), new_open, new_close)
        new_low = min(lo * min(f_open, f_close), new_open, new_close)
        if k == bottom_bar:  # the wick: past the bottom, against the move
            if falling:
                new_low *= 1.0 - wick
            else:
                new_high *= 1.0 + wick
        out[row] = (new_open, new_high, new_low, new_close)
    end = start + len(factors) - 1
    if end < len(out):
        out[end:] = candles[end:] * after
    return out


def inject(market: Market, shock: Shock, symbol: str | None = None) -> Market:
    """``market`` with ``shock`` injected (see the module docstring)."""
    shock.check()
    start = int(market.index.searchsorted(pd.Timestamp(shock.at).tz_localize("UTC")
                                          if pd.Timestamp(shock.at).tzinfo is None
                                          else pd.Timestamp(shock.at)))
    if start >= len(market):
        raise ValueError(f"Shock: at {shock.at} is after the market's last bar {market.index[-1]}")
    factors, after = _factors(shock)
    falling = shock.drop > 0
    bottom_bar = int(np.argmin(factors[1:]) if falling else np.argmax(factors[1:]))
    ohlcv = market.ohlcv.copy()
    ohlcv[PRICES] = _shock_candles(ohlcv[PRICES].to_numpy(float), start, factors, after,
                                   shock.wick, bottom_bar, falling)
    window = np.zeros(len(market), dtype=bool)
    window[start: start + int(shock.bars)] = True
    mark = None
    if market.mark is not None:
        values = _shock_candles(market.mark[PRICES].to_numpy(float), start, factors, after,
                                shock.wick, bottom_bar, falling)
        extreme = 2 if falling else 1  # the mark's low in a crash, its high in a squeeze
        values[window, extreme] *= (1.0 - shock.mark_divergence) if falling else (1.0 + shock.mark_divergence)
        mark = pd.DataFrame(values, index=market.index, columns=PRICES)
    depth = None
    if market.depth is not None:
        depth = market.depth.copy()
        depth[window] *= shock.depth_factor
    funding = None if market.funding is None else market.funding.copy()
    if shock.funding_rate is not None:
        if funding is None:
            funding = pd.Series(np.nan, index=market.index)
        events = window & funding.notna().to_numpy()
        if not events.any():
            events[min(start + int(shock.bars), len(market)) - 1] = True
        funding[events] = shock.funding_rate
    return Market(ohlcv, mark=mark, funding=funding, depth=depth,
                  symbol=symbol or market.symbol, validate=False)


def stress_test(strategy, market: Market, shocks: dict[str, Shock], *, leverage,
                n_jobs: int | None = None) -> pd.DataFrame:
    """Run ``strategy`` at every ``leverage`` on ``market`` with each shock injected (and
    untouched, as "none"); one row per (scenario, leverage): ``survives`` (never
    liquidated), ``liquidated_at`` (the first liquidation's time), ``loss`` (fraction of the
    initial cash lost at the end), ``max_drawdown``."""
    leverages = [float(x) for x in np.atleast_1d(leverage)]
    if not leverages:
        raise ValueError("leverage must list at least one value")
    scenarios = {"none": market, **{name: inject(market, shock, name) for name, shock in shocks.items()}}
    base = strategy.trading_alone()
    result = base.run(Markets(scenarios), leverage=leverages, n_jobs=n_jobs)
    stats = result.stats()
    liquidations = result.liquidations
    # the first liquidation of each column (records name their column by its label)
    first = {} if not len(liquidations) else liquidations.groupby("col")["time"].min().to_dict()
    rows = []
    for label, row in stats.iterrows():
        lev, name = label
        rows.append({"scenario": name, "leverage": lev,
                     "survives": int(row["liquidations"]) == 0,
                     "liquidated_at": first.get(label, pd.NaT),
                     "loss": 1.0 - float(row["final_equity"]) / float(base.init_cash),
                     "max_drawdown": float(row["max_drawdown"])})
    return pd.DataFrame(rows).set_index(["scenario", "leverage"]).sort_index()
