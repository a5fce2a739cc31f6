"""Walk-forward: choose parameters on the past only, trade them on what follows.

For each fold the grid runs on the train window alone and the combination with the best
``objective`` is chosen; the chosen strategy then trades the test window that follows, its
indicators warmed up on the train window (no entry before the test window opens), starting
with the capital the previous fold ended with. The test windows' equity, stitched, is the
out-of-sample equity curve. Rolling folds (``anchored=False``) train on the last ``train``
bars; anchored folds on everything since the first bar. Positions still open at the end of a
test window are marked at its last close, as at the end of any run, and the next fold starts
flat with that equity.

A fold's choice depends on its train window only: changing any bar after it changes nothing
chosen (tested). The degradation ratio is the out-of-sample metric over the in-sample one.

>>> import backtest
>>> from strategies import TrendFollowing
>>> market = backtest.load(backtest.sample_path("BTCUSDT"))                      # doctest: +SKIP
>>> wf = backtest.walk_forward(TrendFollowing(), market, train=24 * 180, test=24 * 60,
...                            fast=[12, 24, 48], slow=[120, 240])                # doctest: +SKIP
>>> wf.folds[["test_start", "fast", "slow", "in_sample", "out_of_sample"]]        # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

OBJECTIVES = ("sharpe", "sortino", "calmar", "total_return", "cagr")  # higher is better
YEAR = "365 days"  # as Result.stats()
ENTRY_KEYS = ("entries", "short_entries")


@dataclass
class WalkForwardResult:
    """``folds``: one row per fold (windows, chosen parameters, in-sample and out-of-sample
    ``objective``); ``equity``: the stitched out-of-sample equity; ``objective``."""

    folds: pd.DataFrame
    equity: pd.Series
    objective: str
    init_cash: float
    # the combination best over the whole period (hindsight) and its equity: what to beat
    in_sample_best: pd.Series | None = None
    in_sample_best_params: dict | None = None

    def summary(self) -> pd.Series:
        """``in_sample`` (the folds' mean ``objective``), ``out_of_sample`` (the stitched
        equity's) and ``degradation`` (their ratio)."""
        in_sample = float(self.folds["in_sample"].mean())
        out_of_sample = segment_metric(self.equity, self.init_cash, self.objective)
        return pd.Series({"degradation": out_of_sample / in_sample if in_sample else np.nan,
                          "in_sample": in_sample, "out_of_sample": out_of_sample})

    def degradation(self) -> float:
        """The stitched out-of-sample ``objective`` over the mean in-sample one."""
        return float(self.summary()["degradation"])


def segment_metric(equity: pd.Series, start_cash: float, objective: str) -> float:
    """``objective`` of an equity segment that began with ``start_cash``, by vectorbt's
    returns accessor with the same conventions as ``Result.stats()``."""
    import vectorbt  # noqa: F401 - registers the .vbt accessor

    values = equity.to_numpy(dtype=float)
    if objective == "total_return":
        return values[-1] / start_cash - 1.0
    previous = np.r_[start_cash, values[:-1]]
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = pd.Series(np.where(previous > 0, values / previous - 1.0, 0.0), index=equity.index)
    freq = equity.index[1] - equity.index[0] if len(equity) > 1 else pd.Timedelta("1h")
    accessor = returns.vbt.returns(freq=freq, year_freq=YEAR)
    value = {"sharpe": accessor.sharpe_ratio, "sortino": accessor.sortino_ratio,
             "calmar": accessor.calmar_ratio, "cagr": accessor.annualized}[objective]()
    return float(value) if np.isfinite(value) else np.nan


def fold_windows(n_bars: int, train: int, test: int, step: int | None = None,
                 anchored: bool = False) -> list[tuple[int, int, int]]:
    """(train start, test start, test end) bar positions of every fold.

    >>> fold_windows(10, train=4, test=2)
    [(0, 4, 6), (2, 6, 8), (4, 8, 10)]
    >>> fold_windows(10, train=4, test=3, anchored=True)
    [(0, 4, 7), (0, 7, 10)]
    """
    step = test if step is None else step
    for name, value in (("train", train), ("test", test), ("step", step)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a whole number of bars, at least 1, got {value}")
    if train + test > n_bars:
        raise ValueError(f"train ({train}) + test ({test}) bars exceed the data's {n_bars} bars")
    folds = []
    test_start = train
    while test_start < n_bars:
        folds.append((0 if anchored else test_start - train, test_start, min(n_bars, test_start + test)))
        test_start += step
    return folds


def _entries_from(value, allowed: np.ndarray):
    """An entry signal with every bar before the test window set to False (NaN kept where
    trading is allowed, so the usual checks still see it)."""
    if value is None:
        return None
    if isinstance(value, pd.DataFrame):
        return value.where(pd.DataFrame(np.broadcast_to(allowed[:, None], value.shape),
                                        index=value.index, columns=value.columns), False)
    array = np.asarray(value.to_numpy() if isinstance(value, pd.Series) else value)
    if array.ndim == 0:
        array = np.full(len(allowed), array.item())
    masked = np.where(allowed if array.ndim == 1 else allowed[:, None], array, False)
    return pd.Series(masked, index=value.index) if isinstance(value, pd.Series) else masked


def _trading_from(strategy_type, start: pd.Timestamp):
    """``strategy_type`` whose entries open no earlier than ``start``."""

    def signals(self, market):
        out = dict(strategy_type.signals(self, market) or {})
        allowed = np.asarray(market.index >= start)
        for key in ENTRY_KEYS:
            if key in out:
                out[key] = _entries_from(out[key], allowed)
        return out

    return type(strategy_type.__name__, (strategy_type,),
                {"signals": signals, "__module__": strategy_type.__module__})


def walk_forward(strategy, market, *, train: int, test: int, step: int | None = None,
                 anchored: bool = False, objective: str = "sharpe", **grid) -> WalkForwardResult:
    """Walk-forward of ``strategy`` over ``grid`` on ``market`` (see the module docstring);
    ``train``, ``test`` and ``step`` (default ``test``) are numbers of bars."""
    from backtest.report import best_label

    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES} (higher is better), got {objective!r}")
    base, axes, _, _ = strategy.expand(**grid)
    if not axes:
        raise ValueError("walk_forward needs a grid: give at least one parameter a list of values")
    capital = init_cash = float(base.init_cash)
    rows, segments = [], []
    for train_start, test_start, test_end in fold_windows(len(market), train, test, step, anchored):
        in_sample = base.run(market[train_start:test_start], **grid)
        table = in_sample.stats()
        if isinstance(table, pd.Series):  # a grid of one combination
            table = table.to_frame().T.set_axis(in_sample.accounts)
        label = best_label(table, objective)
        chosen = dict(zip(axes, label if isinstance(label, tuple) else (label,), strict=True))
        opens = market.index[test_start]
        if capital > 0.0:
            trader = _trading_from(type(base), opens)(
                **{**base.get_params(), **base.get_settings(), **chosen, "init_cash": capital})
            equity = trader.run(market[train_start:test_end]).equity.loc[opens:]
        else:  # wiped out in an earlier fold: nothing left to trade
            equity = pd.Series(0.0, index=market.index[test_start:test_end])
        rows.append({"train_start": market.index[train_start], "test_start": opens,
                     "test_end": market.index[test_end - 1], **chosen,
                     "in_sample": float(table.loc[label, objective]),
                     "out_of_sample": segment_metric(equity, capital, objective),
                     "start_equity": capital, "end_equity": float(equity.iloc[-1])})
        segments.append(equity)
        capital = float(equity.iloc[-1])
    folds = pd.DataFrame(rows)
    folds.index.name = "fold"
    hindsight = base.run(market, **grid)
    table = hindsight.stats(frame=True)
    label = best_label(table, objective)
    best_equity = hindsight.equity if isinstance(hindsight.equity, pd.Series) else hindsight.equity[label]
    best_params = dict(zip(axes, label if isinstance(label, tuple) else (label,), strict=True))
    return WalkForwardResult(folds, pd.concat(segments).rename("equity"), objective, init_cash,
                             best_equity.rename("equity"), best_params)
