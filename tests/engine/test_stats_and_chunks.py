"""Statistics accumulated inside the kernel equal vectorbt's, computed on the full per-bar
equity; stats-only runs equal full runs; results do not depend on threads or chunking."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import vectorbt  # noqa: F401 - registers the .vbt accessors used below

import backtest

from . import test_reference_model as scenarios

RTOL = 1e-9


def _vectorbt_stats(result) -> pd.DataFrame:
    """The return and drawdown statistics vectorbt computes from the run's per-bar equity."""
    equity = pd.DataFrame(result.per_bar("equity"), index=result.index, columns=result.accounts)
    returns = result.returns
    returns = returns.to_frame() if isinstance(returns, pd.Series) else returns
    accessor = returns.vbt.returns(freq=result.freq, year_freq="365 days")
    drawdowns = equity.vbt(freq=result.freq).drawdowns
    return pd.DataFrame({
        "final_equity": equity.iloc[-1],
        "cagr": accessor.annualized(),
        "volatility": accessor.annualized_volatility(),
        "sharpe": accessor.sharpe_ratio().replace([np.inf, -np.inf], np.nan),
        "sortino": accessor.sortino_ratio().replace([np.inf, -np.inf], np.nan),
        "calmar": accessor.calmar_ratio().replace([np.inf, -np.inf], np.nan),
        "max_drawdown": -drawdowns.max_drawdown().fillna(0.0),
        "max_drawdown_duration": pd.to_timedelta(drawdowns.max_duration()).fillna(pd.Timedelta(0)),
    }, index=result.accounts)


def _trade_stats(result) -> pd.DataFrame:
    trades = result.trades[result.trades["exit_reason"] != "end"]
    account = {col: acc for acc in result.accounts for col in result.columns_of(acc)}
    by = trades["col"].map(account)
    pnl = trades["pnl"].groupby(by)
    return pd.DataFrame({
        "trades": pnl.count(), "win_rate": (trades["pnl"] > 0).groupby(by).mean(),
        "expectancy": pnl.mean(),
    }).reindex(result.accounts).fillna({"trades": 0})


@pytest.mark.parametrize("kind", scenarios.KINDS)
@pytest.mark.parametrize("seed", range(12))
def test_accumulated_statistics_equal_vectorbts_on_the_full_equity(seed, kind):
    market, kwargs, _ = scenarios.scenario(seed, kind)
    result = backtest.simulate(market, **{**kwargs, "per_bar": True})
    ours = result.stats()
    ours = ours.to_frame().T if isinstance(ours, pd.Series) else ours
    theirs = _vectorbt_stats(result)
    for key in ("final_equity", "cagr", "volatility", "sharpe", "sortino", "calmar", "max_drawdown"):
        np.testing.assert_allclose(ours[key].astype(float).to_numpy(), theirs[key].to_numpy(),
                                   rtol=RTOL, atol=1e-12, err_msg=key)
    assert (pd.to_timedelta(ours["max_drawdown_duration"]).to_numpy()
            == pd.to_timedelta(theirs["max_drawdown_duration"]).to_numpy()).all()
    trades = _trade_stats(result)
    np.testing.assert_array_equal(ours["trades"].to_numpy(), trades["trades"].to_numpy())
    np.testing.assert_allclose(ours["win_rate"].astype(float).to_numpy(),
                               trades["win_rate"].to_numpy(), rtol=RTOL)
    np.testing.assert_allclose(ours["expectancy"].astype(float).to_numpy(),
                               trades["expectancy"].to_numpy(), rtol=RTOL, atol=1e-9)
    leverage = result.effective_leverage
    assert np.allclose(ours["max_effective_leverage"].astype(float).to_numpy(),
                       np.atleast_2d(leverage.to_numpy().T).max(axis=1), rtol=RTOL)


def test_a_stats_only_run_equals_the_full_run():
    market, kwargs, _ = scenarios.scenario(3, "grouped")
    full = backtest.simulate(market, **{**kwargs, "per_bar": True}).stats()
    lean = backtest.simulate(market, **{**kwargs, "per_bar": False})
    pd.testing.assert_frame_equal(lean.stats(), full) if isinstance(full, pd.DataFrame) else \
        pd.testing.assert_series_equal(lean.stats(), full)
    # a stats-only result recomputes per-bar series and records on demand, identically
    np.testing.assert_array_equal(lean.per_bar("equity"),
                                  backtest.simulate(market, **{**kwargs, "per_bar": True}).per_bar("equity"))


@pytest.mark.parametrize("per_bar", [None, False, "equity"])
def test_records_not_kept_come_on_demand_identical_to_kept_ones(per_bar, monkeypatch):
    market, kwargs = _many_columns(n_cols=8)
    kept = backtest.simulate(market, **kwargs, per_bar=True)
    lazy = backtest.simulate(market, **kwargs, per_bar=per_bar)
    assert lazy._run.records is None  # the default keeps the statistics only
    replays = []
    original = type(lazy._kernel).run
    monkeypatch.setattr(type(lazy._kernel), "run",
                        lambda self, **kw: replays.append(kw) or original(self, **kw))
    for name in ("orders", "trades", "liquidations", "funding"):
        assert getattr(kept.records(), name).tobytes() == getattr(lazy.records(), name).tobytes()
    assert len(replays) == 1
    pd.testing.assert_frame_equal(kept.stats(), lazy.stats())
    # a report reads records and every per-bar series: at most one more replay, none after
    from backtest.report import render_report

    render_report(lazy)
    np.testing.assert_array_equal(kept.per_bar("position"), lazy.per_bar("position"))
    assert len(replays) == 2


def _many_columns(n_bars=3000, n_cols=40, seed=0):
    market = backtest.load(backtest.sample_path("ETHUSDT"))[-n_bars:]
    rng = np.random.default_rng(seed)
    return market, dict(entries=rng.random((n_bars, n_cols)) < 0.02,
                        exits=rng.random((n_bars, n_cols)) < 0.02,
                        short_entries=rng.random((n_bars, n_cols)) < 0.01,
                        leverage=rng.choice([2.0, 5.0, 20.0], n_cols), sl_stop=0.03, fees=0.0005)


@pytest.mark.parametrize(("n_jobs", "chunk_size"), [(1, None), (2, 1), (2, 7), (4, 3), (None, None)])
def test_results_do_not_depend_on_threads_or_chunks(n_jobs, chunk_size):
    market, kwargs = _many_columns()
    reference = backtest.simulate(market, **kwargs, n_jobs=1, chunk_size=40, per_bar=True)
    other = backtest.simulate(market, **kwargs, n_jobs=n_jobs, chunk_size=chunk_size, per_bar=True)
    for name in ("orders", "trades", "liquidations", "funding"):
        assert getattr(reference.records(), name).tobytes() == getattr(other.records(), name).tobytes()
    np.testing.assert_array_equal(reference.per_bar("equity"), other.per_bar("equity"))
    np.testing.assert_array_equal(reference.per_bar("position"), other.per_bar("position"))
    pd.testing.assert_frame_equal(reference.stats(), other.stats())


def test_accounts_are_independent_of_each_other():
    market, kwargs = _many_columns(n_cols=6)
    together = backtest.simulate(market, **kwargs, per_bar=True)
    for col in range(6):
        alone = backtest.simulate(market, **{k: (v[:, col] if isinstance(v, np.ndarray) and v.ndim == 2
                                                 else v[col] if k == "leverage" else v)
                                             for k, v in kwargs.items()}, per_bar=True)
        np.testing.assert_array_equal(together.per_bar("equity")[:, col], alone.per_bar("equity")[:, 0])
