"""Resampling to a coarser timeframe, with funding and depth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backtest import Market


def _hourly(n_bars=8) -> Market:
    index = pd.date_range("2025-01-01", periods=n_bars, freq="1h", tz="UTC")
    close = np.array([10.0, 11, 9, 12, 13, 12, 14, 15])[:n_bars]
    bars = pd.DataFrame({"open": close - 0.5, "high": close + 1, "low": close - 2, "close": close,
                         "volume": np.arange(1.0, n_bars + 1)}, index=index)
    funding = pd.Series([0.0001, 0.0003], index=index[[0, 2]] + pd.Timedelta("5ms"))
    depth = pd.Series([5.0, 4.0, 1.0, 6.0, 7.0, 8.0, 2.0, 9.0][:n_bars], index=index)
    mark = bars[["open", "high", "low", "close"]] + 0.1
    return Market(bars, funding=funding, depth=depth, mark=mark, symbol="T")


def test_hourly_to_four_hourly_by_hand():
    bars = _hourly().resample("4h")
    assert bars.index.tolist() == [pd.Timestamp("2025-01-01 00:00", tz="UTC"),
                                   pd.Timestamp("2025-01-01 04:00", tz="UTC")]
    assert bars.open.tolist() == [9.5, 12.5]
    assert bars.high.tolist() == [13.0, 16.0]
    assert bars.low.tolist() == [7.0, 10.0]
    assert bars.close.tolist() == [12.0, 15.0]
    assert bars.volume.tolist() == [10.0, 26.0]


def test_funding_is_summed_and_depth_is_the_minimum():
    bars = _hourly().resample("4h")
    assert bars.funding.iloc[0] == pytest.approx(0.0004)
    assert np.isnan(bars.funding.iloc[1])
    assert bars.depth.tolist() == [1.0, 2.0]
    assert bars.mark["high"].tolist() == pytest.approx([13.1, 16.1])


def test_empty_bins_are_dropped():
    market = _hourly()
    holed = Market(market.ohlcv.drop(market.index[4:8]))
    assert len(holed.resample("4h")) == 1


def test_finer_timeframe_is_rejected():
    with pytest.raises(ValueError, match="finer than the bars"):
        _hourly().resample("30min")


def test_jittered_funding_snaps_to_its_bar():
    market = _hourly()
    assert market.funding.dropna().index.hour.tolist() == [0, 2]


def test_slices_keep_extras_aligned():
    market = _hourly()[2:5]
    assert len(market) == 3 and market.funding.iloc[0] == 0.0003 and market.depth.tolist() == [1.0, 6.0, 7.0]
