"""Binance public data archives (data.binance.vision) loaded straight from their zip files.

For users who downloaded the monthly or daily files themselves (no network, no ccxt). USDⓈ-M
paths are ``data/futures/um/{monthly,daily}/<type>/<SYMBOL>/...``; each zip holds one CSV:

- ``klines/BTCUSDT/1h/BTCUSDT-1h-2024-01.zip``: Binance's 12 kline columns ``open_time, open,
  high, low, close, volume, close_time, quote_volume, count, taker_buy_volume,
  taker_buy_quote_volume, ignore``; a header row in files since 2022, none before; open time in
  ms (spot files moved to µs in 2025: the unit is told by magnitude, file by file).
- ``markPriceKlines/BTCUSDT/1h/BTCUSDT-1h-2024-01.zip``: the same name and layout, mark prices.
- ``fundingRate/BTCUSDT/BTCUSDT-fundingRate-2024-01.zip``: ``calc_time,
  funding_interval_hours, last_funding_rate`` (the rate a fraction, calc time in ms).
- ``bookDepth/BTCUSDT/BTCUSDT-bookDepth-2024-01-01.zip`` (daily): ``timestamp, percentage,
  depth, notional``, one row per band and snapshot, ``percentage`` in −5..5 (negative: bids
  within that % below the price, positive: asks above; cumulative). The market's 2% depth is
  the notional at −2 plus the notional at +2, per snapshot, in USD; a snapshot missing either
  band is left out (warned about).

:func:`load_archives` takes each kind as a zip (or CSV) path, a folder of them, or a list of
either; the files of one kind are read one by one (so an error names the file, the column and
the row), then joined in time order. A bar present in two files (a daily file beside its
month's) must agree and counts once. ``backtest.load("BTCUSDT-1h-2024-01.zip")`` reads a single
kline zip, and ``backtest.load_funding`` a funding zip, through the same readers.

>>> market = load_archives(klines="archives/klines", mark="archives/markPriceKlines",   # doctest: +SKIP
...                        funding="archives/fundingRate", book_depth="archives/bookDepth")
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from backtest.data.readers import (
    DEFAULT_MAX_FUNDING_RATE,
    MIN_BARS,
    _normalise_names,
    _numeric,
    _symbol_from,
    indexed,
    read_table,
)
from backtest.data.validate import (
    PRICE_COLUMNS,
    Origin,
    check_gaps,
    check_prices,
    check_volume,
    parse_timestamps,
    require_columns,
)
from backtest.errors import DataError, DataWarning

ARCHIVE_SUFFIXES = (".zip", ".csv")
DEPTH_BAND = 2.0  # percent either side of the price


def _files(spec, what: str) -> list[Path]:
    """Paths from a path, a folder (its .zip/.csv files, by name) or a list of these."""
    if spec is None:
        return []
    items = [spec] if isinstance(spec, str | Path) else list(spec)
    found: list[Path] = []
    for item in items:
        path = Path(item)
        if path.is_dir():
            inside = sorted(p for p in path.iterdir() if p.suffix.lower() in ARCHIVE_SUFFIXES)
            if not inside:
                raise DataError(f"a folder with no .zip or .csv files (given as {what})", file=path)
            found.extend(inside)
        elif path.is_file():
            found.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file (given as {what})")
    return found


def _label(files: list[Path]) -> str:
    return str(files[0]) if len(files) == 1 else f"{files[0]} … {files[-1].name} ({len(files)} files)"


def _join(parts: list[tuple[pd.DataFrame, str]], label: str) -> pd.DataFrame:
    """Tables of several files in time order; a timestamp in two files must agree."""
    frames = [frame.assign(_file=name) for frame, name in parts]
    joined = pd.concat(frames).sort_index(kind="stable")
    repeated = joined.index.duplicated(keep=False)
    if repeated.any():
        values = joined.drop(columns="_file")[repeated]
        differs = values.groupby(level=0).nunique(dropna=False).gt(1).any(axis=1)
        if differs.any():
            when = differs.index[int(np.argmax(differs.to_numpy()))]
            files = joined.loc[[when], "_file"].unique()
            raise DataError(f"{when} appears in {' and '.join(files)} with different values",
                            file=label, column="timestamp")
    joined = joined[~joined.index.duplicated(keep="first")]
    return joined.drop(columns="_file")


def _candles(files: list[Path], volume: bool) -> pd.DataFrame:
    columns = [*PRICE_COLUMNS, "volume"] if volume else list(PRICE_COLUMNS)
    parts = []
    for path in files:
        raw, origin = read_table(path, format="auto")
        frame = indexed(raw, origin)
        require_columns(frame, columns, origin)
        frame = _numeric(frame, columns, origin)[columns].astype(float)
        check_prices(frame, origin)
        if volume:
            check_volume(frame, origin)
        parts.append((frame, origin.file))
    return _join(parts, _label(files))


def _funding(files: list[Path]) -> pd.Series:
    parts = []
    for path in files:
        raw, origin = read_table(path)
        frame = indexed(raw, origin)
        require_columns(frame, ["funding_rate"], origin)
        parts.append((_numeric(frame, ["funding_rate"], origin)[["funding_rate"]].astype(float),
                      origin.file))
    return _join(parts, _label(files))["funding_rate"]


def load_book_depth(files) -> pd.Series:
    """The 2% depth in USD per snapshot (notional at −2% plus +2%) from Binance ``bookDepth``
    files (see the module docstring); ``files`` as for :func:`load_archives`."""
    files = _files(files, "book_depth")
    parts, incomplete, first_incomplete = [], 0, None
    for path in files:
        raw, origin = read_table(path)
        frame = _normalise_names(raw)
        require_columns(frame, ["timestamp", "percentage", "notional"], origin)
        if frame.empty:
            raise origin.error("the file has no data rows")
        frame = _numeric(frame, ["percentage", "notional"], origin)
        bad = ~np.isfinite(frame["notional"].to_numpy(float)) | (frame["notional"] < 0).to_numpy()
        if bad.any():
            position = int(np.argmax(bad))
            raise origin.error(f"notional {frame['notional'].iloc[position]} is not a finite "
                               "amount ≥ 0", column="notional", position=position)
        times = parse_timestamps(frame["timestamp"], origin, "timestamp")
        percentage = frame["percentage"].to_numpy(float)
        band = np.isclose(np.abs(percentage), DEPTH_BAND)
        sides = pd.DataFrame({"time": times[band], "bids": percentage[band] < 0,
                              "notional": frame["notional"].to_numpy(float)[band]})
        table = sides.pivot_table(index="time", columns="bids", values="notional", aggfunc="sum")
        table = table.reindex(columns=[True, False])
        missing = table.isna().any(axis=1)
        if missing.any():
            incomplete += int(missing.sum())
            first_incomplete = first_incomplete or f"{origin.file} at {missing.index[missing][0]}"
        depth = table[~missing].sum(axis=1)
        depth.index = pd.DatetimeIndex(depth.index, name="timestamp")
        parts.append((depth.to_frame("depth_2pct_usd"), origin.file))
    if incomplete:
        warnings.warn(f"{incomplete} book-depth snapshot(s) lack the −2% or the +2% band and are "
                      f"left out; the first in {first_incomplete}", DataWarning, stacklevel=2)
    return _join(parts, _label(files))["depth_2pct_usd"]


def load_archives(klines, *, mark=None, funding=None, book_depth=None, symbol: str | None = None,
                  timeframe: str | None = None, on_gap: str = "warn",
                  max_funding_rate: float = DEFAULT_MAX_FUNDING_RATE):
    """A :class:`~backtest.market.Market` from Binance archive files: kline zips (required), and
    optionally mark-price kline zips, funding-rate zips and book-depth zips, each a path, a
    folder or a list (see the module docstring). Mark, funding and depth are aligned to the
    bars as :func:`backtest.load` aligns them; ``symbol`` defaults to the first kline file's
    name (``BTCUSDT-1h-2024-01.zip`` → BTCUSDT); ``timeframe`` resamples; ``on_gap`` as in
    :func:`backtest.load`.
    """
    from backtest.market import Market

    files = _files(klines, "klines")
    if not files:
        raise DataError("no kline files given")
    label = _label(files)
    origin = Origin(label)
    bars = _candles(files, volume=True)
    if len(bars) < MIN_BARS:
        raise origin.error(f"only {len(bars)} bar: a backtest needs at least {MIN_BARS}")
    check_gaps(bars.index, origin, on_gap)
    sources, extras = {}, {}
    if mark is not None:
        mark_files = _files(mark, "mark")
        extras["mark"], sources["mark"] = _candles(mark_files, volume=False), _label(mark_files)
    if funding is not None:
        funding_files = _files(funding, "funding")
        extras["funding"], sources["funding"] = _funding(funding_files), _label(funding_files)
    if book_depth is not None:
        depth_files = _files(book_depth, "book_depth")
        extras["depth"], sources["depth"] = load_book_depth(depth_files), _label(depth_files)
    market = Market(bars, symbol=symbol or _symbol_from(files[0]), origin=origin, sources=sources,
                    max_funding_rate=max_funding_rate,
                    description=f"Binance public data archives: {label}", **extras)
    return market.resample(timeframe) if timeframe else market
