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
