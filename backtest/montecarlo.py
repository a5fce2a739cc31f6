"""Which leverage survives? A strategy on resampled market paths, at several leverages.

One price history is one draw of what could have happened. Here the market's bars are
resampled into ``n_paths`` alternative histories by a **stationary block bootstrap** (Politis &
Romano, 1994): a path is made of blocks of consecutive bars whose lengths are geometric with
mean ``mean_block``, each starting at a random bar of the history. Within a block every bar
keeps what kills leveraged accounts, together: its gap from the previous close, its wick and
body (high, low and close relative to its open), its volume, its funding payment, its mark
candle's premium over the traded candle, and its order-book depth. Volatility clusters and
crashes survive inside blocks; their order and the path's trend are redrawn.

The strategy then runs on every path at every leverage, each (path, leverage) its own account
(one ``simulate`` call per chunk of paths), and :meth:`MonteCarloResult.summary` answers per
leverage: how often was the account liquidated at least once, how often ruined (equity below
``ruin`` × initial cash at any bar), how often in a drawdown deeper than ``drawdown``, and the
distribution of final equity and CAGR.

>>> import backtest
>>> from strategies import TrendFollowing
>>> market = backtest.load(backtest.sample_path("BTCUSDT"))                  # doctest: +SKIP
>>> mc = backtest.monte_carlo(TrendFollowing(), market, leverage=[1, 3, 10], n_paths=200)  # doctest: +SKIP
>>> mc.summary()[["p_liquidation", "p_ruin", "final_equity_median"]]          # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from backtest.market import Market
from backtest.markets import Markets
from backtest.sizing import kelly_leverage

PATH_SYMBOL = "PATH{:04d}"
QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
SUMMARY_METRICS = ("paths", "p_liquidation", "p_ruin", "p_drawdown",
                   *(f"final_equity_q{int(q * 100):02d}" for q in QUANTILES),
                   "final_equity_median", "cagr_median")


def stationary_bootstrap(n_bars: int, n_paths: int, mean_block: float, seed: int | None = 0
                         ) -> np.ndarray:
    """Bar indices ``(n_paths, n_bars)`` of a stationary block bootstrap: each bar starts a
    new block with probability ``1 / mean_block`` (the first always does) at a uniformly drawn
    bar, else follows the previous one (wrapping from the last bar to the first). Path ``p``
    depends only on ``seed`` and ``p``.

    >>> stationary_bootstrap(6, 1, mean_block=1e9, seed=1).shape
    (1, 6)
    """
    if n_bars < 1 or n_paths < 1:
        raise ValueError(f"n_bars and n_paths must be at least 1, got {n_bars} and {n_paths}")
    if not mean_block >= 1.0:
        raise ValueError(f"mean_block must be at least 1 bar, got {mean_block}")
    # one generator per path: path p is the same whatever n_paths (100 paths = the first 100)
    generators = [np.random.default_rng(child) for child in np.random.SeedSequence(seed).spawn(n_paths)]
    new_block = np.stack([g.random(n_bars) for g in generators]) < 1.0 / mean_block
    new_block[:, 0] = True
    starts = np.stack([g.integers(0, n_bars, size=n_bars) for g in generators])
    position = np.broadcast_to(np.arange(n_bars), (n_paths, n_bars))
    # for every bar: where its block began (in the path) and at which history bar
    block_began = np.maximum.accumulate(np.where(new_block, position, 0), axis=1)
    origin = np.take_along_axis(starts, block_began, axis=1)
    return (origin + position - block_began) % n_bars


def resample(market: Market, bars: np.ndarray, symbol: str | None = None) -> Market:
    """The market on the path of history bars ``bars`` (same clock, one bar each): each bar's
    gap, wick, body, volume, funding, mark premium and depth are those of the history bar it
    copies, chained from the history's first open.

    >>> import numpy as np, pandas as pd
    >>> idx = pd.date_range("2025-01-01", periods=3, freq="h", tz="UTC")
    >>> bars = pd.DataFrame({"open": [100.0, 110, 99], "high": [111.0, 112, 100],
    ...                      "low": [99.0, 98, 90], "close": [110.0, 99, 95]}, index=idx)
    >>> resample(Market(bars), np.array([0, 0, 0])).close.round(6).tolist()   # +10% three times
    [110.0, 121.0, 133.1]
    """
    bars = np.asarray(bars, dtype=np.int64)
    if bars.ndim != 1 or len(bars) != len(market) or (len(bars) and (bars.min() < 0 or bars.max() >= len(market))):
        raise ValueError(f"bars must be {len(market)} indices into the market's bars")
    o, h, lo, c = (market.ohlcv[k].to_numpy(float) for k in ("open", "high", "low", "close"))
    previous_close = np.r_[o[0], c[:-1]]
    gap = (o / previous_close)[bars]
    # log price of each path bar's close: the gaps and bodies compound
    log_close = np.cumsum(np.log(gap) + np.log((c / o)[bars])) + np.log(o[0])
    path_open = np.exp(np.r_[np.log(o[0]), log_close[:-1]]) * gap
    frame = pd.DataFrame({
        "open": path_open, "high": path_open * (h / o)[bars], "low": path_open * (lo / o)[bars],
        "close": np.exp(log_close), "volume": market.ohlcv["volume"].to_numpy(float)[bars],
    }, index=market.index)
    # the traded body's own ratios keep the candle consistent: the close lies within high/low
    frame["high"] = np.maximum(frame["high"], frame[["open", "close"]].max(axis=1))
    frame["low"] = np.minimum(frame["low"], frame[["open", "close"]].min(axis=1))
    mark = None
    if market.mark is not None:
        premium = market.mark.to_numpy(float) / o[:, None]
        mark = pd.DataFrame(path_open[:, None] * premium[bars], index=market.index,
                            columns=market.mark.columns)
    funding = None if market.funding is None else \
        pd.Series(market.funding.to_numpy(float)[bars], index=market.index)
    depth = None if market.depth is None else \
        pd.Series(market.depth.to_numpy(float)[bars], index=market.index)
    return Market(frame, mark=mark, funding=funding, depth=depth,
                  symbol=symbol or market.symbol, validate=False)


@dataclass
class MonteCarloResult:
    """Per (leverage, path): ``table`` with the account's statistics and ``min_equity``."""

    table: pd.DataFrame
    init_cash: float
    ruin: float
    drawdown: float
    kelly_leverage: float | None = None  # growth-optimal multiple of the strategy's 1x returns

    def summary(self) -> pd.DataFrame:
        """Per leverage: ``p_liquidation`` (at least one), ``p_ruin`` (equity below ``ruin`` ×
        initial cash at some bar), ``p_drawdown`` (deeper than ``drawdown``), final equity and
        CAGR quantiles."""
        table = self.table
        by = table.groupby(level="leverage")
        out = pd.DataFrame({
            "paths": by.size(),
            "p_liquidation": by["liquidations"].apply(lambda x: float((x > 0).mean())),
            "p_ruin": by["min_equity"].apply(lambda x: float((x < self.ruin * self.init_cash).mean())),
            "p_drawdown": by["max_drawdown"].apply(lambda x: float((x > self.drawdown).mean())),
        })
        for q in QUANTILES:
            out[f"final_equity_q{int(q * 100):02d}"] = by["final_equity"].quantile(q)
        out["final_equity_median"] = by["final_equity"].median()
        out["cagr_median"] = by["cagr"].median()
        return out


def leverage_list(leverage) -> list[float]:
    """The leverages to compare (one or several), as floats; at least one."""
    leverages = [float(x) for x in np.atleast_1d(leverage)]
    if not leverages:
        raise ValueError("leverage must list at least one value")
    return leverages


def original_tiers(strategy, market: Market):
    """The tier table of ``market``'s own instrument, for copies of it that carry other labels
    (bootstrap paths, stress scenarios) — so a BTC path is margined on BTC's brackets; None when
    the strategy's ``tiers`` already serves (a dict by label) or it sets a flat ``mmr``."""
    from backtest.engine.simulate import _one_table

    if strategy.mmr is not None or isinstance(strategy.tiers, dict):
        return None
    return _one_table(market.symbol, strategy.tiers, None)[0]


def monte_carlo(strategy, market: Market, *, leverage, n_paths: int = 1000,
                mean_block: float = 24 * 7, seed: int | None = 0, ruin: float = 0.5,
                drawdown: float = 0.5, paths_per_chunk: int = 100, n_jobs: int | None = None,
                **params) -> MonteCarloResult:
    """Run ``strategy`` on ``n_paths`` bootstrap paths of ``market`` at every ``leverage``
    (see the module docstring); ``params`` fix strategy parameters. Paths run a chunk at a
    time (memory: one chunk's per-bar equity); the same seed gives the same paths and table.
    """
    leverages = leverage_list(leverage)
    if not 0.0 < ruin < 1.0 or not 0.0 < drawdown < 1.0:
        raise ValueError(f"ruin and drawdown are fractions in (0, 1), got {ruin} and {drawdown}")
    if paths_per_chunk < 1:
        raise ValueError(f"paths_per_chunk must be at least 1, got {paths_per_chunk}")
    base = strategy.trading_alone(**params)
    own_tiers = original_tiers(base, market)
    paths = stationary_bootstrap(len(market), n_paths, mean_block, seed)
    parts = []
    for first in range(0, n_paths, paths_per_chunk):
        chunk = range(first, min(n_paths, first + paths_per_chunk))
        markets = Markets({PATH_SYMBOL.format(p): resample(market, paths[p], PATH_SYMBOL.format(p))
                           for p in chunk})
        tiers = base.tiers if own_tiers is None else dict.fromkeys(markets.symbols, own_tiers)
        result = base.run(markets, leverage=leverages, per_bar="equity", n_jobs=n_jobs, tiers=tiers)
        stats = result.stats()
        stats["min_equity"] = result.per_bar("equity").min(axis=0)
        parts.append(stats[["final_equity", "cagr", "max_drawdown", "liquidations", "min_equity"]])
    table = pd.concat(parts).astype(float)
    table.index = table.index.set_names(["leverage", "path"])
    table = table.sort_index(level=["leverage", "path"], sort_remaining=False)
    returns = base.run(market, leverage=1.0).returns
    kelly = kelly_leverage(returns) if len(returns) > 1 else float("nan")
    return MonteCarloResult(table, float(base.init_cash), ruin, drawdown, kelly)


def trade_returns(result) -> pd.Series:
    """One account's closed trades as returns on the equity it had when each opened (pnl net of
    fees and funding / equity at the close before the entry bar), in exit order; for trades
    that do not overlap they compound exactly to the final equity."""
    if len(result.accounts) != 1:
        raise ValueError(f"one account at a time: the result has {len(result.accounts)}; "
                         "pick one, e.g. result of Strategy(...).run(market)")
    trades = result.trades.sort_values("exit_time", kind="stable")
    if trades.empty:
        raise ValueError("the run closed no trade: nothing to reshuffle")
    # the equity just before the trade opened: the previous bar's close (the initial cash first)
    before = result.equity.shift(1, fill_value=float(result.init_cash.iloc[0]))
    at_entry = before.reindex(trades["entry_time"]).to_numpy()
    return pd.Series(trades["pnl"].to_numpy() / at_entry, index=trades["exit_time"].to_numpy(),
                     name="trade_return")


def reshuffle_trades(result, *, n_paths: int = 1000, seed: int | None = 0, ruin: float = 0.5,
                     drawdown: float = 0.5) -> pd.DataFrame:
    """Trade-order Monte Carlo (jesse's, on our accounting): the run's trade returns (see
    :func:`trade_returns`) compounded in ``n_paths`` random orders. Per path: final equity
    (the same for every order: compounding commutes), the lowest equity after a trade and the
    deepest drawdown between trades, and whether it was ruined (below ``ruin`` × initial cash)
    — the luck of the order, not of the market; the bootstrap in :func:`monte_carlo` redraws
    the market itself. Path ``p`` depends only on (seed, p).

    >>> table = reshuffle_trades(result, n_paths=500)                     # doctest: +SKIP
    >>> table["max_drawdown"].quantile(0.95), table["ruined"].mean()      # doctest: +SKIP
    """
    returns = trade_returns(result).to_numpy()
    init_cash = float(result.init_cash.iloc[0])
    generators = [np.random.default_rng(child) for child in np.random.SeedSequence(seed).spawn(n_paths)]
    order = np.stack([g.permutation(len(returns)) for g in generators])
    equity = init_cash * np.cumprod(1.0 + returns[order], axis=1)
    with_start = np.concatenate([np.full((n_paths, 1), init_cash), equity], axis=1)
    peaks = np.maximum.accumulate(with_start, axis=1)
    deepest = (1.0 - with_start / peaks).max(axis=1)
    lowest = with_start.min(axis=1)
    return pd.DataFrame({"final_equity": equity[:, -1], "min_equity": lowest,
                         "max_drawdown": deepest, "ruined": lowest < ruin * init_cash,
                         "deep_drawdown": deepest > drawdown},
                        index=pd.RangeIndex(n_paths, name="path"))

