"""Validation of market data, in one place; every failure is a :class:`DataError`.

Row convention: rows are counted as a user counts them in a spreadsheet — the first *data* row is
row 1 (a header line is not a row). For text files the message also gives the file's line number
("row 17 (line 18 of the file)"), so an editor's go-to-line lands on it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from backtest.errors import DataError, DataWarning

PRICE_COLUMNS = ("open", "high", "low", "close")
DEFAULT_MAX_FUNDING_RATE = 0.05  # |rate| per funding interval above this is not a real market
GAP_POLICIES = ("warn", "raise", "ignore")


@dataclass(frozen=True)
class Origin:
    """Where a table came from, to name it in errors: file and the line of its first data row."""

    file: str | None = None
    first_line: int | None = None  # 1-based file line of data row 1 (text files only)

    def where(self, position: int) -> str:
        """Human row reference for the 0-based ``position`` of a data row."""
        row = position + 1
        if self.first_line is None:
            return f"{row}"
        return f"{row} (line {self.first_line + position} of the file)"

    def error(self, problem: str, *, column=None, position=None) -> DataError:
        row = None if position is None else self.where(int(position))
        return DataError(problem, file=self.file, column=column, row=row)


def require_columns(frame: pd.DataFrame, required, origin: Origin) -> None:
    missing = [c for c in required if c not in frame.columns]
    if missing:
        found = ", ".join(map(str, frame.columns)) or "none"
        raise origin.error(f"missing column(s) {', '.join(missing)}; found: {found}",
                           column=missing[0])


def parse_timestamps(values: pd.Series, origin: Origin, column: str) -> pd.DatetimeIndex:
    """Timestamps from ISO strings, datetimes or epoch numbers (s, ms, µs or ns by magnitude)."""
    if isinstance(values.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(values.dtype):
        index = pd.DatetimeIndex(values)
        missing = index.isna()
        if missing.any():
            position = int(np.argmax(missing))
            raise origin.error("missing timestamp (NaT)", column=column, position=position)
        return index.tz_convert("UTC") if index.tz is not None else index.tz_localize("UTC")
    if pd.api.types.is_numeric_dtype(values.dtype):
        numbers = values.to_numpy(dtype=float)
        bad = ~np.isfinite(numbers)
        if bad.any():
            position = int(np.argmax(bad))
            raise origin.error(f"unparseable timestamp {values.iloc[position]!r}",
                               column=column, position=position)
        unit = _check_epochs(numbers, origin, column)
        return pd.DatetimeIndex(pd.to_datetime(numbers.astype("int64"), unit=unit, utc=True))
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.notna().mean() > 0.5:  # epoch numbers read as text around a bad cell
        bad = numbers.isna().to_numpy()
        if bad.any():
            position = int(np.argmax(bad))
            raise origin.error(f"unparseable timestamp {values.iloc[position]!r}",
                               column=column, position=position)
        return parse_timestamps(numbers, origin, column)
    text = values.astype(str)
    offsets = text.str.contains(r"(?:Z|[+-]\d\d:?\d\d)$", regex=True)
    if offsets.any() and not offsets.all():
        position = int(np.argmax((offsets != offsets.iloc[0]).to_numpy()))
        raise origin.error(
            f"mixed naive and timezone-aware timestamps ({text.iloc[0]!r} vs {text.iloc[position]!r})",
            column=column, position=position)
    parsed = pd.to_datetime(text, utc=True, errors="coerce", format="mixed")
    bad = parsed.isna().to_numpy()
    if bad.any():
        position = int(np.argmax(bad))
        raise origin.error(f"unparseable timestamp {text.iloc[position]!r}",
                           column=column, position=position)
    years = parsed.dt.year.to_numpy()
    low, high = NANOSECOND_YEARS
    bad = (years < low) | (years > high)
    if bad.any():  # e.g. "-1" reads as the year -1: outside what a nanosecond clock can hold
        position = int(np.argmax(bad))
        raise origin.error(f"timestamp {text.iloc[position]!r} reads as the year {years[position]}, "
                           f"outside {low}-{high}", column=column, position=position)
    return pd.DatetimeIndex(parsed).as_unit("ns")


EPOCH_UNITS = (("s", 1e10, 1.0), ("ms", 1e13, 1e3), ("us", 1e16, 1e6), ("ns", np.inf, 1e9))
PLAUSIBLE_EPOCH_SECONDS = (946_684_800, 4_102_444_800)  # 2000-01-01 .. 2100-01-01 UTC
NANOSECOND_YEARS = (1678, 2261)  # whole years inside pandas' nanosecond Timestamp range


def epoch_unit(numbers: np.ndarray) -> str:
    """The epoch unit of numbers by magnitude: seconds until ~2286, then ms, µs, ns."""
    magnitude = np.nanmax(np.abs(numbers)) if len(numbers) else 0.0
    for unit, limit, _ in EPOCH_UNITS:
        if magnitude < limit:
            return unit
    return "ns"


def _unit_codes(numbers: np.ndarray) -> np.ndarray:
    limits = np.array([limit for _, limit, _ in EPOCH_UNITS[:-1]])
    return np.searchsorted(limits, np.abs(numbers), side="right")


def _check_epochs(numbers: np.ndarray, origin: Origin, column: str) -> str:
    """One epoch unit for the whole column, giving dates between 2000 and 2100; the unit."""
    if len(numbers) == 0:
        return "s"
    codes = _unit_codes(numbers)
    mixed = codes != codes[0]
    if mixed.any():
        position = int(np.argmax(mixed))
        raise origin.error(
            f"epoch timestamps mix units: {numbers[position]:.0f} reads as "
            f"{EPOCH_UNITS[codes[position]][0]} where row 1 ({numbers[0]:.0f}) reads as "
            f"{EPOCH_UNITS[codes[0]][0]}; write one unit for the whole column",
            column=column, position=position)
    unit, _, per_second = EPOCH_UNITS[codes[0]]
    seconds = numbers / per_second
    low, high = PLAUSIBLE_EPOCH_SECONDS
    bad = (seconds < low) | (seconds >= high)
    if bad.any():
        position = int(np.argmax(bad))
        when = pd.Timestamp(int(seconds[position]), unit="s", tz="UTC") if \
            abs(seconds[position]) < 9e9 else "out of range"
        raise origin.error(
            f"epoch timestamp {numbers[position]:.0f} read as {unit} gives {when}, outside "
            "2000-2100: wrong unit? (seconds after 2286 are not told apart from milliseconds)",
            column=column, position=position)
    return unit


def check_index(index: pd.DatetimeIndex, origin: Origin, column: str = "timestamp") -> None:
    """Sorted, no duplicates."""
    if len(index) < 2:
        return
    steps = np.diff(_nanoseconds(index))
    if (steps < 0).any():
        position = int(np.argmax(steps < 0)) + 1
        raise origin.error(f"timestamps not sorted: {index[position]} comes after {index[position - 1]}",
                           column=column, position=position)
    if (steps == 0).any():
        position = int(np.argmax(steps == 0)) + 1
        raise origin.error(f"duplicate timestamp {index[position]}", column=column, position=position)


def check_prices(frame: pd.DataFrame, origin: Origin, columns=PRICE_COLUMNS) -> None:
    """Finite, positive prices and a consistent candle (low ≤ open, close ≤ high)."""
    for column in columns:
        values = frame[column].to_numpy(dtype=float)
        bad = ~np.isfinite(values) | (values <= 0)
        if bad.any():
            position = int(np.argmax(bad))
            value = values[position]
            kind = "missing (NaN)" if np.isnan(value) else "infinite" if np.isinf(value) else \
                "zero" if value == 0 else "negative"
            raise origin.error(f"price is {kind} ({value}) at {frame.index[position]}",
                               column=column, position=position)
    high, low = frame["high"].to_numpy(float), frame["low"].to_numpy(float)
    top = np.maximum(frame["open"].to_numpy(float), frame["close"].to_numpy(float))
    bottom = np.minimum(frame["open"].to_numpy(float), frame["close"].to_numpy(float))
    for column, bad, what in (("high", high < top, "below max(open, close)"),
                              ("low", low > bottom, "above min(open, close)")):
        if bad.any():
            position = int(np.argmax(bad))
            row = frame.iloc[position]
            raise origin.error(
                f"{column} {what} at {frame.index[position]}: open={row['open']}, high={row['high']}, "
                f"low={row['low']}, close={row['close']}", column=column, position=position)


def check_volume(frame: pd.DataFrame, origin: Origin) -> None:
    values = frame["volume"].to_numpy(dtype=float)
    bad = np.isinf(values) | (values < 0)
    if bad.any():
        position = int(np.argmax(bad))
        raise origin.error(f"volume is {'negative' if values[position] < 0 else 'infinite'} "
                           f"({values[position]}) at {frame.index[position]}",
                           column="volume", position=position)


def check_funding(rates: pd.Series, origin: Origin, max_rate: float = DEFAULT_MAX_FUNDING_RATE,
                  column: str = "funding_rate") -> None:
    values = rates.to_numpy(dtype=float)
    bad = np.isinf(values) | (np.abs(np.nan_to_num(values)) > max_rate)
    if bad.any():
        position = int(np.argmax(bad))
        raise origin.error(
            f"funding rate {values[position]} at {rates.index[position]} is outside ±{max_rate} "
            "per interval (rates are fractions: 0.0001 = 0.01%)", column=column, position=position)


def check_gaps(index: pd.DatetimeIndex, origin: Origin, on_gap: str = "warn") -> int:
    """Missing bars against the modal spacing: warn (default), raise, or ignore. Returns the count."""
    if on_gap not in GAP_POLICIES:
        raise ValueError(f"on_gap must be one of {GAP_POLICIES}, got {on_gap!r}")
    if len(index) < 3 or on_gap == "ignore":
        return 0
    steps = np.diff(_nanoseconds(index))
    spacing = modal_spacing(index).value
    gaps = steps > spacing
    if not gaps.any():
        return 0
    missing = int(((steps[gaps] // spacing) - 1).sum())
    largest = int(np.argmax(steps))
    problem = (f"{missing} missing bar(s) in {int(gaps.sum())} gap(s); the largest, "
               f"{pd.Timedelta(int(steps[largest]), 'ns')}, starts after {index[largest]}")
    if on_gap == "raise":
        raise origin.error(problem, column="timestamp", position=largest + 1)
    where = f"{origin.file}: " if origin.file else ""
    warnings.warn(f"{where}{problem}", DataWarning, stacklevel=4)
    return missing


def _nanoseconds(index: pd.DatetimeIndex) -> np.ndarray:
    return index.as_unit("ns").asi8


def modal_spacing(index: pd.DatetimeIndex) -> pd.Timedelta:
    """The most common bar spacing (robust to gaps)."""
    if len(index) < 2:
        return pd.Timedelta(0)
    values, counts = np.unique(np.diff(_nanoseconds(index)), return_counts=True)
    return pd.Timedelta(int(values[np.argmax(counts)]), "ns")
