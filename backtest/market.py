"""``Market``: one instrument's validated bars, with optional mark price, funding and depth.

Choices:

- The index is a UTC ``DatetimeIndex`` of bar *open* times; naive timestamps are taken as UTC.
- Mark prices, funding and depth are aligned to the bars by :mod:`backtest.data.align`, never
  with look-ahead: finer mark candles are aggregated into their bar, coarser ones refused;
  funding events are summed into the bar holding them; depth is the minimum of the snapshots
  inside a bar (coarser depth is refused). Bars a series does not cover are NaN — the engine
  uses traded prices there, no depth impact, no funding — and a :class:`DataWarning` says how
  many bars are covered and names the first that is not.
- ``depth`` is the USD notional resting within ±2% of the mid, **bids and asks together** (the
  usual "2% market depth"); a market order walks one side of it (see
  :mod:`backtest.engine.simulate`).

>>> import pandas as pd
>>> bars = pd.DataFrame({"open": [100.0, 101], "high": [102.0, 103], "low": [99.0, 100],
...                      "close": [101.0, 102]},
...                     index=pd.date_range("2025-01-01", periods=2, freq="8h"))
>>> market = Market(bars, funding=pd.Series([0.0001], index=[pd.Timestamp("2025-01-01 08:00:00.004")]))
>>> market.funding.tolist()
[nan, 0.0001]
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pandas as pd

from backtest.data.align import (
    align_candles,
    align_events,
    align_snapshots,
    coverage_warning,
    funding_covered,
)
from backtest.data.validate import (
    DEFAULT_MAX_FUNDING_RATE,
    PRICE_COLUMNS,
    Origin,
    check_funding,
    check_index,
    check_prices,
    check_volume,
    modal_spacing,
    require_columns,
)
from backtest.errors import DataError

OHLCV_COLUMNS = (*PRICE_COLUMNS, "volume")


def _utc_index(index, origin: Origin) -> pd.DatetimeIndex:
    if not isinstance(index, pd.DatetimeIndex):
        raise origin.error("bars need a DatetimeIndex of bar open times", column="timestamp")
    return index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")


DEFAULT_MAX_MARK_DIVERGENCE = 0.5  # mark and traded prices of one contract never differ by half


def _check_divergence(mark: pd.DataFrame, bars: pd.DataFrame, bound: float, origin: Origin) -> None:
    """A mark price far from the traded price is a unit or symbol mix-up, not a market."""
    for column in ("open", "close"):
        ratio = (mark[column] / bars[column]).to_numpy()
        bad = np.abs(ratio - 1.0) > bound
        bad &= ~np.isnan(ratio)
        if bad.any():
            position = int(np.argmax(bad))
            raise origin.error(
                f"mark {column} {mark[column].iloc[position]:g} is {abs(ratio[position] - 1):.0%} "
                f"away from the traded {column} {bars[column].iloc[position]:g} at "
                f"{bars.index[position]} (more than {bound:.0%}): another symbol or unit? Pass "
                "max_mark_divergence=None to accept it", column=column, position=position)


def timeframe_label(spacing: pd.Timedelta) -> str:
    """A bar spacing as traders write it: "1h", "5m", "1d", "30s" (pandas prints
    "0 days 01:00:00").

    >>> timeframe_label(pd.Timedelta("4h")), timeframe_label(pd.Timedelta("90min"))
    ('4h', '90m')
    """
    seconds = pd.Timedelta(spacing).total_seconds()
    for unit, size in (("w", 604_800), ("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0 and (unit != "w" or seconds == size):
            return f"{int(seconds // size)}{unit}"
    return str(spacing)


class Market:
    """Aligned bars of one instrument, validated on construction.

    Parameters
    ----------
    ohlcv : DataFrame with ``open, high, low, close`` (and optionally ``volume``) on a
        DatetimeIndex of bar open times.
    mark : DataFrame of mark-price ``open, high, low, close`` candles at the bars' timeframe or
        finer, on any DatetimeIndex; aligned here.
    funding : Series of funding rates (fractions per interval) indexed by funding time.
    depth : Series of 2% order-book depth in USD (both sides), snapshots at any times.
    symbol, source : labels used in reports and error messages; ``sources`` maps "mark",
        "funding" and "depth" to the files they came from.
    synthetic, description : generated (not real) prices, and what the data is, in words;
        :func:`backtest.load` reads both from the file (the bundled sample says it is synthetic),
        and reports show them.
    validate : check prices, order and funding, and warn about partial coverage (default True).
    max_funding_rate : largest believable |funding rate| per interval.
    max_mark_divergence : largest believable |mark / traded - 1| at a bar's open or close
        (default 0.5); ``None`` accepts any.

    >>> idx = pd.date_range("2025-01-01", periods=3, freq="1h", tz="UTC")
    >>> m = Market(pd.DataFrame({"open": [1.0, 2, 3], "high": [2.0, 3, 4], "low": [0.5, 1, 2],
    ...                          "close": [2.0, 3, 4]}, index=idx), symbol="X")
    >>> len(m), m.freq
    (3, Timedelta('0 days 01:00:00'))
    """

    def __init__(self, ohlcv: pd.DataFrame, *, mark=None, funding=None, depth=None, symbol=None,
                 source=None, validate: bool = True,
                 max_funding_rate: float = DEFAULT_MAX_FUNDING_RATE, origin: Origin | None = None,
                 sources: dict | None = None,
                 max_mark_divergence: float | None = DEFAULT_MAX_MARK_DIVERGENCE,
                 synthetic: bool = False, description: str | None = None) -> None:
        origin = origin or Origin(file=None if source is None else str(source))
        if not isinstance(ohlcv, pd.DataFrame):
            raise origin.error(f"ohlcv must be a DataFrame, got {type(ohlcv).__name__}")
        frame = ohlcv.rename(columns=lambda c: str(c).strip().lower())
        missing = [c for c in PRICE_COLUMNS if c not in frame.columns]
        if missing:
            raise origin.error(f"missing column(s) {', '.join(missing)}; found: "
                               f"{', '.join(map(str, ohlcv.columns)) or 'none'}", column=missing[0])
        index = _utc_index(frame.index, origin)
        data = {c: frame[c].to_numpy(dtype=float) for c in PRICE_COLUMNS}
        data["volume"] = (frame["volume"].to_numpy(dtype=float) if "volume" in frame.columns
                          else np.full(len(frame), np.nan))
        self._ohlcv = pd.DataFrame(data, index=index)
        self._ohlcv.index.name = "timestamp"
        self.symbol = symbol
        self.source = origin.file
        self.synthetic = bool(synthetic)
        self.description = description

        sources = sources or {}

        def origin_of(name):
            return Origin(file=sources.get(name) or (origin.file and f"{origin.file} ({name})"))

        raw_funding = None
        if mark is not None:
            if not isinstance(mark, pd.DataFrame):
                raise origin.error(f"mark must be a DataFrame of candles, got {type(mark).__name__}")
            require_columns(mark.rename(columns=lambda c: str(c).strip().lower()), PRICE_COLUMNS,
                            origin_of("mark"))
            mark = align_candles(mark, index, origin_of("mark"))
        if funding is not None:
            if isinstance(funding, pd.DataFrame):
                funding = funding.iloc[:, 0]
            funding = funding.astype(float)
            if not funding.index.equals(index):
                raw_funding = funding
                funding = align_events(funding, index)
            funding.name = "funding_rate"
        if depth is not None:
            depth = align_snapshots(depth, index, origin_of("depth")).rename("depth_2pct_usd")
        self.mark, self.funding, self.depth = mark, funding, depth

        if validate:
            check_index(index, origin)
            check_prices(self._ohlcv, origin)
            check_volume(self._ohlcv, origin)
            if mark is not None:
                covered = mark.notna().all(axis=1).to_numpy()
                check_prices(mark[covered], origin_of("mark"))
                if max_mark_divergence is not None:
                    _check_divergence(mark, self._ohlcv, max_mark_divergence, origin_of("mark"))
                coverage_warning("mark price", covered, index, origin_of("mark"),
                                 "liquidation is checked on traded prices there")
            if funding is not None:
                check_funding(funding, origin, max_funding_rate)
                if raw_funding is not None:
                    coverage_warning("funding", funding_covered(raw_funding, index), index,
                                     origin_of("funding"), "no funding is charged there")
            if depth is not None:
                coverage_warning("depth", depth.notna().to_numpy(), index, origin_of("depth"),
                                 "no depth impact there")
            if depth is not None:
                bad = (depth < 0).to_numpy()
                if bad.any():
                    position = int(np.argmax(bad))
                    raise origin.error(f"depth is negative at {index[position]}",
                                       column="depth_2pct_usd", position=position)

    # ----- bars -------------------------------------------------------------------------------

    @property
    def ohlcv(self) -> pd.DataFrame:
        return self._ohlcv

    @property
    def index(self) -> pd.DatetimeIndex:
        return self._ohlcv.index

    @property
    def open(self) -> pd.Series:
        return self._ohlcv["open"]

    @property
    def high(self) -> pd.Series:
        return self._ohlcv["high"]

    @property
    def low(self) -> pd.Series:
        return self._ohlcv["low"]

    @property
    def close(self) -> pd.Series:
        return self._ohlcv["close"]

    @property
    def volume(self) -> pd.Series:
        return self._ohlcv["volume"]

    @cached_property
    def freq(self) -> pd.Timedelta:
        """The modal spacing of the bars (computed once)."""
        return modal_spacing(self.index)

    def __len__(self) -> int:
        return len(self._ohlcv)

    def _replace(self, ohlcv, mark, funding, depth) -> Market:
        return Market(ohlcv, mark=mark, funding=funding, depth=depth, symbol=self.symbol,
                      source=self.source, validate=False, synthetic=self.synthetic,
                      description=self.description)

    def __getitem__(self, key) -> Market:
        """Positional (``market[:100]``) or time (``market["2025-10":"2025-11"]``) slices."""
        if not isinstance(key, slice):
            raise TypeError("Market supports slices only, e.g. market[:100] or market['2025-10':]")
        if key.step not in (None, 1):
            raise ValueError(f"Market slices keep every bar in time order (step {key.step} would "
                             "reverse or skip bars); use market.resample('4h') for coarser bars")
        if all(k is None or isinstance(k, int | np.integer) for k in (key.start, key.stop)):
            positions = np.arange(len(self))[key]
        else:
            positions = np.arange(len(self))[self.index.slice_indexer(key.start, key.stop, key.step)]

        def take(obj):
            return None if obj is None else obj.iloc[positions]

        return self._replace(take(self._ohlcv), take(self.mark), take(self.funding), take(self.depth))

    def resample(self, rule: str) -> Market:
        """Coarser bars: open first, high max, low min, close last, volume and funding summed,
        depth the minimum in the bar (the thinnest book); empty bins dropped.

        >>> idx = pd.date_range("2025-01-01", periods=4, freq="1h", tz="UTC")
        >>> m = Market(pd.DataFrame({"open": [1.0, 2, 3, 4], "high": [2.0, 3, 4, 5],
        ...                          "low": [0.5, 1, 2, 3], "close": [2.0, 3, 4, 5]}, index=idx))
        >>> m.resample("2h").close.tolist()
        [3.0, 5.0]
        """
        from backtest.data.resample import resample_market

        return resample_market(self, rule)

    def __repr__(self) -> str:
        extras = [name for name in ("mark", "funding", "depth") if getattr(self, name) is not None]
        span = f"{self.index[0]} → {self.index[-1]}" if len(self) else "empty"
        kind = " (SYNTHETIC data)" if self.synthetic else ""
        return (f"Market({self.symbol or '?'}{kind}: {len(self)} bars of {timeframe_label(self.freq)}, {span}"
                f"{', with ' + ', '.join(extras) if extras else ''})")


def require_market(obj, name: str = "market") -> Market:
    if not isinstance(obj, Market):
        raise ValueError(f"{name} must be a backtest.Market (see backtest.load), got {type(obj).__name__}")
    return obj


__all__ = ["DataError", "Market", "align_events"]
