"""Aligning mark prices, funding and depth to the bars, without look-ahead.

A bar spans ``[open time, open time + bar spacing)`` (shorter when the next bar opens earlier).

- **Mark candles** finer than the bars are aggregated into the bar that wholly contains them
  (open first, high max, low min, close last; a bar missing some sub-candles is aggregated from
  those present). Candles that straddle a bar boundary — offset by part of a bar — are not
  used: their high or low may come from after the bar closes. Mark candles *coarser* than the
  bars are refused: they would put a 4-hour high and low on the first hour-bar, a liquidation
  recorded before the price got there.
- **Depth** values are snapshots: a bar takes the minimum of those inside it (the thinnest
  book a fill could meet); a series coarser than the bars is refused like marks.
- **Funding** events are summed into the bar that holds their time (exchange timestamps carry
  a few milliseconds of jitter; several events in one bar add up).

Bars a series does not cover are NaN (the engine then uses traded prices, no depth impact, no
funding); :func:`coverage_warning` names how many and the first of them.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from backtest.data.validate import PRICE_COLUMNS, Origin, modal_spacing
from backtest.errors import DataWarning

DEFAULT_FUNDING_INTERVAL = pd.Timedelta(hours=8)
HOUR_NS = 3_600_000_000_000


def utc(index) -> pd.DatetimeIndex:
    index = pd.DatetimeIndex(index)
    return index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")


def _bar_of(times: pd.DatetimeIndex, index: pd.DatetimeIndex, width: pd.Timedelta):
    """Position of the bar holding each time (-1 if none), and where that bar ends."""
    positions = index.searchsorted(times, side="right") - 1
    ends = _bar_ends(index)
    inside = positions >= 0
    bar_end = np.where(inside, ends[np.clip(positions, 0, None)], 0)
    starts = times.as_unit("ns").asi8
    # a candle must end by the bar's end; a point in time must fall before it
    inside &= (starts + width.value <= bar_end) if width.value > 0 else (starts < bar_end)
    return np.where(inside, positions, -1)


def _bar_ends(index: pd.DatetimeIndex) -> np.ndarray:
    """Nanosecond end of each bar: the next open, but no later than open + the modal spacing."""
    opens = index.as_unit("ns").asi8
    spacing = modal_spacing(index).value if len(index) > 1 else 0
    nexts = np.append(opens[1:], np.iinfo(np.int64).max)
    return np.minimum(nexts, opens + spacing) if spacing else nexts


def _spacing_error(what: str, given: pd.Timedelta, bars: pd.Timedelta, origin: Origin):
    return origin.error(
        f"{what} are given every {given}, coarser than the {bars} bars: a coarse value would be "
        f"applied to the first bar it spans, before the market got there (look-ahead). Give "
        f"{what} at the bars' timeframe or finer, or resample the bars (timeframe='{given}')",
        column="timestamp")


def align_candles(frame: pd.DataFrame, index: pd.DatetimeIndex, origin: Origin,
                  what: str = "mark prices") -> pd.DataFrame:
    """OHLC candles of any timeframe as one candle per bar (see the module docstring)."""
    frame = frame.rename(columns=lambda c: str(c).strip().lower())[list(PRICE_COLUMNS)].astype(float)
    frame.index = utc(frame.index)
    frame = frame[~frame.index.duplicated(keep="last")].sort_index()
    if frame.index.equals(index):
        return frame
    bars = modal_spacing(index) if len(index) > 1 else pd.Timedelta(0)
    width = modal_spacing(frame.index) if len(frame) > 1 else bars
    if len(index) > 1 and width > bars:
        raise _spacing_error(what, width, bars, origin)
    frame = frame.dropna(how="any")
    positions = _bar_of(frame.index, index, width)
    used = frame[positions >= 0]
    grouped = used.groupby(positions[positions >= 0], sort=True)
    aggregated = pd.DataFrame({"open": grouped["open"].first(), "high": grouped["high"].max(),
                               "low": grouped["low"].min(), "close": grouped["close"].last()})
    out = pd.DataFrame(np.nan, index=index, columns=list(PRICE_COLUMNS))
    out.iloc[aggregated.index.to_numpy()] = aggregated.to_numpy()
    return out


def align_snapshots(series: pd.Series, index: pd.DatetimeIndex, origin: Origin,
                    what: str = "depth") -> pd.Series:
    """Snapshots (e.g. order-book depth) as the minimum inside each bar."""
    series = series.astype(float).copy()
    series.index = utc(series.index)
    series = series[~series.index.duplicated(keep="last")].sort_index()
    if series.index.equals(index):
        return series
    bars = modal_spacing(index) if len(index) > 1 else pd.Timedelta(0)
    spacing = modal_spacing(series.index) if len(series) > 1 else pd.Timedelta(0)
    if len(index) > 1 and spacing > bars:
        raise _spacing_error(what, spacing, bars, origin)
    series = series.dropna()
    positions = _bar_of(series.index, index, pd.Timedelta(0))
    minima = series[positions >= 0].groupby(positions[positions >= 0]).min()
    out = np.full(len(index), np.nan)
    out[minima.index.to_numpy()] = minima.to_numpy()
    return pd.Series(out, index=index)


def align_events(events: pd.Series, index: pd.DatetimeIndex) -> pd.Series:
    """Sum events (e.g. funding payments) into the bar whose span holds them; NaN elsewhere."""
    events = events.dropna()
    if len(index) == 0:
        return pd.Series(np.nan, index=index, dtype=float, name="funding_rate")
    positions = _bar_of(utc(events.index), index, pd.Timedelta(0))
    inside = positions >= 0
    summed = pd.Series(events.to_numpy(dtype=float)[inside]).groupby(positions[inside]).sum()
    aligned = np.full(len(index), np.nan)
    aligned[summed.index.to_numpy()] = summed.to_numpy()
    return pd.Series(aligned, index=index, name="funding_rate")


def _funding_interval(times: pd.DatetimeIndex) -> pd.Timedelta:
    """The usual spacing of funding events in whole hours (exchanges fund every 1, 4 or 8 h;
    timestamps jitter by milliseconds and a history may hold extra events)."""
    hours = np.rint(np.diff(times.as_unit("ns").asi8) / HOUR_NS).astype(np.int64)
    hours = hours[hours > 0]
    if len(hours) == 0:
        return DEFAULT_FUNDING_INTERVAL
    values, counts = np.unique(hours, return_counts=True)
    return pd.Timedelta(hours=int(values[counts == counts.max()].max()))


def funding_covered(events: pd.Series, index: pd.DatetimeIndex) -> np.ndarray:
    """Bars within one funding interval of the funding history."""
    times = utc(events.dropna().index)
    if len(times) == 0:
        return np.zeros(len(index), dtype=bool)
    interval = _funding_interval(times)
    opens = index.as_unit("ns").asi8
    slack = interval.value // 100  # exchange timestamps jitter by milliseconds
    first = times[0].value - interval.value - slack
    last = times[-1].value + interval.value - slack
    return (opens >= first) & (opens < last)


def coverage_warning(what: str, covered: np.ndarray, index: pd.DatetimeIndex, origin: Origin,
                     consequence: str) -> None:
    """Warn when a series covers only part of the bars, naming the first bar it misses."""
    missing = ~covered
    if len(index) == 0 or not missing.any():
        return
    first = index[int(np.argmax(missing))]
    where = f"{origin.file}: " if origin.file else ""
    warnings.warn(f"{where}the {what} series covers {int(covered.sum())} of {len(index)} bars "
                  f"({covered.mean():.0%}); first uncovered bar {first}: {consequence}",
                  DataWarning, stacklevel=3)
