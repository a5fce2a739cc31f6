"""Readers for the common market-data layouts, format detected from the file.

Supported (``format="auto"`` picks by extension and content; override with ``format=``):

- ``"generic"``: a table with a timestamp column (``timestamp``, ``time``, ``date``,
  ``datetime``, ``open_time``; any case) holding ISO strings, datetimes or epoch numbers (s, ms,
  µs or ns, told apart by magnitude), and ``open, high, low, close[, volume]``; optional
  ``mark_open..mark_close``, ``funding_rate`` and ``depth_2pct_usd`` columns fill the market's
  mark, funding and depth (the layout of the sample data in ``data/``).
- ``"binance"``: Binance public kline dumps: 12 columns (open_time, open, high, low, close,
  volume, close_time, quote_volume, count, taker_buy_volume, taker_buy_quote_volume, ignore),
  with or without a header row, open time in ms or µs.
- ``"ccxt"``: ccxt ``fetch_ohlcv`` lists ``[[ms, o, h, l, c, v], ...]``: a Python list, a JSON
  file, or a headerless 6-column CSV.
- ``"freqtrade"``: freqtrade candles: feather (``date, open, high, low, close, volume``) or JSON
  (a list of ``[ms, o, h, l, c, v]``).

Funding history (:func:`load_funding`): Binance's ``fundingTime,fundingRate[,markPrice]`` CSV,
ccxt ``fetch_funding_rate_history`` dicts (``timestamp``, ``fundingRate``), freqtrade's funding
feather (the rate in column ``open``), or any (timestamp, rate) table. Mark candles
(:func:`load_mark`): any OHLC layout above; volume may be missing.

Zip archives holding one CSV (Binance's data.binance.vision files, e.g.
``BTCUSDT-1h-2024-01.zip``) read as that CSV; errors name ``archive.zip/member.csv``. Several
archives, mark, funding and book depth together: :func:`backtest.data.archives.load_archives`.
A folder written by ``backtest data download`` (it holds ``candles.parquet``) loads with its
``funding.parquet`` and ``mark.parquet`` attached (see :mod:`backtest.data.download`).

Files are only ever opened for reading.
"""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from backtest.data.validate import (
    DEFAULT_MAX_FUNDING_RATE,
    PRICE_COLUMNS,
    Origin,
    check_gaps,
    check_index,
    parse_timestamps,
    require_columns,
)
from backtest.errors import DataError

FORMATS = ("auto", "generic", "binance", "ccxt", "freqtrade")
TIME_COLUMNS = ("timestamp", "time", "date", "datetime", "open_time", "fundingtime", "calc_time")
BINANCE_KLINE_COLUMNS = ("open_time", "open", "high", "low", "close", "volume", "close_time",
                         "quote_volume", "count", "taker_buy_volume", "taker_buy_quote_volume",
                         "ignore")
CCXT_COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")
RATE_ALIASES = ("funding_rate", "fundingrate", "rate", "funding", "last_funding_rate")
MARK_COLUMNS = tuple(f"mark_{c}" for c in PRICE_COLUMNS)
DEPTH_COLUMN = "depth_2pct_usd"
MIN_BARS = 2  # one bar has no spacing: no timeframe, no returns
REPO = Path(__file__).resolve().parents[2]


def sample_path(symbol: str = "BTCUSDT", timeframe: str = "1h") -> Path:
    """Path of a bundled sample file, ``data/{symbol}-{timeframe}.parquet`` in the repository.

    >>> sample_path("BTCUSDT").name
    'BTCUSDT-1h.parquet'
    """
    path = REPO / "data" / f"{symbol}-{timeframe}.parquet"
    if not path.is_file():
        found = sorted(p.name for p in (REPO / "data").glob("*.parquet"))
        raise FileNotFoundError(f"no sample data {path}; available: {', '.join(found) or 'none'}"
                                " (regenerate with: python -m backtest.data.synthetic)")
    return path


# ----- raw tables ---------------------------------------------------------------------------------


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


POSITIONAL_LAYOUTS = {"binance": BINANCE_KLINE_COLUMNS, "ccxt": CCXT_COLUMNS}


def _read_csv(path, format: str = "auto", text: str | None = None) -> tuple[pd.DataFrame, Origin]:
    """A CSV file, or its ``text`` (a member of a zip archive; ``path`` then names it)."""
    if text is None:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            first_line = handle.readline()
    else:
        text = text.removeprefix("\ufeff")
        first_line = text.split("\n", 1)[0]
    first = next(csv.reader(io.StringIO(first_line)), [])
    if not first:
        raise DataError("file is empty", file=path)
    has_header = not all(_looks_numeric(cell) for cell in first if cell.strip())
    if text is None:
        frame = pd.read_csv(path, header=0 if has_header else None, encoding="utf-8-sig")
    else:
        frame = pd.read_csv(io.StringIO(text), header=0 if has_header else None)
    forced = POSITIONAL_LAYOUTS.get(format)
    if forced is not None:  # the layout is known: columns by position, whatever the header says
        if frame.shape[1] != len(forced):
            raise DataError(f"format={format!r} expects {len(forced)} columns, found {frame.shape[1]}",
                            file=path)
        frame.columns = list(forced)
    elif not has_header:
        layout = {len(BINANCE_KLINE_COLUMNS): BINANCE_KLINE_COLUMNS, len(CCXT_COLUMNS): CCXT_COLUMNS}
        columns = layout.get(frame.shape[1])
        if columns is None:
            raise DataError(f"headerless CSV with {frame.shape[1]} columns: expected 12 (Binance "
                            "kline dump) or 6 (ccxt OHLCV); add a header naming the columns",
                            file=path, row="1 (line 1 of the file)")
        frame.columns = list(columns)
    return frame, Origin(str(path), first_line=2 if has_header else 1)


def _read_zip(path: Path, format: str = "auto") -> tuple[pd.DataFrame, Origin]:
    """The one CSV inside a zip archive (Binance's data.binance.vision files); errors name it as
    ``archive.zip/member.csv``."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = [m for m in archive.namelist() if not m.endswith("/")]
            tables = [m for m in members if m.lower().endswith(".csv")] or members
            if len(tables) != 1:
                raise DataError(f"a zip archive with {len(tables)} files; expected one CSV "
                                f"(found: {', '.join(members) or 'none'})", file=path)
            raw = archive.read(tables[0])
    except zipfile.BadZipFile as exc:
        raise DataError(f"not a zip archive: {exc}", file=path) from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{tables[0]} is not UTF-8 text: {exc}", file=path) from exc
    return _read_csv(f"{path}/{tables[0]}", format, text=text)


def _from_rows(rows, origin: Origin) -> pd.DataFrame:
    """A list of [ms, o, h, l, c, v] lists or of dicts as a table."""
    if not isinstance(rows, list) or not rows:
        raise origin.error("expected a non-empty list of candles or records")
    if isinstance(rows[0], dict):
        return pd.DataFrame(rows)
    width = len(rows[0])
    if width not in (len(CCXT_COLUMNS), len(BINANCE_KLINE_COLUMNS)):
        raise origin.error(f"candles have {width} fields; expected [timestamp, open, high, low, "
                           "close, volume]", position=0)
    for position, row in enumerate(rows):
        if len(row) != width:
            raise origin.error(f"candle has {len(row)} fields, the first has {width}",
                               position=position)
    columns = CCXT_COLUMNS if width == len(CCXT_COLUMNS) else BINANCE_KLINE_COLUMNS
    return pd.DataFrame(rows, columns=list(columns))


def _read_json(path: Path) -> tuple[pd.DataFrame, Origin]:
    origin = Origin(str(path))
    try:
        with open(path, encoding="utf-8") as handle:
            payload = json.load(handle)
    except json.JSONDecodeError as exc:
        raise DataError(f"not valid JSON: {exc.msg} at line {exc.lineno}", file=path) from exc
    if isinstance(payload, dict):  # column-oriented ({"date": [...], "open": [...]})
        return pd.DataFrame(payload), origin
    return _from_rows(payload, origin), origin


def _time_index_as_column(frame: pd.DataFrame) -> pd.DataFrame:
    """``df.to_parquet()`` keeps a DatetimeIndex as the index: make it the timestamp column."""
    if isinstance(frame.index, pd.DatetimeIndex):
        name = frame.index.name if frame.index.name not in frame.columns else None
        attrs = dict(frame.attrs)
        frame = frame.reset_index(names=name or "timestamp")
        frame.attrs.update(attrs)
    return frame


# Keys of a data file's own metadata (pandas ``DataFrame.attrs``, kept by Parquet and Feather).
SYNTHETIC_ATTR, DESCRIPTION_ATTR = "perp_backtest.synthetic", "perp_backtest.description"
SYMBOL_ATTR = "perp_backtest.symbol"  # e.g. "BTCUSDT", when the file name does not say it


def data_note(frame: pd.DataFrame) -> tuple[bool, str | None]:
    """(synthetic, description) a data file says of itself in its metadata."""
    description = frame.attrs.get(DESCRIPTION_ATTR)
    return bool(frame.attrs.get(SYNTHETIC_ATTR, False)), (str(description) if description else None)


def read_table(source, *, format: str = "auto") -> tuple[pd.DataFrame, Origin]:
    """The raw table of ``source`` (a path, DataFrame or list of candles) and where it came from."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    if isinstance(source, pd.DataFrame):
        frame = source.reset_index() if isinstance(source.index, pd.DatetimeIndex) else source
        return frame.copy(), Origin()
    if isinstance(source, list):
        return _from_rows(source, Origin("<list>")), Origin("<list>")
    if not str(source).strip():
        raise DataError("no data file given (the path is empty)")
    path = Path(source)
    if path.is_dir():
        raise DataError("is a directory, not a data file (a folder written by `backtest data "
                        "download` holds candles.parquet)", file=path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    suffixes = "".join(path.suffixes[-2:]).lower()
    try:
        if suffixes.endswith((".parquet", ".pq")):
            return _time_index_as_column(pd.read_parquet(path)), Origin(str(path))
        if suffixes.endswith((".feather", ".ftr", ".arrow")):
            return _time_index_as_column(pd.read_feather(path)), Origin(str(path))
        if suffixes.endswith(".json"):
            return _read_json(path)
        if suffixes.endswith(".zip"):
            return _read_zip(path, format)
        return _read_csv(path, format)
    except (OSError, ValueError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"cannot read as {path.suffix or 'CSV'}: {exc}", file=path) from exc


# ----- normalising ----------------------------------------------------------------------------------


def _normalise_names(frame: pd.DataFrame) -> pd.DataFrame:
    def clean(name) -> str:
        text = re.sub(r"[^0-9a-z]+", "_", str(name).strip().lower()).strip("_")
        return "funding_rate" if text in RATE_ALIASES else text

    return frame.rename(columns=clean)


def _time_column(frame: pd.DataFrame, origin: Origin) -> str:
    for name in TIME_COLUMNS:
        if name in frame.columns:
            return name
    raise origin.error(f"no timestamp column: expected one of {', '.join(TIME_COLUMNS)}; found: "
                       f"{', '.join(map(str, frame.columns))}", column="timestamp")


def indexed(frame: pd.DataFrame, origin: Origin) -> pd.DataFrame:
    """Lower-case column names and a checked UTC index from the timestamp column."""
    original = list(frame.columns)
    frame = _normalise_names(frame)
    names = pd.Index(frame.columns)
    if names.has_duplicates:
        name = names[names.duplicated()][0]
        same = [str(o) for o, n in zip(original, names, strict=True) if n == name]
        raise origin.error(f"columns {' and '.join(map(repr, same))} both mean {name!r}; keep one",
                           column=name)
    blank = frame.isna().all(axis=1).to_numpy()
    if len(frame) and blank[-1]:  # trailing empty rows (",,,," at the end of a CSV)
        frame = frame.iloc[: len(frame) - int(np.argmin(blank[::-1]) if not blank.all() else len(frame))]
    if len(frame) == 0:
        raise origin.error("the file has no data rows")
    column = _time_column(frame, origin)
    index = parse_timestamps(frame[column], origin, column)
    check_index(index, origin, column)
    frame = frame.drop(columns=[column])
    frame.index = index
    frame.index.name = "timestamp"
    return frame


def _symbol_from(path) -> str | None:
    if not isinstance(path, str | Path):
        return None
    stem = Path(path).name.split(".")[0].split("-")[0]
    parts = stem.split("_")
    if len(parts) == 3 and parts[1] == parts[2]:  # freqtrade futures: XRP_USDT_USDT
        return parts[0] + parts[1]
    return "".join(parts) or None


def _numeric(frame: pd.DataFrame, columns, origin: Origin) -> pd.DataFrame:
    for column in columns:
        if column in frame.columns and not pd.api.types.is_numeric_dtype(frame[column].dtype):
            converted = pd.to_numeric(frame[column], errors="coerce")
            bad = converted.isna() & frame[column].notna()
            if bad.any():
                position = int(np.argmax(bad.to_numpy()))
                raise origin.error(f"not a number: {frame[column].iloc[position]!r}",
                                   column=column, position=position)
            frame[column] = converted
    return frame


# ----- public loaders -----------------------------------------------------------------------------


FILE_KINDS = ("candles", "mark", "funding", "tiers")


def _is_tier_payload(payload) -> bool:
    if isinstance(payload, dict):
        if "brackets" in payload:
            return True
        payload = next(iter(payload.values()), None)
    return isinstance(payload, list) and bool(payload) and isinstance(payload[0], dict) \
        and ("maintenanceMarginRate" in payload[0] or "mmr" in payload[0])


def file_kind(path) -> str:
    """What a data file holds: "candles", "mark" (mark-price candles), "funding" (funding-rate
    history) or "tiers" (maintenance-margin brackets), from its content and name — freqtrade's
    ``…-8h-funding_rate.feather`` keeps the rate in an ``open`` column, so the name decides
    there.

    >>> file_kind("XRP_USDT_USDT-8h-funding_rate.feather"), file_kind("BTCUSDT-1h-mark.parquet")
    ('funding', 'mark')
    """
    path = Path(path)
    name = path.name.lower()
    if name.endswith(".json") and path.is_file():
        try:
            if _is_tier_payload(json.loads(path.read_text())):
                return "tiers"
        except (OSError, ValueError):
            pass
    if "funding" in name:
        return "funding"
    if re.search(r"(^|[-_.])mark([-_.]|$)", name) or "markprice" in name.replace("_", ""):
        return "mark"
    if path.is_file():
        frame, _ = read_table(path)
        columns = set(_normalise_names(frame).columns)
        if "funding_rate" in columns and not set(PRICE_COLUMNS) <= columns:
            return "funding"
    return "candles"


def load_funding(source, *, format: str = "auto") -> pd.Series:
    """Funding-rate history as a Series of rates (fractions) indexed by funding time (UTC).

    >>> load_funding(pd.DataFrame({"fundingTime": [1700006400000], "fundingRate": [0.0001]}))
    timestamp
    2023-11-15 00:00:00+00:00    0.0001
    Name: funding_rate, dtype: float64
    """
    frame, origin = read_table(source, format=format)
    frame = indexed(frame, origin)
    column = "funding_rate" if "funding_rate" in frame.columns else "open" if "open" in frame.columns else None
    if column is None:
        raise origin.error("no funding-rate column: expected fundingRate, funding_rate or rate "
                           f"(freqtrade: open); found: {', '.join(map(str, frame.columns))}",
                           column="funding_rate")
    frame = _numeric(frame, [column], origin)
    return frame[column].astype(float).rename("funding_rate")


def load_mark(source, *, format: str = "auto") -> pd.DataFrame:
    """Mark-price candles (open, high, low, close) indexed by bar open time (UTC)."""
    frame, origin = read_table(source, format=format)
    frame = indexed(frame, origin)
    require_columns(frame, PRICE_COLUMNS, origin)
    return _numeric(frame, PRICE_COLUMNS, origin)[list(PRICE_COLUMNS)].astype(float)


def load(path, *, format: str = "auto", symbol: str | None = None, funding=None, mark=None,
         depth=None, timeframe: str | None = None, on_gap: str = "warn",
         max_funding_rate: float = DEFAULT_MAX_FUNDING_RATE):
    """Load and validate bars into a :class:`~backtest.market.Market`.

    ``funding`` and ``mark`` may be paths (any supported layout) or a Series/DataFrame; they are
    aligned to the bars. ``depth`` is a Series of 2%-depth in USD. ``timeframe`` (e.g. ``"4h"``)
    resamples after loading. ``on_gap``: ``"warn"`` (default), ``"raise"`` or ``"ignore"``
    missing bars.

    >>> import backtest
    >>> market = backtest.load(backtest.sample_path("BTCUSDT"))   # doctest: +SKIP
    >>> market.funding.dropna().head(1)                            # doctest: +SKIP
    """
    from backtest.market import Market

    named = path  # the symbol's fallback: the file's name, or the downloaded folder's
    if isinstance(path, str | Path) and str(path).strip() and Path(path).is_dir():
        path, funding, mark = _folder_sources(Path(path), funding, mark)
    frame, origin = read_table(path, format=format)
    synthetic, description = data_note(frame)
    symbol = symbol or frame.attrs.get(SYMBOL_ATTR)
    frame = indexed(frame, origin)
    require_columns(frame, PRICE_COLUMNS, origin)
    extras = [*MARK_COLUMNS, "funding_rate", DEPTH_COLUMN, "volume"]
    frame = _numeric(frame, [*PRICE_COLUMNS, *extras], origin)
    if len(frame) < MIN_BARS:
        raise origin.error(f"only {len(frame)} bar: a backtest needs at least {MIN_BARS}")
    check_gaps(frame.index, origin, on_gap)

    sources = {name: str(value) for name, value in (("mark", mark), ("funding", funding))
               if isinstance(value, str | Path)}
    if mark is None and all(c in frame.columns for c in MARK_COLUMNS):
        mark = frame[list(MARK_COLUMNS)].rename(columns=lambda c: c.removeprefix("mark_"))
    elif mark is not None and not isinstance(mark, pd.DataFrame):
        mark = load_mark(mark)
    if funding is None and "funding_rate" in frame.columns:
        funding = frame["funding_rate"]
    elif funding is not None and not isinstance(funding, pd.Series | pd.DataFrame):
        funding = load_funding(funding)
    if depth is None and DEPTH_COLUMN in frame.columns:
        depth = frame[DEPTH_COLUMN]

    ohlcv = frame[[c for c in (*PRICE_COLUMNS, "volume") if c in frame.columns]]
    market = Market(ohlcv, mark=mark, funding=funding, depth=depth,
                    symbol=symbol or _symbol_from(named), source=origin.file,
                    max_funding_rate=max_funding_rate, origin=origin, sources=sources,
                    synthetic=synthetic, description=description)
    return market.resample(timeframe) if timeframe else market


def _folder_sources(folder: Path, funding, mark):
    """A folder written by ``backtest data download`` (see :mod:`backtest.data.download`): its
    candles, with its funding and mark files unless given; other folders are refused by
    :func:`read_table`."""
    from backtest.data.download import folder_files

    files = folder_files(folder)
    if files is None:
        return folder, funding, mark
    funding = files.get("funding") if funding is None else funding
    mark = files.get("mark") if mark is None else mark
    return files["candles"], funding, mark
