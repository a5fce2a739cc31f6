"""Every real exchange file in ../shared/data loads through the public API without edits."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import backtest

# (file, rows, first, last) as published in shared/data/README.md
CANDLE_FILES = [
    ("XRP_USDT_USDT-1h-futures.feather", 100, "2021-11-17 01:00", "2021-11-21 04:00"),
    ("XRP_USDT_USDT-5m-futures.feather", 1999, "2021-11-15 00:00", "2021-11-21 22:30"),
    ("XRP_USDT_USDT-1h-mark.feather", 100, "2021-11-15 06:00", "2021-11-19 09:00"),
    ("XRP_USDT_USDT-8h-mark.feather", 91, "2021-11-18 00:00", "2021-12-18 00:00"),
    ("ETH_BTC-5m.feather", 5760, "2018-01-10 04:55", "2018-01-30 04:50"),
    ("UNITTEST_BTC-1m.feather", 13681, "2017-11-04 23:02", "2017-11-14 22:59"),
]


def _utc(text):
    return pd.Timestamp(text, tz="UTC")


@pytest.mark.parametrize(("name", "rows", "first", "last"), CANDLE_FILES)
def test_candle_file_loads_with_its_rows_and_range(shared_data, name, rows, first, last):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", backtest.DataWarning)
        market = backtest.load(shared_data / "freqtrade" / name)
    assert len(market) == rows
    assert market.index[0] == _utc(first)
    assert market.index[-1] == _utc(last)


def test_funding_file_loads_with_its_rows_and_range(shared_data):
    rates = backtest.load_funding(shared_data / "freqtrade" / "XRP_USDT_USDT-8h-funding_rate.feather")
    assert len(rates) == 91
    assert rates.index[0].floor("s") == _utc("2021-11-18 00:00")
    assert rates.index[-1].floor("s") == _utc("2021-12-18 00:00")
    assert rates.abs().max() < 0.01


def test_gappy_minute_file_warns_about_its_gaps(shared_data):
    with pytest.warns(backtest.DataWarning, match="missing bar"):
        backtest.load(shared_data / "freqtrade" / "UNITTEST_BTC-1m.feather")


def test_futures_candles_with_funding_and_mark_aligned(shared_data):
    folder = shared_data / "freqtrade"
    market = backtest.load(folder / "XRP_USDT_USDT-1h-futures.feather",
                           funding=folder / "XRP_USDT_USDT-8h-funding_rate.feather",
                           mark=folder / "XRP_USDT_USDT-1h-mark.feather")
    events = market.funding.dropna()
    # bars run 2021-11-17 01:00 → 11-21 04:00; funding starts 11-18 00:00 (jittered by ms)
    assert events.index[0] == _utc("2021-11-18 00:00")
    assert events.index[-1] == _utc("2021-11-21 00:00")
    assert len(events) == 10
    assert set(events.index.hour) == {0, 8, 16}
    covered = market.mark["close"].notna()
    # mark covers 11-15 06:00 → 11-19 09:00: bars after that have no mark (NaN)
    assert covered[: _utc("2021-11-19 09:00")].all()
    assert not covered[_utc("2021-11-19 10:00"):].any()
    mark_file = backtest.load_mark(folder / "XRP_USDT_USDT-1h-mark.feather")
    np.testing.assert_array_equal(market.mark.loc[_utc("2021-11-18 05:00"), "close"],
                                  mark_file.loc[_utc("2021-11-18 05:00"), "close"])
