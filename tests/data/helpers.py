"""Small candle tables written to tmp files in each supported layout."""

from __future__ import annotations

import numpy as np
import pandas as pd

START_MS = 1_735_689_600_000  # 2025-01-01 00:00 UTC
HOUR_MS = 3_600_000


def candles(n_bars: int = 6) -> pd.DataFrame:
    """Consistent hourly candles with a ``timestamp`` column in epoch ms."""
    close = 100.0 + np.arange(n_bars, dtype=float)
    return pd.DataFrame({
        "timestamp": START_MS + HOUR_MS * np.arange(n_bars),
        "open": close - 0.5,
        "high": close + 1.0,
        "low": close - 1.0,
        "close": close,
        "volume": 10.0 + np.arange(n_bars),
    })


def expected_index(n_bars: int = 6) -> pd.DatetimeIndex:
    return pd.date_range("2025-01-01", periods=n_bars, freq="1h", tz="UTC", name="timestamp")
