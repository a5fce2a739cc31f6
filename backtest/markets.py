"""``Markets``: several instruments on one clock, for accounts that trade more than one.

The clock is the union of the instruments' bar times (they must share a timeframe). On it each
instrument keeps its own prices, mark, funding, depth and tier table. An instrument listed later
than others has no bars before its first one: it cannot be traded there, holds no position, and
adds nothing to equity (no NaN leaks into an account). A bar missing in the middle of an
instrument's history (an exchange outage) or after its last bar becomes a flat bar at the last
close — nothing can trigger on it — and is warned about; orders are only placed between an
instrument's first and last real bars.

>>> import backtest
>>> markets = backtest.Markets([backtest.load(backtest.sample_path(s)) for s in ("BTCUSDT", "ETHUSDT")])  # doctest: +SKIP
>>> markets.symbols                                                                                     # doctest: +SKIP
['BTCUSDT', 'ETHUSDT']
"""

from __future__ import annotations

import glob as globbing
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from backtest.data.validate import PRICE_COLUMNS, modal_spacing
from backtest.errors import DataWarning
from backtest.market import Market


class Markets:
    """Instruments on one clock: a mapping of symbol → :class:`Market`.

    Parameters
    ----------
    markets : Markets, a mapping symbol → Market, or Markets given as a list (each needs a
        symbol, e.g. from its file name).

    >>> import pandas as pd
    >>> idx = pd.date_range("2025-01-01", periods=3, freq="1h", tz="UTC")
    >>> bars = pd.DataFrame({"open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5}, index=idx)
    >>> both = Markets({"A": Market(bars), "B": Market(bars.iloc[1:])})
    >>> both.symbols, len(both), both.first_bar.tolist()
    (['A', 'B'], 3, [0, 1])
    """

    def __init__(self, markets) -> None:
        if isinstance(markets, Markets):
            markets = markets.by_symbol
        if isinstance(markets, Market):
            markets = [markets]
        if isinstance(markets, Mapping):
            items = [(str(symbol), market) for symbol, market in markets.items()]
        else:
            items = []
            for position, market in enumerate(markets):
                if not isinstance(market, Market):
                    raise ValueError(f"Markets takes Market objects, got {type(market).__name__} "
                                     f"at position {position}")
                if not market.symbol:
                    raise ValueError(f"the market at position {position} has no symbol; pass a "
                                     "dict {symbol: market} or load(..., symbol=...)")
                items.append((str(market.symbol), market))
        if not items:
            raise ValueError("Markets needs at least one market")
        symbols = [symbol for symbol, _ in items]
        if len(set(symbols)) != len(symbols):
            repeated = next(s for s in symbols if symbols.count(s) > 1)
            raise ValueError(f"symbol {repeated!r} appears twice in Markets")
        for symbol, market in items:
            if not isinstance(market, Market):
                raise ValueError(f"{symbol}: expected a Market, got {type(market).__name__}")
        self.by_symbol: dict[str, Market] = dict(items)
        self.symbols = symbols
        spacings = {symbol: market.freq for symbol, market in items if len(market) > 1}
        if len(set(spacings.values())) > 1:
            listing = ", ".join(f"{s} {f}" for s, f in spacings.items())
            raise ValueError(f"instruments on one clock need one timeframe; got {listing} "
                             "(resample them to a common one)")
        index = items[0][1].index
        for _, market in items[1:]:
            index = index.union(market.index)
        self.index = index
        self.freq = modal_spacing(index) if len(index) > 1 else next(iter(spacings.values()), pd.Timedelta(0))
        self._aligned: dict[str, pd.DataFrame] = {}
        first, last = [], []
        for symbol, market in items:
            positions = index.get_indexer(market.index)
            first.append(int(positions[0]))
            last.append(int(positions[-1]))
            gaps = len(market.index) - (positions[-1] - positions[0] + 1)
            if gaps:
                warnings.warn(f"{symbol}: {-gaps} bar(s) missing between its first and last bar on "
                              "the common clock; they are flat bars at the last close (no trading "
                              "signal acts there)", DataWarning, stacklevel=2)
        self.first_bar = np.asarray(first, dtype=np.int64)
        self.last_bar = np.asarray(last, dtype=np.int64)

    # ----- access ---------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.index)

    def __iter__(self):
        return iter(self.symbols)

    def __contains__(self, symbol) -> bool:
        return symbol in self.by_symbol

    def items(self):
        return self.by_symbol.items()

    def __getitem__(self, key):
        """``markets["BTCUSDT"]`` → that Market; ``markets[a:b]`` → Markets on a slice of the clock."""
        if isinstance(key, slice):
            if key.step not in (None, 1):
                raise ValueError("Markets slices keep every bar in time order")
            if all(k is None or isinstance(k, int | np.integer) for k in (key.start, key.stop)):
                times = self.index[key]
            else:
                times = self.index[self.index.slice_indexer(key.start, key.stop)]
            if len(times) == 0:
                raise ValueError("the slice holds no bars")
            sliced = {}
            for symbol, market in self.by_symbol.items():
                inside = market.index[(market.index >= times[0]) & (market.index <= times[-1])]
                if len(inside):
                    sliced[symbol] = market[inside[0]:inside[-1]]
            return Markets(sliced)
        if key not in self.by_symbol:
            raise KeyError(f"no instrument {key!r}; have {', '.join(self.symbols)}")
        return self.by_symbol[key]

    def aligned(self, symbol: str) -> pd.DataFrame:
        """The instrument's OHLC on the common clock: NaN before its first bar, flat bars at the
        last close where it has none after that."""
        if symbol not in self._aligned:
            market = self.by_symbol[symbol]
            frame = market.ohlcv[list(PRICE_COLUMNS)].reindex(self.index)
            closes = frame["close"].ffill()
            missing = frame["close"].isna() & closes.notna()
            for column in PRICE_COLUMNS:
                frame.loc[missing, column] = closes[missing]
            self._aligned[symbol] = frame
        return self._aligned[symbol]

    def series(self, symbol: str, name: str) -> pd.Series | pd.DataFrame | None:
        """mark / funding / depth of one instrument on the common clock (NaN where missing)."""
        value = getattr(self.by_symbol[symbol], name)
        return None if value is None else value.reindex(self.index)

    def __repr__(self) -> str:
        span = f"{self.index[0]} → {self.index[-1]}" if len(self) else "empty"
        return f"Markets({', '.join(self.symbols)}: {len(self)} bars of {self.freq}, {span})"


DATA_SUFFIXES = (".parquet", ".csv", ".feather", ".json")


def expand_paths(paths) -> list[Path]:
    """Paths, globs (``data/*-1h.parquet``) and folders (their data files) as a list of files."""
    if isinstance(paths, str | Path):
        paths = [paths]
    found: list[Path] = []
    for item in paths:
        text = str(item)
        if any(ch in text for ch in "*?["):
            matches = sorted(Path(p) for p in globbing.glob(text))
            if not matches:
                raise FileNotFoundError(f"{text}: no file matches")
            found.extend(matches)
        elif Path(text).is_dir():
            inside = sorted(p for p in Path(text).iterdir() if p.suffix.lower() in DATA_SUFFIXES)
            if not inside:
                raise FileNotFoundError(f"{text}: a folder with no data files ({', '.join(DATA_SUFFIXES)})")
            found.extend(inside)
        else:
            found.append(Path(text))
    return found


def load_markets(paths, **kwargs) -> Markets:
    """Load several files (paths, a glob such as ``"data/*-1h.parquet"``, or a folder) into
    :class:`Markets`; each file's symbol comes from its name (``BTCUSDT-1h.parquet`` → BTCUSDT).
    Keyword arguments go to :func:`backtest.load`.

    >>> markets = load_markets("data/*-1h.parquet")   # doctest: +SKIP
    """
    from backtest.data.readers import load

    files = expand_paths(paths)
    if not files:
        raise FileNotFoundError(f"{paths}: no data files")
    return Markets([load(path, **kwargs) for path in files])


def as_markets(obj) -> Markets:
    """A Market or Markets as Markets (a single Market becomes a set of one)."""
    if isinstance(obj, Markets):
        return obj
    if isinstance(obj, Market):
        return Markets({str(obj.symbol or "market"): obj})
    if isinstance(obj, Mapping | list | tuple) and all(
            isinstance(m, Market) for m in (obj.values() if isinstance(obj, Mapping) else obj)):
        return Markets(obj)
    raise ValueError(f"market must be a backtest.Market or Markets (see backtest.load), got "
                     f"{type(obj).__name__}")
