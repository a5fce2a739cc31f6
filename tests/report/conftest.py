"""Shared fixtures of the report tests: small sample markets and their results."""

from __future__ import annotations

import numpy as np
import pytest

import backtest
from strategies import TrendFollowing

N_BARS = 24 * 90


@pytest.fixture(scope="session")
def market():
    return backtest.load(backtest.sample_path("ETHUSDT"))[-N_BARS:]


@pytest.fixture(scope="session")
def result(market):
    return TrendFollowing(fast=12, slow=48).run(market)


@pytest.fixture(scope="session")
def liquidated():
    """A 10x long held into the sample's cascade day (10 October 2025): liquidated there."""
    market = backtest.load(backtest.sample_path("ETHUSDT"))["2025-09-25":"2025-10-20"]
    entries = np.zeros(len(market), dtype=bool)
    entries[0] = True
    return backtest.simulate(market, entries=entries, leverage=10.0)


@pytest.fixture(scope="session")
def new_year():
    """TrendFollowing over a year end: 2024-10-01 to 2025-03-31."""
    market = backtest.load(backtest.sample_path("ETHUSDT"))["2024-10-01":"2025-03-31"]
    return TrendFollowing(fast=12, slow=48).run(market)
