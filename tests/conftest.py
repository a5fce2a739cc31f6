"""Shared test fixtures: paths to the real exchange data beside the repository."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("BACKTEST_SHARED_DATA", REPO.parent / "shared" / "data"))
SAMPLE_DATA = REPO / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Folder of real Binance data (read-only, never copied into the project)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real exchange data not found at {SHARED_DATA} (set BACKTEST_SHARED_DATA)")
    return SHARED_DATA


SMALL_DATA_BARS = 24 * 40


@pytest.fixture(scope="session")
def small_data(tmp_path_factory):
    """The last 40 days of the BTCUSDT sample, with funding, as a Parquet file."""
    import backtest

    path = tmp_path_factory.mktemp("data") / "BTCUSDT-1h.parquet"
    market = backtest.load(backtest.sample_path("BTCUSDT"))[-SMALL_DATA_BARS:]
    frame = market.ohlcv.reset_index()
    frame["funding_rate"] = market.funding.to_numpy()
    frame.to_parquet(path)
    return path


@pytest.fixture()
def in_tmp(tmp_path, monkeypatch):
    """A scratch working directory (the command writes reports/ relative to it)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path
