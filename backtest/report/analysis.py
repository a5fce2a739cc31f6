"""The report's numbers that ``stats()`` does not give: pure numpy, arrays in and arrays out.

- :func:`excursions` — maximum adverse and favourable excursion (MAE/MFE) of each trade;
- :func:`rolling_sharpe` / :func:`rolling_volatility` (both at once: :func:`rolling_metrics`) —
  O(bars) equivalents of vectorbt's ``rolling_sharpe_ratio`` / ``rolling_annualized_volatility``
  (which cost O(bars × window));
- :func:`drawdown_periods` — vectorbt's drawdown records (``get_drawdowns_nb``) without vectorbt;
- :func:`alpha_beta` — least-squares regression of strategy returns on a benchmark's;
- :func:`minmax_indices` — which points of a long series to plot so that spikes survive.

None of them imports vectorbt (four seconds per process) or numba.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _range_reduce(ufunc, values: np.ndarray, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """``ufunc.reduce(values[first[k]:last[k] + 1])`` for every k, in one vectorized pass.

    ``ufunc.reduceat`` reduces between consecutive indices, so the ranges are interleaved as
    (first₀, last₀ + 1, first₁, last₁ + 1, …) and every other output is kept; a sentinel
    element makes ``last + 1 == len(values)`` a valid index. Ranges may overlap."""
    if len(first) == 0:
        return np.empty(0, dtype=values.dtype)
    padded = np.append(values, values[-1])
    bounds = np.empty(2 * len(first), dtype=np.int64)
    bounds[0::2], bounds[1::2] = first, np.asarray(last) + 1
    return ufunc.reduceat(padded, bounds)[0::2]


def excursions(high, low, entry_bar, exit_bar, entry_price, side):
    """Maximum adverse and favourable excursion (MAE, MFE) of each trade, as signed fractions
    of its entry price: MAE ≤ MFE, negative when the price went against the position.

    The excursion is read from the bars' highs and lows from the entry bar to the exit bar,
    both included (a bar's range is all that is known of its path, so a trade entered at a
    bar's close or stopped before the bar's extreme gets that whole bar). ``side`` is +1 for a
    long, -1 for a short: a long's MAE is ``min(low) / entry - 1`` and MFE ``max(high) / entry
    - 1``; a short's MAE is ``1 - max(high) / entry`` and MFE ``1 - min(low) / entry``.

    >>> high = np.array([101.0, 104.0, 102.0, 108.0])
    >>> low = np.array([99.0, 97.0, 100.0, 103.0])
    >>> mae, mfe = excursions(high, low, entry_bar=[1, 1], exit_bar=[2, 3],
    ...                       entry_price=[100.0, 100.0], side=[1, -1])
    >>> mae.round(12).tolist(), mfe.round(12).tolist()
    ([-0.03, -0.08], [0.04, 0.03])
    """
    high, low = np.asarray(high, dtype=float), np.asarray(low, dtype=float)
    first, last = np.asarray(entry_bar, dtype=np.int64), np.asarray(exit_bar, dtype=np.int64)
    entry, side = np.asarray(entry_price, dtype=float), np.asarray(side, dtype=float)
    highest = _range_reduce(np.maximum, high, first, last)
    lowest = _range_reduce(np.minimum, low, first, last)
    up, down = highest / entry - 1.0, lowest / entry - 1.0
    long = side > 0
    return np.where(long, down, -up), np.where(long, up, -down)


def _constant_run(values: np.ndarray) -> np.ndarray:
    """Length of the run of equal values ending at each position."""
    n = len(values)
    starts = np.ones(n, dtype=bool)
    starts[1:] = values[1:] != values[:-1]
    start_of = np.maximum.accumulate(np.where(starts, np.arange(n), 0))
    return np.arange(n) - start_of + 1


def _rolling_moments(returns, window: int):
    """Rolling mean and sample standard deviation (ddof 1) over full windows only (NaN before,
    as vectorbt's ``minp=None`` means ``minp=window``), in O(bars): pandas' online algorithms.
    A window of identical values has a standard deviation of exactly 0, as a direct
    computation gives (the running sums would leave a rounding residue there)."""
    values = np.asarray(returns, dtype=float)
    rolling = pd.Series(values).rolling(window, min_periods=window)
    mean, std = rolling.mean().to_numpy(copy=True), rolling.std(ddof=1).to_numpy(copy=True)
    constant = _constant_run(values) >= window
    mean[constant], std[constant] = values[constant], 0.0
    return mean, std


def rolling_metrics(returns, window: int, bars_per_year: float):
    """(Sharpe, volatility) of the last ``window`` per-bar returns at each bar, annualized, in
    O(bars): :func:`rolling_sharpe` and :func:`rolling_volatility` from one pass."""
    if window < 2:
        return np.full(len(returns), np.nan), np.full(len(returns), np.nan)
    mean, std = _rolling_moments(returns, window)
    with np.errstate(divide="ignore", invalid="ignore"):
        sharpe = mean / std * np.sqrt(bars_per_year)
    sharpe[std == 0.0] = np.inf
    return sharpe, std * np.sqrt(bars_per_year)


def rolling_volatility(returns, window: int, bars_per_year: float) -> np.ndarray:
    """Annualized standard deviation (ddof 1) of the last ``window`` per-bar returns: vectorbt's
    ``returns.vbt.returns(freq, year_freq="365 days").rolling_annualized_volatility(window)``
    in O(bars) instead of O(bars × window). NaN until the first full window (or if
    ``window < 2``).

    >>> rolling_volatility([0.01, -0.01, 0.01, 0.03], window=2, bars_per_year=4).round(6).tolist()
    [nan, 0.028284, 0.028284, 0.028284]
    """
    return rolling_metrics(returns, window, bars_per_year)[1]


def rolling_sharpe(returns, window: int, bars_per_year: float) -> np.ndarray:
    """Annualized Sharpe ratio (no risk-free rate, ddof 1) of the last ``window`` per-bar
    returns: vectorbt's ``rolling_sharpe_ratio(window)`` in O(bars), including its convention
    that a window without variance has a Sharpe ratio of +inf.

    >>> rolling_sharpe([0.01, -0.01, 0.01, 0.03, 0.0, 0.0], window=2, bars_per_year=4).round(3).tolist()
    [nan, 0.0, 0.0, 2.828, 1.414, inf]
    """
    return rolling_metrics(returns, window, bars_per_year)[0]


def drawdown_periods(equity) -> dict[str, np.ndarray]:
    """Every drawdown of a (finite) equity series as vectorbt's ``get_drawdowns_nb`` records it:
    a drawdown starts at the first value below the running maximum, its peak is the bar
    before, its valley the first lowest value, and it ends at the first value back at the peak
    (``recovered``) or at the last bar (still active). Positions are bar indices; ``depth`` is
    ``(peak - valley) / peak`` (positive).

    >>> d = drawdown_periods([1.0, 2.0, 1.5, 1.0, 2.0, 3.0, 2.7])
    >>> d["peak"].tolist(), d["valley"].tolist(), d["end"].tolist(), d["recovered"].tolist()
    ([1, 5], [3, 6], [4, 6], [True, False])
    >>> d["depth"].round(3).tolist()
    [0.5, 0.1]
    """
    values = np.asarray(equity, dtype=float)
    below = values < np.maximum.accumulate(values)
    edges = np.diff(below.astype(np.int8), prepend=0, append=0)
    first, last = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    peak = first - 1
    valley_value = _range_reduce(np.minimum, values, first, last)
    run = np.cumsum(edges[:-1] == 1) - 1  # the drawdown each bar belongs to (when below)
    hits = np.flatnonzero(below & (values == valley_value[run.clip(0)] if len(first) else below))
    valley = hits[np.unique(run[hits], return_index=True)[1]]  # the first lowest bar of each
    recovered = last < len(values) - 1
    end = np.where(recovered, last + 1, len(values) - 1)
    peak_value = values[peak] if len(peak) else np.empty(0)
    return {"peak": peak, "valley": valley, "end": end, "recovered": recovered,
            "depth": (peak_value - valley_value) / peak_value if len(peak) else np.empty(0)}


def alpha_beta(returns, benchmark_returns, bars_per_year: float) -> dict[str, float]:
    """Ordinary least squares ``returns = alpha + beta × benchmark_returns`` per bar: ``beta``
    the slope, ``alpha`` the intercept annualized arithmetically (× bars per year),
    ``correlation`` Pearson's r. NaN where the benchmark has no variance.

    >>> bench = np.array([0.01, -0.02, 0.03, 0.0])
    >>> fit = alpha_beta(0.001 + 2.0 * bench, bench, bars_per_year=100)
    >>> round(fit["alpha"], 9), round(fit["beta"], 9), round(fit["correlation"], 9)
    (0.1, 2.0, 1.0)
    """
    y, x = np.asarray(returns, dtype=float), np.asarray(benchmark_returns, dtype=float)
    dx, dy = x - x.mean(), y - y.mean()
    sxx, syy, sxy = float(dx @ dx), float(dy @ dy), float(dx @ dy)
    if len(x) < 2 or sxx == 0.0:
        return {"alpha": np.nan, "beta": np.nan, "correlation": np.nan}
    beta = sxy / sxx
    alpha = float(y.mean() - beta * x.mean())
    correlation = sxy / np.sqrt(sxx * syy) if syy > 0.0 else np.nan
    return {"alpha": alpha * bars_per_year, "beta": beta, "correlation": float(correlation)}


def minmax_indices(values, max_points: int) -> np.ndarray:
    """Positions of the points to plot so that a long series keeps its shape and its spikes: the
    series is cut into ``max_points // 2`` buckets and each keeps its lowest and highest point
    (NaN is skipped; an all-NaN bucket keeps its first point), plus the first and last points,
    in time order. Every position when the series is short enough.

    >>> minmax_indices(np.array([0, 5, 1, 2, -3, 1, 0, 0.]), max_points=4).tolist()
    [0, 1, 4, 5, 7]
    """
    values = np.asarray(values, dtype=float)
    n = len(values)
    if n <= max_points:
        return np.arange(n)
    buckets = max(1, max_points // 2)
    size = -(-n // buckets)  # ceil
    padded = np.full(buckets * size, np.nan)
    padded[:n] = values
    blocks = padded.reshape(buckets, size)
    missing = np.isnan(blocks)
    low = np.argmin(np.where(missing, np.inf, blocks), axis=1)
    high = np.argmax(np.where(missing, -np.inf, blocks), axis=1)
    offsets = np.arange(buckets) * size
    picks = np.unique(np.concatenate([[0, n - 1], offsets + low, offsets + high]))
    return picks[picks < n]
