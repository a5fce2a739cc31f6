"""Every validation error names the problem, the file, the column and the row."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import backtest
from backtest import DataError, DataWarning

from .helpers import HOUR_MS, START_MS, candles


def _write(tmp_path, frame, name="bars.csv"):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def _error(path, **kwargs) -> DataError:
    with pytest.raises(DataError) as info:
        backtest.load(path, **kwargs)
    return info.value


def test_missing_column_names_what_is_missing_and_found(tmp_path):
    error = _error(_write(tmp_path, candles().drop(columns=["low"])))
    assert error.column == "low"
    assert "missing column(s) low" in str(error)
    assert "found: open, high, close, volume" in str(error)
    assert "bars.csv" in str(error)


def test_unparseable_timestamp_names_row_and_line(tmp_path):
    frame = candles().astype({"timestamp": object})
    frame.loc[3, "timestamp"] = "not a date"
    error = _error(_write(tmp_path, frame))
    assert "unparseable timestamp 'not a date'" in str(error)
    assert "column timestamp, row 4 (line 5 of the file)" in str(error)


def test_a_year_outside_the_nanosecond_clock_names_its_row(tmp_path):
    # found by the loader fuzzer: "-1" among ISO dates parsed as the year -1 and crashed
    path = tmp_path / "bars.csv"
    path.write_text("timestamp,open,high,low,close,volume\n-1,1,1,1,1,1\n2025-01-01,1,1,1,1,1\n")
    error = _error(path)
    assert "timestamp '-1' reads as the year -1, outside 1678-2261" in str(error)
    assert "column timestamp, row 1 (line 2 of the file)" in str(error)


def test_unsorted_timestamps(tmp_path):
    frame = candles()
    frame.loc[[2, 3], "timestamp"] = frame.loc[[3, 2], "timestamp"].to_numpy()
    error = _error(_write(tmp_path, frame))
    assert "not sorted" in str(error)
    assert "row 4 (line 5 of the file)" in str(error)


def test_duplicate_timestamps(tmp_path):
    frame = candles()
    frame.loc[4, "timestamp"] = frame.loc[3, "timestamp"]
    error = _error(_write(tmp_path, frame))
    assert "duplicate timestamp 2025-01-01 03:00:00+00:00" in str(error)
    assert "row 5" in str(error)


@pytest.mark.parametrize(("value", "kind"), [(np.nan, "missing"), (np.inf, "infinite"),
                                             (0.0, "zero"), (-5.0, "negative")])
def test_bad_price(tmp_path, value, kind):
    frame = candles()
    frame.loc[2, "close"] = value
    frame.loc[2, "low"] = min(frame.loc[2, "low"], value) if np.isfinite(value) else frame.loc[2, "low"]
    error = _error(_write(tmp_path, frame))
    assert f"price is {kind}" in str(error)
    assert error.column in ("close", "low")
    assert "row 3 (line 4 of the file)" in str(error)


def test_high_below_open_close(tmp_path):
    frame = candles()
    frame.loc[1, "high"] = frame.loc[1, "close"] - 0.1
    error = _error(_write(tmp_path, frame))
    assert "high below max(open, close)" in str(error)
    assert error.column == "high"
    assert "row 2" in str(error)


def test_low_above_open_close(tmp_path):
    frame = candles()
    frame.loc[5, "low"] = frame.loc[5, "open"] + 0.1
    error = _error(_write(tmp_path, frame))
    assert "low above min(open, close)" in str(error)
    assert "row 6 (line 7 of the file)" in str(error)


def test_negative_volume(tmp_path):
    frame = candles()
    frame.loc[0, "volume"] = -1.0
    error = _error(_write(tmp_path, frame))
    assert error.column == "volume" and "negative" in str(error) and "row 1" in str(error)


def test_nan_volume_is_allowed(tmp_path):
    frame = candles()
    frame.loc[0, "volume"] = np.nan
    assert np.isnan(backtest.load(_write(tmp_path, frame)).volume.iloc[0])


def test_gap_warns_with_count_and_largest(tmp_path):
    frame = candles(10).drop(index=[3, 4, 7])
    path = _write(tmp_path, frame)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        market = backtest.load(path)
    assert len(market) == 7
    messages = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    assert len(messages) == 1
    assert "3 missing bar(s) in 2 gap(s)" in messages[0]
    assert "0 days 03:00:00, starts after 2025-01-01 02:00:00+00:00" in messages[0]


def test_gap_can_fail(tmp_path):
    path = _write(tmp_path, candles(10).drop(index=[5]))
    error = _error(path, on_gap="raise")
    assert "1 missing bar(s)" in str(error) and error.column == "timestamp"


def test_funding_rate_out_of_range(tmp_path):
    bars = _write(tmp_path, candles())
    funding = tmp_path / "funding.csv"
    pd.DataFrame({"fundingTime": [START_MS, START_MS + 2 * HOUR_MS],
                  "fundingRate": [0.0001, 0.08]}).to_csv(funding, index=False)
    error = _error(bars, funding=funding)
    assert "funding rate 0.08" in str(error) and "outside ±0.05" in str(error)
    assert error.column == "funding_rate" and "row 3" in str(error)


def test_mixed_naive_and_aware_timestamps(tmp_path):
    frame = candles().astype({"timestamp": object})
    frame["timestamp"] = [f"2025-01-01T0{h}:00:00" + ("Z" if h >= 2 else "") for h in range(6)]
    error = _error(_write(tmp_path, frame))
    assert "mixed naive and timezone-aware" in str(error)
    assert "row 3" in str(error)


def test_headerless_csv_of_unknown_width(tmp_path):
    path = tmp_path / "bars.csv"
    candles().iloc[:, :4].to_csv(path, index=False, header=False)
    error = _error(path)
    assert "headerless CSV with 4 columns" in str(error)


def test_non_numeric_price_names_the_cell(tmp_path):
    frame = candles().astype({"close": object})
    frame.loc[2, "close"] = "12,5"
    frame.loc[2, "high"] = 200.0
    error = _error(_write(tmp_path, frame))
    assert "not a number: '12,5'" in str(error) and error.column == "close"
