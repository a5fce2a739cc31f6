"""Download perpetual-futures data through ccxt: candles, funding, mark prices and leverage tiers.

``backtest data download BTCUSDT --exchange binanceusdm --timeframe 1h --since 2024-01-01``
(ccxt comes with the optional extra: ``pip install -e ".[data]"``) writes one folder per
exchange, symbol and timeframe::

    <out>/<exchange>/<SYMBOL>-<timeframe>/         e.g. data/binanceusdm/BTCUSDT-1h/
        candles.parquet   timestamp (bar open, UTC), open, high, low, close, volume (base units)
        mark.parquet      timestamp, open, high, low, close: mark-price candles
        funding.parquet   timestamp (funding time, UTC), funding_rate (a fraction per interval)
        tiers.json        leverage tiers in ccxt's ``fetch_leverage_tiers`` layout,
                          ``{"BTC/USDT:USDT": [tiers]}``, the maintenance amount in ``info.cum``

``backtest.load(folder)`` returns the Market with the mark and funding aligned to the bars;
``backtest.load_tiers(folder / "tiers.json", symbol="BTCUSDT")`` the tier table. SYMBOL is the
market's base and quote (``BTC/USDT:USDT`` → ``BTCUSDT``), so the shipped tier tables and report
names match; each Parquet file also records its exchange, unified symbol and timeframe in its
metadata. Symbols are given as ``BTCUSDT``, ``BTC/USDT:USDT`` or the exchange's own id, and
mapped to the exchange's perpetual (swap) market after ``load_markets()``.

Semantics, chosen to lose nothing and invent nothing:

- **Complete bars only**: a bar still forming (its open + timeframe after the exchange's clock)
  is left for the next run, which would otherwise never correct it.
- **Incremental**: a run fetches from the last stored timestamp + one bar (funding: + 1 ms) up
  to ``until`` (exclusive) or now; a ``since`` before the first stored row also fetches the
  part before it. Stored rows are never deleted; a row fetched again replaces the stored one.
- **Resumable**: fetched rows are merged into the file every ``flush_rows`` rows and whenever the
  run stops (finished, interrupted, network lost), each time written to a temporary file and
  renamed over the old one: the file always holds a complete state, and a second run resumes
  where the first stopped.
- **Gaps** the exchange leaves in candles or mark candles are reported (a :class:`DataWarning`
  naming the first missing bar and the count), never filled.
- **Pagination** moves ``since`` to the last returned timestamp + one bar until ``until``, the
  present, or a page with nothing new; rows are de-duplicated on their timestamp.
- **Rate limits**: the exchange is built with ``enableRateLimit=True`` (ccxt's own limiter); on
  ``RateLimitExceeded``/``DDoSProtection`` the call waits 1, 2, 4, 8, 16 s (at least the
  exchange's ``rateLimit``) and tries again.
- **Tiers** are fetched when ``tiers.json`` is missing (delete it to refresh). Binance's leverage
  brackets are a signed endpoint: set ``BACKTEST_API_KEY`` and ``BACKTEST_API_SECRET`` (a
  read-only key) to get them; without, the download warns and runs fall back to the shipped
  table for the symbol, if any. Where a tier has no ``info.cum`` it is taken from
  ``info.mmDeduction`` (Bybit) or derived as Binance defines it, ``cum[k] = cum[k-1] +
  min_notional[k] × (mmr[k] − mmr[k-1])``; a table :func:`~backtest.engine.margin.check_tiers`
  refuses is not written (warned about).

Errors are one line (:class:`DownloadError`): ccxt missing, unknown exchange or symbol (with
close matches), an exchange without the needed ccxt methods, no network.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import io
import json
import os
import re
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from backtest.errors import DataWarning
from backtest.outputs import write_atomic

CANDLES_FILE, MARK_FILE, FUNDING_FILE, TIERS_FILE = (
    "candles.parquet", "mark.parquet", "funding.parquet", "tiers.json")
FILES = {"candles": CANDLES_FILE, "mark": MARK_FILE, "funding": FUNDING_FILE, "tiers": TIERS_FILE}
KINDS = ("candles", "mark", "funding", "tiers")
INSTALL_HINT = ("ccxt is not installed: pip install -e \".[data]\" (or pip install \"ccxt>=4.2\") "
                "to download from exchanges")
# rows per request; freqtrade's tested values for these exchanges (None: the exchange's default)
PAGE_LIMITS = {"binanceusdm": {"candles": 1000, "funding": 1000},
               "bybit": {"candles": 1000, "funding": 200},
               "okx": {"candles": 100, "funding": 100}}
FLUSH_ROWS = 20_000
RETRIES = 5
META_PREFIX = "perp_backtest."
PRICE = ["open", "high", "low", "close"]
TIMEFRAME = re.compile(r"^(\d+)([smhdw])$")
UNIT_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}


class DownloadError(Exception):
    """A download that cannot go on, in one line (what is already written is kept)."""


# ----- the folder layout ----------------------------------------------------------------------


def folder_files(folder) -> dict[str, Path] | None:
    """The files of a downloaded folder by kind ("candles", "mark", "funding", "tiers"); None
    when ``folder`` is not one (no ``candles.parquet``).

    >>> folder_files("/nonexistent") is None
    True
    """
    folder = Path(folder)
    if not (folder / CANDLES_FILE).is_file():
        return None
    return {kind: folder / name for kind, name in FILES.items() if (folder / name).is_file()}


def is_symbol_folder(path) -> bool:
    """Whether ``path`` is a folder written by :func:`download` (it holds ``candles.parquet``):
    one market, not a folder of data files that make one account."""
    return Path(path).is_dir() and (Path(path) / CANDLES_FILE).is_file()


def tiers_path(folder) -> Path | None:
    """The tier table of a downloaded folder, if the download got one."""
    path = Path(folder) / TIERS_FILE
    return path if is_symbol_folder(folder) and path.is_file() else None


def downloaded_tiers(paths) -> str | dict | None:
    """What ``tiers=`` should be for these ``--data`` paths: the one folder's ``tiers.json``, a
    dict {symbol: tiers.json} for several folders, or None (no downloaded tiers)."""
    paths = [paths] if isinstance(paths, str | Path) else list(paths)
    found = {_plain(Path(p).name.rsplit("-", 1)[0]): tiers_path(p) for p in paths}
    found = {symbol: str(path) for symbol, path in found.items() if path is not None}
    if len(paths) == 1:
        return next(iter(found.values()), None)
    return found or None


def symbol_folder(out, exchange_id: str, symbol: str, timeframe: str) -> Path:
    """``<out>/<exchange>/<SYMBOL>-<timeframe>``."""
    return Path(out) / exchange_id / f"{_plain(symbol)}-{timeframe}"


def _plain(symbol: str) -> str:
    """``BTC/USDT:USDT`` → ``BTCUSDT`` (base and quote, upper case)."""
    return re.sub(r"[^0-9A-Z]", "", str(symbol).upper().split(":")[0])


# ----- the exchange ---------------------------------------------------------------------------


def make_exchange(name: str):
    """A ccxt exchange by id, with ccxt's rate limiter on (tests replace this function)."""
    try:
        import ccxt
    except ImportError:
        raise DownloadError(INSTALL_HINT) from None
    if name not in ccxt.exchanges:
        close = difflib.get_close_matches(name.lower(), ccxt.exchanges, n=3)
        raise DownloadError(f"unknown exchange {name!r}: ccxt has no such exchange"
                            + (f"; did you mean {', '.join(close)}?" if close else ""))
    config = {"enableRateLimit": True}
    key, secret = os.environ.get("BACKTEST_API_KEY"), os.environ.get("BACKTEST_API_SECRET")
    if key and secret:  # only Binance's leverage brackets need a (read-only) key
        config.update(apiKey=key, secret=secret)
    return getattr(ccxt, name)(config)


def _is(exc: BaseException, *names: str) -> bool:
    """Whether ``exc`` is one of ccxt's errors by class name (so ccxt need not be imported)."""
    return any(cls.__name__ in names for cls in type(exc).__mro__)


def _one_line(exc: BaseException, width: int = 200) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= width else text[: width - 1] + "…"


@dataclasses.dataclass
class _Client:
    """Calls to the exchange with the back-off on rate limits and one-line network errors."""

    exchange: object
    sleep: Callable[[float], None] = time.sleep
    retries: int = RETRIES
    calls: int = 0

    @property
    def name(self) -> str:
        return str(getattr(self.exchange, "id", type(self.exchange).__name__))

    def __call__(self, method: str, *args, **kwargs):
        wait = max(1.0, float(getattr(self.exchange, "rateLimit", 0) or 0) / 1000)
        for attempt in range(self.retries + 1):
            self.calls += 1
            try:
                return getattr(self.exchange, method)(*args, **kwargs)
            except Exception as exc:
                if _is(exc, "RateLimitExceeded", "DDoSProtection"):
                    if attempt < self.retries:
                        self.sleep(wait * 2 ** attempt)
                        continue
                    raise DownloadError(f"{self.name} kept refusing requests (rate limit, "
                                        f"{self.retries + 1} tries): wait a while and run again; "
                                        "what was fetched is kept") from exc
                if _is(exc, "NetworkError", "RequestTimeout"):
                    raise DownloadError(f"cannot reach {self.name}: {_one_line(exc)} "
                                        "(no network?)") from exc
                raise
        raise AssertionError("unreachable")

    def now_ms(self) -> int:
        clock = getattr(self.exchange, "milliseconds", None)
        return int(clock()) if callable(clock) else int(time.time() * 1000)


def timeframe_ms(timeframe: str) -> int:
    """``"1h"`` → 3600000; seconds to weeks (months have no fixed length).

    >>> timeframe_ms("15m"), timeframe_ms("1d")
    (900000, 86400000)
    """
    match = TIMEFRAME.match(str(timeframe).strip())
    if not match or int(match.group(1)) == 0:
        raise DownloadError(f"timeframe {timeframe!r}: expected a number and a unit s, m, h, d "
                            "or w, e.g. 1h or 15m")
    return int(match.group(1)) * UNIT_MS[match.group(2)]


def _check_exchange(client: _Client, timeframe: str, kinds) -> None:
    has = getattr(client.exchange, "has", {}) or {}
    needed = [("fetchOHLCV", "candles"), ("fetchFundingRateHistory", "funding-rate history")]
    for capability, what in needed:
        if capability == "fetchFundingRateHistory" and "funding" not in kinds:
            continue
        if not has.get(capability):
            raise DownloadError(f"exchange {client.name} cannot download {what} through ccxt "
                                f"(has[{capability!r}] is false): choose another exchange, e.g. "
                                "binanceusdm, bybit or okx")
    timeframes = getattr(client.exchange, "timeframes", None) or {}
    if timeframes and timeframe not in timeframes:
        raise DownloadError(f"{client.name} has no timeframe {timeframe!r}; it has: "
                            f"{', '.join(timeframes)}")


def resolve_symbol(markets: dict, given: str, exchange_id: str = "the exchange") -> str:
    """The unified symbol of the perpetual (swap) market ``given`` names: ``BTCUSDT``,
    ``BTC/USDT:USDT`` or the exchange's id; linear (USDT/USDC-settled) first.

    >>> markets = {"BTC/USDT": {"id": "BTCUSDT", "swap": False},
    ...            "BTC/USDT:USDT": {"id": "BTCUSDT", "swap": True, "linear": True}}
    >>> resolve_symbol(markets, "btcusdt")
    'BTC/USDT:USDT'
    """
    text = str(given).strip()
    swaps = {symbol: market for symbol, market in markets.items() if market.get("swap")}
    if text in swaps:
        return text
    wanted = _plain(text)
    matches = [symbol for symbol, market in swaps.items()
               if str(market.get("id", "")).upper() == text.upper()
               or _plain(symbol) == wanted]
    if matches:
        matches.sort(key=lambda s: (not swaps[s].get("linear", True),
                                    swaps[s].get("active") is False, s != f"{text}"))
        return matches[0]
    names = sorted({*swaps, *(str(m.get("id", "")) for m in swaps.values())} - {""})
    close = difflib.get_close_matches(text.upper(), names, n=5, cutoff=0.5) or \
        difflib.get_close_matches(wanted, [_plain(n) for n in names], n=5, cutoff=0.5)
    raise DownloadError(f"unknown symbol {given!r} on {exchange_id} (no perpetual market by that "
                        "name)" + (f"; close: {', '.join(close)}" if close else ""))


# ----- one stored series ------------------------------------------------------------------------


@dataclasses.dataclass
class _Store:
    """A Parquet file of rows keyed by ``timestamp`` (epoch ms), merged and rewritten atomically."""

    path: Path
    columns: list[str]
    meta: dict
    flush_rows: int = FLUSH_ROWS
    stored: pd.DataFrame | None = None
    pending: list = dataclasses.field(default_factory=list)
    new: list = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        if self.path.is_file():
            frame = pd.read_parquet(self.path)
            times = pd.DatetimeIndex(frame["timestamp"]).as_unit("ms").asi8
            self.stored = frame.assign(timestamp=times)[["timestamp", *self.columns]]
        else:
            self.stored = pd.DataFrame({"timestamp": np.array([], dtype=np.int64),
                                        **{c: np.array([], dtype=float) for c in self.columns}})

    @property
    def first(self) -> int | None:
        return int(self.stored["timestamp"].iloc[0]) if len(self.stored) else None

    @property
    def last(self) -> int | None:
        return int(self.stored["timestamp"].iloc[-1]) if len(self.stored) else None

    def add(self, rows: pd.DataFrame) -> None:
        self.pending.append(rows)
        self.new.append(rows["timestamp"].to_numpy())
        if sum(len(r) for r in self.pending) >= self.flush_rows:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        merged = pd.concat([self.stored, *self.pending], ignore_index=True)
        merged = merged.drop_duplicates("timestamp", keep="last").sort_values("timestamp")
        self.stored, self.pending = merged.reset_index(drop=True), []
        times = pd.to_datetime(self.stored["timestamp"], unit="ms", utc=True)
        out = self.stored.assign(timestamp=times.astype("datetime64[ns, UTC]"))
        out.attrs.update({META_PREFIX + k: v for k, v in self.meta.items()})
        buffer = io.BytesIO()
        out.to_parquet(buffer, index=False)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(self.path, buffer.getvalue())

    def new_times(self) -> np.ndarray:
        return np.unique(np.concatenate(self.new)) if self.new else np.array([], dtype=np.int64)


def _gaps(store: _Store, step: int) -> tuple[int, int | None]:
    """Missing bars next to the rows fetched this run: (count, first missing bar in ms)."""
    new = store.new_times()
    if len(new) == 0:
        return 0, None
    times = store.stored["timestamp"].to_numpy(dtype=np.int64)
    steps = np.diff(times)
    touched = np.isin(times[:-1], new) | np.isin(times[1:], new)
    gaps = (steps > step) & touched
    if not gaps.any():
        return 0, None
    missing = int(((steps[gaps] + step - 1) // step - 1).sum())
    return missing, int(times[:-1][gaps][0] + step)


# ----- fetching -----------------------------------------------------------------------------------


def _candle_page(client: _Client, symbol: str, timeframe: str, mark: bool, limit):
    params = {"price": "mark"} if mark else {}

    def fetch(since: int) -> pd.DataFrame:
        rows = client("fetch_ohlcv", symbol, timeframe, since, limit, params) or []
        frame = pd.DataFrame([list(row[:6]) + [None] * (6 - len(row[:6])) for row in rows],
                             columns=["timestamp", *PRICE, "volume"])
        frame["timestamp"] = frame["timestamp"].astype(np.int64)
        for column in [*PRICE, "volume"]:
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
        return frame if not mark else frame.drop(columns=["volume"])

    return fetch


def _funding_page(client: _Client, symbol: str, limit):
    def fetch(since: int) -> pd.DataFrame:
        rows = client("fetch_funding_rate_history", symbol, since, limit) or []
        frame = pd.DataFrame({"timestamp": [row.get("timestamp") for row in rows],
                              "funding_rate": [row.get("fundingRate") for row in rows]})
        frame = frame.dropna(subset=["timestamp"])
        frame["timestamp"] = frame["timestamp"].astype(np.int64)
        frame["funding_rate"] = pd.to_numeric(frame["funding_rate"], errors="coerce").astype(float)
        return frame

    return fetch


def _segments(store: _Store, since: int | None, end: int, step: int) -> list[tuple[int, int]]:
    """The time ranges [start, end) not yet stored: before the first row (when ``since`` asks
    for it) and after the last."""
    if store.first is None:
        return [(since, end)] if since is not None and since < end else []
    out = []
    if since is not None and since < store.first:
        out.append((since, store.first))
    start = store.last + step if since is None else max(since, store.last + step)
    if start < end:
        out.append((start, end))
    return out


def _fetch_series(fetch, store: _Store, segments, step: int, bar) -> None:
    try:
        for start, end in segments:
            since = start
            while since < end:
                rows = fetch(since)
                rows = rows[(rows["timestamp"] >= since) & (rows["timestamp"] < end)]
                rows = rows.drop_duplicates("timestamp", keep="last")
                if rows.empty:
                    break
                store.add(rows)
                if bar is not None:
                    bar.update(len(rows))
                since = int(rows["timestamp"].max()) + step
    finally:
        store.flush()  # whatever stopped the run, what was fetched is written


# ----- tiers ------------------------------------------------------------------------------------


def _with_maintenance_amounts(tiers: list[dict]) -> list[dict]:
    """ccxt tiers with ``info.cum`` everywhere (see the module docstring); None bounds → inf."""
    out, cum, previous_mmr = [], 0.0, None
    for tier in copy.deepcopy(tiers):
        tier = dict(tier)
        info = dict(tier.get("info") or {})
        if tier.get("maxNotional") is None:
            tier["maxNotional"] = float("inf")
        mmr = float(tier["maintenanceMarginRate"])
        low = float(tier.get("minNotional") or 0.0)
        if "cum" in info and info["cum"] is not None:
            cum = float(info["cum"])
        elif info.get("mmDeduction") not in (None, ""):
            cum = float(info["mmDeduction"])
            info["cum"] = str(cum)
        else:
            cum = 0.0 if previous_mmr is None else cum + low * (mmr - previous_mmr)
            info["cum"] = repr(cum)
        previous_mmr = mmr
        tier["info"] = info
        out.append(tier)
    return out


def _fetch_tiers(client: _Client, symbol: str, path: Path) -> str:
    """Write ``tiers.json``; what happened, in words."""
    from backtest.engine.margin import load_tiers

    has = getattr(client.exchange, "has", {}) or {}
    try:
        if has.get("fetchLeverageTiers"):
            tiers = (client("fetch_leverage_tiers", [symbol]) or {}).get(symbol)
        elif has.get("fetchMarketLeverageTiers"):
            tiers = client("fetch_market_leverage_tiers", symbol)
        else:
            return f"no tiers ({client.name} does not publish leverage tiers through ccxt)"
    except DownloadError:
        raise
    except Exception as exc:
        hint = (" (Binance's brackets need a read-only key: set BACKTEST_API_KEY and "
                "BACKTEST_API_SECRET)" if _is(exc, "AuthenticationError", "PermissionDenied")
                else "")
        warnings.warn(f"{client.name} {symbol}: leverage tiers not downloaded: "
                      f"{type(exc).__name__}: {_one_line(exc)}{hint}", DataWarning, stacklevel=2)
        return "no tiers"
    if not tiers:
        return "no tiers (the exchange returned none for this market)"
    payload = {symbol: _with_maintenance_amounts(tiers)}
    text = json.dumps(payload, indent=1, default=str)
    temporary = path.with_name(f".{path.name}.check")
    try:
        temporary.write_text(text)
        load_tiers(temporary, symbol=symbol)
    except (ValueError, KeyError, TypeError) as exc:
        warnings.warn(f"{client.name} {symbol}: leverage tiers not written, the table does not "
                      f"check: {_one_line(exc)}", DataWarning, stacklevel=2)
        return "no tiers (the table does not check)"
    finally:
        temporary.unlink(missing_ok=True)
    write_atomic(path, text)
    return f"{len(tiers)} tiers"


# ----- the entry point ----------------------------------------------------------------------------


@dataclasses.dataclass
class Downloaded:
    """What one symbol's download did: rows added per series, gaps, the tier table."""

    symbol: str
    folder: Path
    added: dict
    rows: dict
    gaps: dict
    tiers: str

    def summary(self) -> str:
        parts = [f"{kind} +{self.added[kind]:,} ({self.rows[kind]:,} stored)" for kind in self.added]
        return f"{self.symbol} → {self.folder}: " + ", ".join([*parts, self.tiers])


def _ms(when, what: str) -> int | None:
    if when is None or (isinstance(when, str) and not when.strip()):
        return None
    try:
        stamp = pd.Timestamp(when)
    except (ValueError, TypeError) as exc:
        raise DownloadError(f"{what} {when!r}: not a date (e.g. 2024-01-01 or 2024-01-01T08:00)") from exc
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return int(stamp.value // 1_000_000)


def download(symbols, *, exchange="binanceusdm", timeframe: str = "1h", since=None, until=None,
             out="data", kinds=KINDS, limit: int | None = None, progress: bool | None = None,
             flush_rows: int = FLUSH_ROWS, sleep: Callable[[float], None] = time.sleep,
             retries: int = RETRIES) -> list[Downloaded]:
    """Download (or bring up to date) candles, mark candles, funding and tiers of ``symbols``
    into ``<out>/<exchange>/<SYMBOL>-<timeframe>/`` (see the module docstring).

    ``exchange``: a ccxt id or an exchange object (anything with ccxt's methods). ``since`` /
    ``until``: dates (UTC unless they say otherwise); ``since`` may be left out when the folder
    already holds data (the run continues from its end). ``kinds``: which of "candles", "mark",
    "funding", "tiers". ``limit``: rows per request (default: per exchange). ``progress``: a bar
    per symbol (default: when stderr is a terminal).
    """
    symbols = [symbols] if isinstance(symbols, str) else list(symbols)
    if not symbols:
        raise DownloadError("give at least one symbol, e.g. BTCUSDT")
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        raise DownloadError(f"unknown kind {unknown[0]!r}; kinds: {', '.join(KINDS)}")
    step = timeframe_ms(timeframe)
    start, stop = _ms(since, "--since"), _ms(until, "--until")
    if start is not None and stop is not None and stop <= start:
        raise DownloadError(f"--until {until} is not after --since {since}")
    client = _Client(make_exchange(exchange) if isinstance(exchange, str) else exchange,
                     sleep=sleep, retries=retries)
    _check_exchange(client, timeframe, kinds)
    markets = client("load_markets") or getattr(client.exchange, "markets", None) or {}
    resolved = [resolve_symbol(markets, given, client.name) for given in symbols]
    progress = sys.stderr.isatty() if progress is None else progress
    return [_download_one(client, symbol, timeframe, step, start, stop, Path(out), kinds, limit,
                          progress, flush_rows) for symbol in resolved]


def _download_one(client, symbol, timeframe, step, start, stop, out, kinds, limit, progress,
                  flush_rows) -> Downloaded:
    folder = symbol_folder(out, client.name, symbol, timeframe)
    meta = {"exchange": client.name, "symbol": _plain(symbol), "market": symbol,
            "timeframe": timeframe,
            "description": f"{client.name} {symbol} perpetual, downloaded through ccxt"}
    limits = {**PAGE_LIMITS.get(client.name, {}), **({"candles": limit, "funding": limit} if limit else {})}
    now = client.now_ms()
    series = {"candles": (CANDLES_FILE, [*PRICE, "volume"], step),
              "mark": (MARK_FILE, PRICE, step), "funding": (FUNDING_FILE, ["funding_rate"], 1)}
    stores, plans = {}, {}
    for kind in ("candles", "mark", "funding"):
        if kind not in kinds:
            continue
        name, columns, spacing = series[kind]
        store = _Store(folder / name, columns, {**meta, "kind": kind}, flush_rows)
        complete = now - step + 1 if kind != "funding" else now + 1  # bars that have closed
        end = complete if stop is None else min(stop, complete)
        if store.first is None and start is None:
            raise DownloadError(f"{folder}: nothing stored yet; give --since (e.g. --since 2024-01-01)")
        stores[kind], plans[kind] = store, _segments(store, start, end, spacing)
    bar = _progress_bar(symbol, plans, step) if progress else None
    try:
        for kind, store in stores.items():
            if kind == "funding":
                fetch = _funding_page(client, symbol, limits.get("funding"))
            else:
                fetch = _candle_page(client, symbol, timeframe, kind == "mark", limits.get("candles"))
            if bar is not None:
                bar.set_postfix_str(kind)
            _fetch_series(fetch, store, plans[kind], series[kind][2], bar)
    finally:
        if bar is not None:
            bar.close()
    gaps = {}
    for kind in ("candles", "mark"):
        if kind in stores:
            count, first = _gaps(stores[kind], step)
            gaps[kind] = count
            if count:
                warnings.warn(f"{client.name} {symbol} {kind}: the exchange returned no "
                              f"{timeframe} bar for {count} bar(s); first missing bar "
                              f"{pd.Timestamp(first, unit='ms', tz='UTC')} (left as a gap, not "
                              "filled)", DataWarning, stacklevel=3)
    tiers = "tiers not requested"
    if "tiers" in kinds:
        path = folder / TIERS_FILE
        if path.is_file():
            tiers = "tiers.json kept (delete it to refresh)"
        else:
            folder.mkdir(parents=True, exist_ok=True)
            tiers = _fetch_tiers(client, symbol, path)
    return Downloaded(symbol=_plain(symbol), folder=folder,
                      added={k: len(s.new_times()) for k, s in stores.items()},
                      rows={k: len(s.stored) for k, s in stores.items()}, gaps=gaps, tiers=tiers)


def _progress_bar(symbol: str, plans: dict, step: int):
    from tqdm import tqdm

    eight_hours = 8 * UNIT_MS["h"]
    total = sum((end - start) // (eight_hours if kind == "funding" else step)
                for kind, segments in plans.items() for start, end in segments)
    return tqdm(total=max(int(total), 1), desc=_plain(symbol), unit="row", leave=False,
                file=sys.stderr)
