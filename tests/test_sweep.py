"""Chunked sweeps: the same statistics as one run, whatever the chunks or threads, locally and
on a Dask cluster; bounded by the chunk, not the grid."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import backtest
from strategies import TrendFollowing

GRID = {"fast": [6, 12, 24], "slow": [48, 96]}


@pytest.fixture(scope="module")
def market():
    return backtest.load(backtest.sample_path("ETHUSDT"))[-2000:]


@pytest.fixture(scope="module")
def reference(market):
    return TrendFollowing(leverage=5.0).run(market, **GRID).stats()


@pytest.mark.parametrize(("chunk_size", "n_jobs"), [(1, 1), (2, 2), (4, 2), (None, None)])
def test_a_chunked_sweep_equals_one_run(market, reference, chunk_size, n_jobs):
    swept = TrendFollowing(leverage=5.0).sweep(market, chunk_size=chunk_size, n_jobs=n_jobs, **GRID)
    pd.testing.assert_frame_equal(swept.stats(), reference)


def test_a_portfolio_sweep_equals_one_run():
    markets = backtest.Markets([backtest.load(backtest.sample_path(s))[-1500:]
                                for s in ("BTCUSDT", "SOLUSDT")])
    strategy = TrendFollowing(leverage=3.0, margin_mode="cross")
    one = strategy.run(markets, fast=[12, 24]).stats()
    swept = strategy.sweep(markets, chunk_size=1, fast=[12, 24]).stats()
    pd.testing.assert_frame_equal(swept, one)


def test_the_best_combination_replays_in_full(market, reference):
    swept = TrendFollowing(leverage=5.0).sweep(market, chunk_size=2, **GRID)
    best = swept.best("sharpe")
    assert best == dict(zip(("fast", "slow"), reference["sharpe"].astype(float).idxmax(), strict=True))
    full = swept.run_best("sharpe")
    assert full.stats()["sharpe"] == pytest.approx(reference["sharpe"].max(), rel=1e-12)
    assert len(full.equity) == len(market)


def test_a_sweep_on_a_dask_cluster_equals_the_local_one(market, reference):
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        swept = TrendFollowing(leverage=5.0).sweep(market, client=client, chunk_size=2, **GRID)
    pd.testing.assert_frame_equal(swept.stats(), reference)


def test_a_strategy_from_a_file_runs_on_dask_workers(market, tmp_path):
    distributed = pytest.importorskip("dask.distributed")
    path = tmp_path / "my_file_strategy.py"
    path.write_text("from strategies import TrendFollowing\n"
                    "class Mine(TrendFollowing):\n    leverage = 2.0\n")
    from backtest.cli import load_strategy_class

    cls = load_strategy_class(f"{path}:Mine")
    local = cls().run(market, fast=[12, 24]).stats()
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        swept = cls().sweep(market, client=client, chunk_size=1, fast=[12, 24])
    pd.testing.assert_frame_equal(swept.stats(), local)
    assert np.isfinite(swept.stats()["final_equity"].astype(float)).all()
