"""Moving average and ATR with vectorbt's exact numbers, without importing vectorbt.

``ma`` and ``atr`` give the same values as ``vbt.MA.run(close, window, ewm=...).ma`` and
``vbt.ATR.run(high, low, close, window).atr`` (the tests compare them bit for bit), on the
input's own index. They are ports of vectorbt's kernels (``generic.nb.rolling_mean_1d_nb``,
``ewm_mean_1d_nb`` and ``indicators.nb.true_range_nb``) rather than calls, for two reasons a
user feels: importing vectorbt takes about four seconds in every process, and its indicator
factory compiles its wrappers again in each one, so a warm ``backtest run`` would spend most
of its time there; and vectorbt checks every output against a timezone-aware index by turning
it into Python ``Timestamp`` objects (about 50 ms per output on two years of hourly bars,
seconds on a million). These kernels are cached on disk by numba.

>>> import numpy as np, pandas as pd
>>> close = pd.Series([1.0, 2.0, 3.0, 4.0],
...                   index=pd.date_range("2025-01-01", periods=4, freq="h", tz="UTC"))
>>> ma(close, 2).tolist()
[nan, 1.5, 2.5, 3.5]
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numba import njit


@njit(cache=True)
def rolling_mean_nb(values: np.ndarray, window: int) -> np.ndarray:
    """Mean of the last ``window`` values (NaNs skipped, NaN until ``window`` are present), from
    running sums as vectorbt computes it, so the rounding is the same."""
    out = np.empty(values.shape[0], dtype=np.float64)
    running_sum = np.zeros(values.shape[0], dtype=np.float64)
    running_nans = np.zeros(values.shape[0], dtype=np.float64)
    total, nans = 0.0, 0.0
    for i in range(values.shape[0]):
        if np.isnan(values[i]):
            nans += 1.0
        else:
            total += values[i]
        running_nans[i] = nans
        running_sum[i] = total
        if i < window:
            count, window_sum = i + 1 - nans, total
        else:
            count = window - (nans - running_nans[i - window])
            window_sum = total - running_sum[i - window]
        out[i] = np.nan if count < window else window_sum / count
    return out


@njit(cache=True)
def ewm_mean_nb(values: np.ndarray, span: int) -> np.ndarray:
    """Exponential mean with ``alpha = 2 / (span + 1)``, not adjusted, NaN until ``span`` values
    have been seen (pandas' ``ewm(span, min_periods=span, adjust=False).mean()``)."""
    n = values.shape[0]
    out = np.empty(n, dtype=np.float64)
    if n == 0:
        return out
    alpha = 1.0 / (1.0 + (span - 1) / 2.0)
    old_weight_factor = 1.0 - alpha
    average = values[0]
    seen = int(average == average)
    out[0] = average if seen >= span else np.nan
    old_weight = 1.0  # decays over missing values, so a gap weighs the new value more
    for i in range(1, n):
        current = values[i]
        observed = current == current
        seen += observed
        if average == average:
            old_weight *= old_weight_factor
            if observed:
                if average != current:  # constant series stay exact
                    average = (old_weight * average + alpha * current) / (old_weight + alpha)
                old_weight = 1.0
        elif observed:
            average = current
        out[i] = average if seen >= span else np.nan
    return out


@njit(cache=True)
def true_range_nb(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    """High minus low, widened to the previous close when the bar gapped past it."""
    out = np.empty(high.shape[0], dtype=np.float64)
    for i in range(high.shape[0]):
        out[i] = high[i] - low[i]
        if i > 0:
            out[i] = max(out[i], abs(high[i] - close[i - 1]), abs(low[i] - close[i - 1]))
    return out


def _values(name: str, series) -> np.ndarray:
    values = np.ascontiguousarray(series.to_numpy() if isinstance(series, pd.Series) else series,
                                  dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"{name} must be one value per bar, got shape {values.shape}")
    return values


def _window(window) -> int:
    if isinstance(window, bool) or int(window) != window or window < 1:
        raise ValueError(f"window must be a whole number of bars >= 1, got {window!r}")
    return int(window)


def _on_index(values: np.ndarray, like, name: str):
    """A Series on ``like``'s index (the input's type otherwise: numpy in, numpy out)."""
    return pd.Series(values, index=like.index, name=name) if isinstance(like, pd.Series) else values


def ma(close, window: int, ewm: bool = False):
    """vectorbt's moving average (``vbt.MA``) of ``close`` over ``window`` bars (exponential
    with ``ewm=True``); NaN for the first ``window - 1`` bars."""
    values, window = _values("close", close), _window(window)
    out = ewm_mean_nb(values, window) if ewm else rolling_mean_nb(values, window)
    return _on_index(out, close, "ma")


def atr(high, low=None, close=None, window: int = 14):
    """vectorbt's average true range (``vbt.ATR``: an exponential mean of the true range) over
    ``window`` bars; ``high`` may be a Market (its high, low and close are used)."""
    if low is None and hasattr(high, "close") and not isinstance(high, pd.Series):
        high, low, close = high.high, high.low, high.close
    if low is None or close is None:
        raise ValueError("low and close are required (or pass a Market as high)")
    arrays = [_values(name, x) for name, x in (("high", high), ("low", low), ("close", close))]
    if len({len(a) for a in arrays}) != 1:
        raise ValueError(f"high, low and close lengths differ: {[len(a) for a in arrays]}")
    out = ewm_mean_nb(true_range_nb(*arrays), _window(window))
    return _on_index(out, close, "atr")
