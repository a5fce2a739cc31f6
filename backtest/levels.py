"""Support and resistance levels from swing pivots, without look-ahead.

How levels are built (the kernels live in :mod:`backtest.levels_nb`):

1. **Pivots.** A pivot high at bar i: ``high[i]`` is the strict maximum of
   ``high[i-left .. i+right]``; on a tie (a plateau of equal highs) only the plateau's first bar is
   a pivot. Pivot lows mirror this. A pivot is *known* only at the close of its confirmation bar
   ``i + right``: per-bar outputs at bar t use only pivots with ``i + right <= t``.
2. **Clustering.** When a pivot is confirmed it joins the nearest level within ``tolerance`` of
   its price (``tolerance_unit="atr"``: multiples of the ATR at the confirmation bar;
   ``"pct"``: percent of the pivot price), else it starts a new level. Highs and lows share one
   set of levels: a price where the market turned is a level whichever way it turned. A level's
   price is the plain (touch-weighted) mean of its touch prices — robust to a single huge-volume
   bar and defined without volume. The ATR is vectorbt's (``vbt.ATR``, exponential by default);
   pivots confirmed while it is still warming up (the first ``atr_window - 1`` bars) are ignored.
3. **Strength** of a level at bar T is ``sum_k w_k * 0.5 ** ((T - i_k) / half_life)`` over its
   touches k at pivot bars ``i_k``: each touch counts 1 (or its relative volume ``w_k`` when volume
   is given: the pivot bar's volume over the mean volume of its pivot window
   ``i_k-left .. i_k+right``) and halves in weight every ``half_life`` bars. More touches never
   weaken a level; age always does.
4. **Per bar** t: support = nearest level strictly below ``close[t]``, resistance = nearest
   strictly above, so a broken level flips role by itself. Levels whose last touch is more than
   ``max_age`` bars old are dropped.

>>> import numpy as np
>>> high = np.array([10, 11, 12, 13, 12, 11, 10, 11, 12, 13.2, 12, 11, 10.5])
>>> low = high - 1
>>> levels = support_resistance(high, low, low + 0.5, left=2, right=2,
...                             tolerance=2, tolerance_unit="pct")
>>> levels.loc[12, ["support", "resistance"]].tolist()
[9.0, 13.1]
"""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd

from backtest.levels_nb import pivot_flags_nb, support_resistance_nb, touch_weights_nb

LEVEL_COLUMNS = ["support", "support_strength", "resistance", "resistance_strength"]
TOLERANCE_UNITS = ("atr", "pct")


# --------------------------------------------------------------------------- validation helpers


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_positive(name, value, allow_inf=False):
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and value > 0
    if not ok or (np.isinf(value) and not allow_inf) or np.isnan(value):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return float(value)


def _as_array(name, values, n=None, *, nonnegative=False):
    """1-D finite float64 array from a Series or array-like, with a precise error."""
    arr = np.asarray(values.to_numpy() if isinstance(values, pd.Series) else values, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} values, expected {n} (same as high)")
    bad = ~np.isfinite(arr) | (arr < 0 if nonnegative else False)
    if bad.any():
        pos = int(np.argmax(bad))
        raise ValueError(f"{name} has a non-finite or invalid value {arr[pos]!r} at position {pos}")
    return arr


def _prices(high, low, close=None, volume=None, *, need_close=True):
    """Unpack a Market-like object or separate inputs into arrays plus the output index."""
    is_array = isinstance(high, pd.Series | np.ndarray)
    if low is None and not is_array and hasattr(high, "high") and hasattr(high, "low"):
        market = high
        high, low = market.high, market.low
        close = market.close if close is None else close
        if volume is None:
            volume = getattr(market, "volume", None)
            if volume is not None and volume.isna().any():  # a market without (full) volume
                volume = None
    if low is None:
        raise ValueError("low is required (or pass a Market-like object as high)")
    if need_close and close is None:
        raise ValueError("close is required (or pass a Market-like object as high)")
    index = high.index if isinstance(high, pd.Series) else None
    for name, series in (("low", low), ("close", close), ("volume", volume)):
        if index is not None and isinstance(series, pd.Series) and not series.index.equals(index):
            raise ValueError(f"{name} is not on the same index as high")
    high_arr = _as_array("high", high)
    n = high_arr.shape[0]
    low_arr = _as_array("low", low, n)
    close_arr = None if close is None else _as_array("close", close, n)
    volume_arr = None if volume is None else _as_array("volume", volume, n, nonnegative=True)
    if index is None:
        index = pd.RangeIndex(n)
    return high_arr, low_arr, close_arr, volume_arr, index


def _atr(high, low, close, window):
    from backtest.indicators import atr

    return atr(high, low, close, window)


def _run(
    high, low, close, volume, left, right, tolerance, tolerance_unit, atr_window, half_life, max_age
):
    """Validate parameters and call the kernel on arrays."""
    left = _check_int("left", left, 1)
    right = _check_int("right", right, 1)
    tolerance = _check_positive("tolerance", tolerance)
    if tolerance_unit not in TOLERANCE_UNITS:
        raise ValueError(f"tolerance_unit must be one of {TOLERANCE_UNITS}, got {tolerance_unit!r}")
    atr_window = _check_int("atr_window", atr_window, 1)
    half_life = np.inf if half_life is None else _check_positive("half_life", half_life, True)
    n = close.shape[0]
    if max_age is None:
        max_age = n  # ages never exceed n - 1, so nothing expires
    else:
        max_age = _check_int("max_age", max_age, right)
    if tolerance_unit == "atr":
        tolerance_abs = tolerance * _atr(high, low, close, atr_window)
        tolerance_frac = 0.0
    else:
        tolerance_abs = np.zeros(n)
        tolerance_frac = tolerance / 100.0
    weight = np.ones(n) if volume is None else touch_weights_nb(volume, left, right)
    return support_resistance_nb(
        high, low, close, weight, tolerance_abs, tolerance_frac, left, right, half_life, max_age
    )


# --------------------------------------------------------------------------- public API


def pivots(high, low=None, left=3, right=3) -> pd.DataFrame:
    """Swing pivot prices at the bar where they happen, NaN elsewhere (for plotting).

    The value marks pivot bar i but is known only at bar ``i + right``: do not use it as a signal
    without shifting by ``right`` bars. Ties: a plateau's first bar is the pivot (see the module
    docstring). Accepts a Market-like object as ``high``.

    >>> import numpy as np
    >>> p = pivots(np.array([1, 2, 3, 2, 1, 2.]), np.array([0, 1, 2, 1, 0, 1.]), left=2, right=2)
    >>> p["pivot_high"].tolist()
    [nan, nan, 3.0, nan, nan, nan]
    """
    high, low, _, _, index = _prices(high, low, need_close=False)
    left = _check_int("left", left, 1)
    right = _check_int("right", right, 1)
    is_high, is_low = pivot_flags_nb(high, low, left, right)
    return pd.DataFrame(
        {"pivot_high": np.where(is_high, high, np.nan), "pivot_low": np.where(is_low, low, np.nan)},
        index=index,
    )


def support_resistance(
    high,
    low=None,
    close=None,
    volume=None,
    *,
    left=3,
    right=3,
    tolerance=0.5,
    tolerance_unit="atr",
    atr_window=14,
    half_life=500,
    max_age=None,
) -> pd.DataFrame:
    """Nearest support and resistance level (and their strengths) at every bar.

    Columns ``support, support_strength, resistance, resistance_strength``, NaN where there is no
    level on that side; one row per bar on the input's index (a RangeIndex for arrays). Row t uses
    data up to t's close only. ``high`` may be a Market-like object (its ``high``, ``low``,
    ``close`` and ``volume`` are used). ``half_life=None`` disables decay; ``max_age`` (bars since
    the last touch, >= ``right``) drops stale levels. See the module docstring for the rules.

    >>> import numpy as np
    >>> high = np.array([10, 11, 12, 11, 10, 11, 12.1, 11, 10.])
    >>> out = support_resistance(high, high - 1, high - 0.5, left=2, right=2,
    ...                          tolerance=1, tolerance_unit="pct")
    >>> float(out["resistance"].iloc[-1]), bool(out["resistance_strength"].iloc[-1] > 1)
    (12.05, True)
    """
    high, low, close, volume, index = _prices(high, low, close, volume)
    result = _run(
        high,
        low,
        close,
        volume,
        left,
        right,
        tolerance,
        tolerance_unit,
        atr_window,
        half_life,
        max_age,
    )
    return pd.DataFrame(dict(zip(LEVEL_COLUMNS, result[:4], strict=True)), index=index)


def _bar_position(index, at):
    n = len(index)
    if isinstance(at, numbers.Integral) and not isinstance(at, bool):
        pos = int(at) + n if at < 0 else int(at)
        if not 0 <= pos < n:
            raise ValueError(f"at={at!r} is outside the {n} bars")
        return pos
    if not isinstance(index, pd.DatetimeIndex):
        raise ValueError("at must be an integer position when the inputs have no DatetimeIndex")
    stamp = pd.Timestamp(at)
    if stamp.tzinfo is None and index.tz is not None:
        stamp = stamp.tz_localize(index.tz)
    try:
        pos = int(index.searchsorted(stamp, side="right")) - 1
    except TypeError as err:  # tz-aware vs naive
        raise ValueError(f"at={at!r} cannot be compared with the index: {err}") from err
    if pos < 0:
        raise ValueError(f"at={at!r} is before the first bar {index[0]}")
    return pos


def active_levels(
    high,
    low=None,
    close=None,
    volume=None,
    *,
    at,
    left=3,
    right=3,
    tolerance=0.5,
    tolerance_unit="atr",
    atr_window=14,
    half_life=500,
    max_age=None,
) -> pd.DataFrame:
    """All levels alive at bar ``at`` (a position, or a timestamp: the last bar at or before it).

    Built from data up to ``at``'s close only, with the same parameters as
    :func:`support_resistance`. Columns ``price, strength, touches, first_seen, last_touch``
    (the two last: pivot bars of the first and latest touch, as index labels), sorted by price.

    >>> import numpy as np
    >>> high = np.array([10, 11, 12, 11, 10, 11, 12.1, 11, 10.])
    >>> lv = active_levels(high, high - 1, high - 0.5, at=-1, left=2, right=2,
    ...                    tolerance=1, tolerance_unit="pct", half_life=None)
    >>> lv[["price", "touches"]].values.tolist()
    [[9.0, 1.0], [12.05, 2.0]]
    """
    high, low, close, volume, index = _prices(high, low, close, volume)
    stop = _bar_position(index, at) + 1
    volume = None if volume is None else volume[:stop]
    result = _run(
        high[:stop],
        low[:stop],
        close[:stop],
        volume,
        left,
        right,
        tolerance,
        tolerance_unit,
        atr_window,
        half_life,
        max_age,
    )
    price, strength, touches, first_seen, last_touch, alive = result[4:]
    return pd.DataFrame(
        {
            "price": price[alive],
            "strength": strength[alive],
            "touches": touches[alive],
            "first_seen": index[first_seen[alive]],
            "last_touch": index[last_touch[alive]],
        }
    )


def _levels_column(levels_df, column):
    if not isinstance(levels_df, pd.DataFrame) or column not in levels_df:
        raise ValueError(f"levels_df must be the DataFrame of support_resistance (no {column!r})")
    return levels_df[column]


def _align(name, values, index):
    if isinstance(values, pd.Series):
        if not values.index.equals(index):
            raise ValueError(f"{name} is not on the same index as levels_df")
        return values.to_numpy(dtype=float)
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 0:
        return np.full(len(index), float(arr))
    if arr.shape != (len(index),):
        raise ValueError(f"{name} has shape {arr.shape}, expected ({len(index)},)")
    return arr


def _check_buffer(buffer_atr):
    if not isinstance(buffer_atr, numbers.Real) or not buffer_atr >= 0:
        raise ValueError(f"buffer_atr must be a number >= 0, got {buffer_atr!r}")


def support_stop(levels_df, atr, buffer_atr=0.5) -> pd.Series:
    """Stop price for longs: nearest support minus ``buffer_atr`` × ATR (NaN without support).

    >>> df = pd.DataFrame({"support": [95.0, np.nan], "resistance": [110.0, 111.0]})
    >>> support_stop(df, atr=2.0, buffer_atr=0.5).tolist()
    [94.0, nan]
    """
    _check_buffer(buffer_atr)
    support = _levels_column(levels_df, "support")
    return (support - buffer_atr * _align("atr", atr, levels_df.index)).rename("support_stop")


def resistance_stop(levels_df, atr, buffer_atr=0.5) -> pd.Series:
    """Stop price for shorts: nearest resistance plus ``buffer_atr`` × ATR (NaN without one).

    >>> df = pd.DataFrame({"support": [95.0, np.nan], "resistance": [110.0, np.nan]})
    >>> resistance_stop(df, atr=2.0).tolist()
    [111.0, nan]
    """
    _check_buffer(buffer_atr)
    resistance = _levels_column(levels_df, "resistance")
    return (resistance + buffer_atr * _align("atr", atr, levels_df.index)).rename("resistance_stop")


def resistance_target(levels_df) -> pd.Series:
    """Take-profit price for longs: the nearest resistance (NaN without one).

    >>> resistance_target(pd.DataFrame({"resistance": [110.0]})).tolist()
    [110.0]
    """
    return _levels_column(levels_df, "resistance").rename("resistance_target")


def support_target(levels_df) -> pd.Series:
    """Take-profit price for shorts: the nearest support (NaN without one).

    >>> support_target(pd.DataFrame({"support": [95.0]})).tolist()
    [95.0]
    """
    return _levels_column(levels_df, "support").rename("support_target")


def _near(close, levels_df, within, min_strength, side):
    within = _check_positive("within", within)
    if not isinstance(min_strength, numbers.Real) or not min_strength >= 0:
        raise ValueError(f"min_strength must be >= 0, got {min_strength!r}")
    level = _levels_column(levels_df, side).to_numpy(dtype=float)
    strength = _levels_column(levels_df, f"{side}_strength").to_numpy(dtype=float)
    close = _align("close", close, levels_df.index)
    gap = (level - close) / close if side == "resistance" else (close - level) / close
    with np.errstate(invalid="ignore"):
        near = (gap <= within) & (strength >= min_strength)  # NaN compares False
    return pd.Series(near, index=levels_df.index, name=f"near_{side}")


def near_resistance(close, levels_df, within=0.01, min_strength=0.0) -> pd.Series:
    """True where close is within ``within`` (fraction) below a resistance of enough strength.

    The filter "no new long within 1% of a strong resistance": ``entries & ~near_resistance(...)``.

    >>> df = pd.DataFrame({"resistance": [100.5, 103.0], "resistance_strength": [2.0, 2.0]})
    >>> near_resistance(pd.Series([100.0, 100.0]), df, within=0.01).tolist()
    [True, False]
    """
    return _near(close, levels_df, within, min_strength, "resistance")


def near_support(close, levels_df, within=0.01, min_strength=0.0) -> pd.Series:
    """True where close is within ``within`` (fraction) above a support of enough strength.

    >>> df = pd.DataFrame({"support": [99.5, 97.0], "support_strength": [1.0, 1.0]})
    >>> near_support(pd.Series([100.0, 100.0]), df, within=0.01).tolist()
    [True, False]
    """
    return _near(close, levels_df, within, min_strength, "support")
