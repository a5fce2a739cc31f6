"""Fixtures for the hardening tests: a way to run the command and check it failed the way users
need (exit 2, one line, no traceback), and tiny markets. ``small_data`` and ``in_tmp`` come from
the top-level conftest."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import backtest
from backtest.cli import main


@pytest.fixture()
def cli(capsys):
    """Run ``backtest`` in-process: (exit code, stdout, stderr)."""

    def run(*argv):
        code = main([str(a) for a in argv])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def assert_bad_input(code, err, *fragments):
    """Exit 2, exactly one line on stderr starting with ``error:``, holding every fragment."""
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    assert "Traceback" not in err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def signal_at(n_bars, *positions) -> np.ndarray:
    signal = np.zeros(n_bars, dtype=bool)
    signal[list(positions)] = True
    return signal


def _market(rows) -> backtest.Market:
    index = pd.date_range("2025-01-01", periods=len(rows), freq="1h", tz="UTC")
    return backtest.Market(pd.DataFrame(rows, index=index, columns=["open", "high", "low", "close"]))


def flat(n_bars, price=100.0) -> backtest.Market:
    return _market([(price, price, price, price)] * n_bars)


def random_market(seed, n_bars=300, vol=0.01) -> backtest.Market:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, vol, n_bars)))
    open_ = np.r_[close[0], close[:-1]]
    spread = np.abs(rng.normal(0.0, vol / 2, n_bars)) * close
    return _market(np.column_stack([open_, np.maximum(open_, close) + spread,
                                    np.minimum(open_, close) - spread, close]))
