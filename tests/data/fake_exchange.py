"""A stand-in for a ccxt exchange serving recorded responses (no network, no ccxt).

It implements what :mod:`backtest.data.download` calls — ``load_markets``, ``markets``, ``has``,
``timeframes``, ``rateLimit``, ``milliseconds``, ``fetch_ohlcv`` (``since``, ``limit``,
``params={"price": "mark"}``), ``fetch_funding_rate_history`` and ``fetch_leverage_tiers`` —
the way ccxt's Binance USDⓈ-M does: rows from ``since`` on, at most ``page`` per call. Faults are
injected by call number: ``faults={3: RateLimitExceeded("...")}`` raises once on the third data
call; ``stop_after=N`` raises ``stop_with`` on every call after the N-th.

The records come from ../shared/data (real Binance XRP/USDT perpetual: 1h candles, 1h mark,
8h funding; the ccxt tier file) and from the bundled BTCUSDT sample.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

import backtest


# ccxt's error classes by name (download.py recognises them by class name, as it does ccxt's)
class BaseError(Exception):
    pass


class ExchangeError(BaseError):
    pass


class AuthenticationError(ExchangeError):
    pass


class NetworkError(BaseError):
    pass


class RequestTimeout(NetworkError):
    pass


class DDoSProtection(NetworkError):
    pass


class RateLimitExceeded(DDoSProtection):
    pass


FAR_FUTURE_MS = 1_900_000_000_000  # 2030: every recorded bar has closed


def _ms(index) -> np.ndarray:
    return pd.DatetimeIndex(index).as_unit("ms").asi8


def xrp_records(shared_data: Path) -> dict:
    """Candles, mark candles and funding of the real XRP/USDT perpetual files, as ccxt returns
    them: ``[[ms, o, h, l, c, v], ...]`` and ``[{"timestamp": ms, "fundingRate": r}, ...]``."""
    folder = shared_data / "freqtrade"
    candles = pd.read_feather(folder / "XRP_USDT_USDT-1h-futures.feather")
    mark = pd.read_feather(folder / "XRP_USDT_USDT-1h-mark.feather")
    funding = pd.read_feather(folder / "XRP_USDT_USDT-8h-funding_rate.feather")
    tiers = json.loads((shared_data / "binance_leverage_tiers.json").read_text())
    return {"candles": _rows(candles, "date"), "mark": _rows(mark, "date"),
            "funding": [{"symbol": "XRP/USDT:USDT", "timestamp": int(t), "fundingRate": float(r)}
                        for t, r in zip(_ms(funding["date"]), funding["open"], strict=True)],
            "tiers": tiers}


def sample_records(n_bars: int = 1500) -> dict:
    """The first ``n_bars`` of the bundled BTCUSDT sample (its mark and funding too)."""
    market = backtest.load(backtest.sample_path("BTCUSDT"))[:n_bars]
    candles = market.ohlcv.reset_index()
    mark = market.mark.reset_index()
    mark["volume"] = None
    funding = market.funding.dropna()
    tiers = json.loads((backtest.engine.margin.TIERS_DIR / "BTCUSDT.json").read_text())
    ccxt_tiers = [{"tier": k + 1, "currency": "USDT", "minNotional": b["min_notional"],
                   "maxNotional": b["max_notional"], "maintenanceMarginRate": b["mmr"],
                   "maxLeverage": b["max_leverage"], "info": {"cum": str(b["maintenance_amount"])}}
                  for k, b in enumerate(tiers["brackets"])]
    return {"candles": _rows(candles, "timestamp"), "mark": _rows(mark, "timestamp"),
            "funding": [{"symbol": "BTC/USDT:USDT", "timestamp": int(t), "fundingRate": float(r)}
                        for t, r in zip(_ms(funding.index), funding, strict=True)],
            "tiers": {"BTC/USDT:USDT": ccxt_tiers}}


def _rows(frame: pd.DataFrame, time_column: str) -> list[list]:
    times = _ms(frame[time_column])
    values = frame[["open", "high", "low", "close", "volume"]].astype(object)
    values = values.where(values.notna(), None).to_numpy().tolist()
    return [[int(t), *row] for t, row in zip(times, values, strict=True)]


MARKETS = {
    "BTC/USDT": {"id": "BTCUSDT", "symbol": "BTC/USDT", "spot": True, "swap": False},
    "BTC/USDT:USDT": {"id": "BTCUSDT", "symbol": "BTC/USDT:USDT", "swap": True, "linear": True,
                      "active": True},
    "BTC/USDT:USDT-250328": {"id": "BTCUSDT_250328", "symbol": "BTC/USDT:USDT-250328",
                             "swap": False, "future": True},
    "ETH/USDT:USDT": {"id": "ETHUSDT", "symbol": "ETH/USDT:USDT", "swap": True, "linear": True},
    "XRP/USDT:USDT": {"id": "XRPUSDT", "symbol": "XRP/USDT:USDT", "swap": True, "linear": True},
    "XRP/USD:XRP": {"id": "XRPUSD_PERP", "symbol": "XRP/USD:XRP", "swap": True, "linear": False},
}


class FakeExchange:
    """Recorded responses by unified symbol: ``records={"XRP/USDT:USDT": xrp_records(...)}``."""

    id = "binanceusdm"
    rateLimit = 50
    timeframes = {"1m": "1m", "5m": "5m", "1h": "1h", "4h": "4h", "8h": "8h", "1d": "1d"}

    def __init__(self, records: dict, *, page: int = 500, now_ms: int = FAR_FUTURE_MS,
                 faults: dict | None = None, stop_after: int | None = None,
                 stop_with: BaseException | None = None, missing: dict | None = None,
                 has: dict | None = None, tiers_error: BaseException | None = None):
        self.records = records
        self.page = page
        self.now = now_ms
        self.faults = dict(faults or {})
        self.stop_after, self.stop_with = stop_after, stop_with
        self.missing = {kind: set(times) for kind, times in (missing or {}).items()}
        self.has = {"fetchOHLCV": True, "fetchFundingRateHistory": True,
                    "fetchLeverageTiers": True, **(has or {})}
        self.tiers_error = tiers_error
        self.markets: dict = {}
        self.calls: list[tuple] = []  # (method, symbol, since, kind) of every data call

    # ----- ccxt's API ---------------------------------------------------------------------

    def milliseconds(self) -> int:
        return self.now

    def load_markets(self):
        self._tick("load_markets", None, None, None)
        self.markets = dict(MARKETS)
        return self.markets

    def fetch_ohlcv(self, symbol, timeframe="1m", since=None, limit=None, params=None):
        assert timeframe == "1h", timeframe
        kind = "mark" if (params or {}).get("price") == "mark" else "candles"
        self._tick("fetch_ohlcv", symbol, since, kind)
        rows = [row for row in self.records[symbol][kind]
                if row[0] not in self.missing.get(kind, ())]
        return [list(row) for row in self._page(rows, since, limit, lambda row: row[0])]

    def fetch_funding_rate_history(self, symbol=None, since=None, limit=None, params=None):
        self._tick("fetch_funding_rate_history", symbol, since, "funding")
        rows = self.records[symbol]["funding"]
        return [dict(row) for row in self._page(rows, since, limit, lambda row: row["timestamp"])]

    def fetch_leverage_tiers(self, symbols=None, params=None):
        self._tick("fetch_leverage_tiers", symbols, None, "tiers")
        if self.tiers_error is not None:
            raise self.tiers_error
        every = {s: t for records in self.records.values() for s, t in records["tiers"].items()}
        return {s: t for s, t in every.items() if symbols is None or s in symbols}

    # ----- helpers ----------------------------------------------------------------------------

    def _page(self, rows, since, limit, time_of):
        size = min(limit or self.page, self.page)
        chosen = [row for row in rows if since is None or time_of(row) >= since]
        return [row for row in chosen if time_of(row) <= self.now][:size]

    def _tick(self, method, symbol, since, kind):
        self.calls.append((method, symbol, since, kind))
        number = len(self.calls)
        if self.stop_after is not None and number > self.stop_after:
            raise self.stop_with
        fault = self.faults.pop(number, None)
        if fault is not None:
            raise fault

    def data_calls(self, kind=None) -> list[tuple]:
        return [call for call in self.calls if call[0] != "load_markets"
                and (kind is None or call[3] == kind)]
