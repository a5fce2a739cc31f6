"""Each reader turns its layout into the same validated bars."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import backtest
from backtest.data.readers import BINANCE_KLINE_COLUMNS

from .helpers import HOUR_MS, START_MS, candles, expected_index


def _assert_bars(market, n_bars=6):
    assert market.index.equals(expected_index(n_bars))
    np.testing.assert_array_equal(market.close.to_numpy(), 100.0 + np.arange(n_bars))
    np.testing.assert_array_equal(market.volume.to_numpy(), 10.0 + np.arange(n_bars))


def _binance(frame: pd.DataFrame, time_scale: int = 1) -> pd.DataFrame:
    out = pd.DataFrame({
        "open_time": frame["timestamp"] * time_scale,
        "open": frame["open"], "high": frame["high"], "low": frame["low"],
        "close": frame["close"], "volume": frame["volume"],
        "close_time": (frame["timestamp"] + HOUR_MS - 1) * time_scale,
        "quote_volume": frame["volume"] * frame["close"], "count": 7,
        "taker_buy_volume": frame["volume"] / 2, "taker_buy_quote_volume": 1.0, "ignore": 0,
    })
    assert list(out.columns) == list(BINANCE_KLINE_COLUMNS)
    return out


@pytest.mark.parametrize("unit", ["ms", "s"])
def test_generic_csv_with_epoch_timestamps(tmp_path, unit):
    frame = candles()
    if unit == "s":
        frame["timestamp"] //= 1000
    path = tmp_path / "bars.csv"
    frame.to_csv(path, index=False)
    _assert_bars(backtest.load(path))


def test_generic_csv_with_iso_timestamps_and_capitalised_names(tmp_path):
    frame = candles()
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], unit="ms").dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    frame.columns = ["Date", "Open", "High", "Low", "Close", "Volume"]
    path = tmp_path / "bars.csv"
    frame.to_csv(path, index=False)
    _assert_bars(backtest.load(path))


def test_generic_parquet_with_datetime_column(tmp_path):
    frame = candles()
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], unit="ms", utc=True)
    path = tmp_path / "bars.parquet"
    frame.to_parquet(path)
    _assert_bars(backtest.load(path))


def test_parquet_extras_fill_mark_funding_and_depth(tmp_path):
    frame = candles(9)
    for column in ("open", "high", "low", "close"):
        frame[f"mark_{column}"] = frame[column] + 0.1
    frame["funding_rate"] = np.where(np.arange(9) % 8 == 0, 0.0001, np.nan)
    frame["depth_2pct_usd"] = 5e6
    path = tmp_path / "sample.parquet"
    frame.to_parquet(path)
    market = backtest.load(path)
    assert market.mark["close"].iloc[3] == pytest.approx(103.1)
    assert market.funding.notna().sum() == 2
    assert market.depth.iloc[0] == 5e6


@pytest.mark.parametrize("header", [True, False])
@pytest.mark.parametrize("time_scale", [1, 1000], ids=["ms", "us"])
def test_binance_kline_dump(tmp_path, header, time_scale):
    path = tmp_path / "BTCUSDT-1h-2025-01.csv"
    _binance(candles(), time_scale).to_csv(path, index=False, header=header)
    market = backtest.load(path)
    _assert_bars(market)
    assert market.symbol == "BTCUSDT"


def test_ccxt_list_in_memory():
    rows = candles().to_numpy().tolist()
    _assert_bars(backtest.load(rows))


def test_ccxt_json_file(tmp_path):
    path = tmp_path / "ohlcv.json"
    path.write_text(json.dumps(candles().to_numpy().tolist()))
    _assert_bars(backtest.load(path))


def test_ccxt_headerless_csv(tmp_path):
    path = tmp_path / "ohlcv.csv"
    candles().to_csv(path, index=False, header=False)
    _assert_bars(backtest.load(path))


def test_freqtrade_feather(tmp_path):
    frame = candles().rename(columns={"timestamp": "date"})
    frame["date"] = pd.to_datetime(frame["date"], unit="ms", utc=True)
    path = tmp_path / "BTC_USDT-1h.feather"
    frame.to_feather(path)
    _assert_bars(backtest.load(path))


def test_freqtrade_json(tmp_path):
    path = tmp_path / "BTC_USDT-1h.json"
    path.write_text(json.dumps(candles().to_numpy().tolist()))
    _assert_bars(backtest.load(path))


def test_binance_funding_csv_aligns_to_bars(tmp_path):
    bars = tmp_path / "bars.csv"
    candles(24).to_csv(bars, index=False)
    funding = tmp_path / "funding.csv"
    pd.DataFrame({"fundingTime": [START_MS + 8 * HOUR_MS + 3, START_MS + 16 * HOUR_MS + 1],
                  "fundingRate": [0.0001, -0.0002], "markPrice": [1.0, 1.0]}).to_csv(funding, index=False)
    market = backtest.load(bars, funding=funding)
    events = market.funding.dropna()
    assert events.index.hour.tolist() == [8, 16]
    assert events.tolist() == [0.0001, -0.0002]


def test_ccxt_funding_history_dicts():
    records = [{"symbol": "BTC/USDT:USDT", "timestamp": START_MS, "fundingRate": 0.0003,
                "datetime": "2025-01-01T00:00:00.000Z"}]
    rates = backtest.load_funding(pd.DataFrame(records).drop(columns=["datetime"]))
    assert rates.iloc[0] == 0.0003
    assert rates.index[0] == pd.Timestamp("2025-01-01", tz="UTC")


def test_mark_series_outside_coverage_is_nan(tmp_path):
    bars = candles(6)
    mark = candles(3)
    path = tmp_path / "mark.csv"
    mark.to_csv(path, index=False)
    market = backtest.load(bars, mark=path)
    assert market.mark["close"].notna().tolist() == [True, True, True, False, False, False]


def test_loading_leaves_the_file_unchanged(tmp_path):
    path = tmp_path / "bars.csv"
    candles().to_csv(path, index=False)
    before = path.read_bytes()
    backtest.load(path, timeframe="2h")
    assert path.read_bytes() == before


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.csv"):
        backtest.load(tmp_path / "nope.csv")


def test_unknown_format_is_rejected():
    with pytest.raises(ValueError, match="format must be one of"):
        backtest.load(candles(), format="excel")


def test_binance_public_funding_dump(tmp_path):
    path = tmp_path / "BTCUSDT-fundingRate-2025-10.csv"
    path.write_text("calc_time,funding_interval_hours,last_funding_rate\n"
                    f"{START_MS},8,0.00010000\n{START_MS + 8 * HOUR_MS},8,-0.00002500\n")
    rates = backtest.load_funding(path)
    assert rates.tolist() == [0.0001, -0.000025]
    assert rates.index[1] == pd.Timestamp("2025-01-01 08:00", tz="UTC")


def test_explicit_format_reads_columns_by_position(tmp_path):
    path = tmp_path / "klines.csv"
    frame = _binance(candles())
    frame.columns = [f"c{k}" for k in range(12)]  # a header that names nothing we know
    frame.to_csv(path, index=False)
    _assert_bars(backtest.load(path, format="binance"))
    with pytest.raises(backtest.DataError, match="format='ccxt' expects 6 columns, found 12"):
        backtest.load(path, format="ccxt")
