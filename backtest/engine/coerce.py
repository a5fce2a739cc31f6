"""Checks on per-bar arguments shared by :func:`backtest.simulate` and ``Strategy.run``, so both
paths accept and refuse exactly the same values.

- A Series or DataFrame is matched to the bars **by index**: the same labels in another order
  are reordered; other labels are an error (never used by position).
- Signals must be booleans: ``bool`` arrays, or numbers/objects holding only 0/1/True/False.
  NaN (what ``shift()`` leaves at the start), None and strings such as ``"False"`` are errors —
  ``bool("False")`` is True, and a NaN turned into True opens a position nobody asked for.

>>> import pandas as pd
>>> index = pd.date_range("2025-01-01", periods=3, freq="1h", tz="UTC")
>>> signal(pd.Series([True, False, True], index=index[::-1]), "entries", index).tolist()
[True, False, True]
>>> signal(pd.Series([True, False, True], index=index).shift(1), "entries", index)
Traceback (most recent call last):
...
ValueError: entries contains NaN at bar 0 (2025-01-01 00:00:00+00:00): signals must be True/False; a shift() leaves NaN at the start — use .shift(1, fill_value=False) or .fillna(False)
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def by_index(value, index: pd.DatetimeIndex, name: str):
    """``value`` with a pandas index matched to the bars (reordered if needed); other values
    unchanged."""
    if not isinstance(value, pd.Series | pd.DataFrame) or value.index.equals(index):
        return value
    if len(value.index) == len(index) and value.index.is_unique and \
            value.index.sort_values().equals(index):
        return value.reindex(index)
    missing = index.difference(value.index)
    extra = value.index.difference(index)
    detail = (f"bar {missing[0]} is missing" if len(missing) else
              f"label {extra[0]!r} is not a bar" if len(extra) else "its labels repeat")
    raise ValueError(f"{name} is not aligned with the market: its index differs from the bars "
                     f"({detail}); build it from the market's index")


def _where(index, position: int) -> str:
    when = f" ({index[position]})" if index is not None and position < len(index) else ""
    return f"bar {position}{when}"


def signal(value, name: str, index: pd.DatetimeIndex | None = None) -> np.ndarray:
    """``value`` as a boolean array after the checks in the module docstring."""
    if index is not None:
        value = by_index(value, index, name)
    array = np.asarray(value.to_numpy() if isinstance(value, pd.Series | pd.DataFrame) else value)
    if array.dtype == bool:
        return array
    flat = array.reshape(-1) if array.ndim else array.reshape(1)
    rows = array.shape[0] if array.ndim else 1
    if array.dtype.kind in "iuf":
        bad = np.isnan(flat) if array.dtype.kind == "f" else np.zeros(flat.shape, bool)
        if bad.any():
            position = int(np.argmax(bad)) // max(flat.size // rows, 1)
            raise ValueError(f"{name} contains NaN at {_where(index, position)}: signals must be "
                             "True/False; a shift() leaves NaN at the start — use "
                             ".shift(1, fill_value=False) or .fillna(False)")
        bad = (flat != 0) & (flat != 1)
        if bad.any():
            position = int(np.argmax(bad)) // max(flat.size // rows, 1)
            raise ValueError(f"{name} holds {flat[np.argmax(bad)]!r} at {_where(index, position)}: "
                             "signals must be True/False (or 0/1)")
        return array.astype(bool)
    for k, item in enumerate(flat):
        if isinstance(item, bool | np.bool_) or (isinstance(item, int | np.integer) and item in (0, 1)):
            continue
        position = k // max(flat.size // rows, 1)
        if item is None or item is pd.NA or (isinstance(item, float) and np.isnan(item)):
            raise ValueError(f"{name} contains {'NaN' if item is not None else 'None'} at "
                             f"{_where(index, position)}: signals must be True/False; a shift() "
                             "leaves NaN at the start — use .shift(1, fill_value=False) or "
                             ".fillna(False)")
        raise ValueError(f"{name} holds {item!r} ({type(item).__name__}) at "
                         f"{_where(index, position)}: signals must be True/False")
    return array.astype(bool)
