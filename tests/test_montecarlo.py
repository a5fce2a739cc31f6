"""Monte Carlo: the block bootstrap of bars and the strategy run on every path × leverage."""

from __future__ import annotations

import numpy as np
import pytest

import backtest
from backtest.montecarlo import resample, stationary_bootstrap
from backtest.strategy import Strategy


@pytest.fixture(scope="module")
def market():
    return backtest.load(backtest.sample_path("BTCUSDT"))[-3000:]


def test_the_bootstrap_is_reproducible_by_seed_and_in_range():
    a = stationary_bootstrap(500, 20, mean_block=12, seed=3)
    assert a.shape == (20, 500) and a.min() >= 0 and a.max() < 500
    np.testing.assert_array_equal(a, stationary_bootstrap(500, 20, mean_block=12, seed=3))
    assert not np.array_equal(a, stationary_bootstrap(500, 20, mean_block=12, seed=4))
    np.testing.assert_array_equal(a[:5], stationary_bootstrap(500, 5, mean_block=12, seed=3))


def test_blocks_follow_the_history_with_the_mean_length_asked_for():
    paths = stationary_bootstrap(5000, 200, mean_block=10, seed=0)
    follows = paths[:, 1:] == (paths[:, :-1] + 1) % 5000
    # a block continues with probability 1 - 1/10 (a jump may land on the next bar: 1/5000)
    assert follows.mean() == pytest.approx(0.9, abs=0.005)
    one_block = stationary_bootstrap(100, 3, mean_block=1e12, seed=1)
    np.testing.assert_array_equal(one_block, (one_block[:, :1] + np.arange(100)) % 100)


def test_the_identity_path_is_the_market_itself(market):
    same = resample(market, np.arange(len(market)))
    for column in ("open", "high", "low", "close", "volume"):
        np.testing.assert_allclose(same.ohlcv[column], market.ohlcv[column], rtol=1e-9)
    np.testing.assert_allclose(same.mark.to_numpy(), market.mark.to_numpy(), rtol=1e-9)
    np.testing.assert_array_equal(same.funding.to_numpy(), market.funding.to_numpy())
    np.testing.assert_array_equal(same.depth.to_numpy(), market.depth.to_numpy())


def test_each_path_bar_copies_its_history_bar(market):
    bars = stationary_bootstrap(len(market), 1, mean_block=24, seed=9)[0]
    path = resample(market, bars, "P")
    o, h, lo, c = (market.ohlcv[k].to_numpy() for k in ("open", "high", "low", "close"))
    po, ph, pl, pc = (path.ohlcv[k].to_numpy() for k in ("open", "high", "low", "close"))
    previous = np.r_[o[0], c[:-1]]
    path_previous = np.r_[o[0], pc[:-1]]
    np.testing.assert_allclose(po / path_previous, (o / previous)[bars], rtol=1e-9)  # gap
    np.testing.assert_allclose(ph / po, (h / o)[bars], rtol=1e-9)  # wick
    np.testing.assert_allclose(pl / po, (lo / o)[bars], rtol=1e-9)
    np.testing.assert_allclose(pc / po, (c / o)[bars], rtol=1e-9)  # body
    np.testing.assert_allclose(path.mark["low"].to_numpy() / po,
                               (market.mark["low"].to_numpy() / o)[bars], rtol=1e-9)  # premium
    np.testing.assert_array_equal(path.funding.to_numpy(), market.funding.to_numpy()[bars])
    assert path.symbol == "P" and path.index.equals(market.index)


def test_paths_keep_the_bar_statistics(market):
    returns = np.log(market.close.to_numpy()[1:] / market.close.to_numpy()[:-1])
    paths = stationary_bootstrap(len(market), 30, mean_block=48, seed=2)
    pooled = np.concatenate([np.diff(np.log(resample(market, p).close.to_numpy())) for p in paths])
    assert pooled.std() == pytest.approx(returns.std(), rel=0.05)
    assert np.quantile(np.abs(pooled), 0.99) == pytest.approx(np.quantile(np.abs(returns), 0.99), rel=0.1)


class HoldLong(Strategy):
    def signals(self, market):
        entries = np.zeros(len(market), dtype=bool)
        entries[0] = True
        return {"entries": entries}


def test_each_row_is_the_strategy_on_that_path_at_that_leverage(market):
    mc = backtest.monte_carlo(HoldLong(), market, leverage=[1, 25], n_paths=6, mean_block=48,
                              seed=5, paths_per_chunk=4)
    assert list(mc.table.index.names) == ["leverage", "path"] and len(mc.table) == 12
    paths = stationary_bootstrap(len(market), 6, mean_block=48, seed=5)
    for p in (0, 5):
        for lev in (1.0, 25.0):
            alone = HoldLong(leverage=lev).run(resample(market, paths[p]))
            row = mc.table.loc[(lev, f"PATH{p:04d}")]
            stats = alone.stats()
            assert row["final_equity"] == pytest.approx(stats["final_equity"], rel=1e-12)
            assert row["liquidations"] == stats["liquidations"]
            assert row["min_equity"] == pytest.approx(alone.equity.min(), rel=1e-12)
    summary = mc.summary()
    assert summary.loc[1.0, "p_liquidation"] == 0.0
    assert summary.loc[25.0, "p_liquidation"] == pytest.approx(
        (mc.table.loc[25.0, "liquidations"] > 0).mean())
    assert summary.loc[25.0, "p_ruin"] >= summary.loc[1.0, "p_ruin"]


def test_bad_arguments_are_named(market):
    with pytest.raises(ValueError, match="mean_block must be at least 1"):
        stationary_bootstrap(10, 1, mean_block=0.5)
    with pytest.raises(ValueError, match="ruin and drawdown"):
        backtest.monte_carlo(HoldLong(), market, leverage=[1], ruin=1.5)
    with pytest.raises(ValueError, match="indices into the market"):
        resample(market, np.arange(5))
    with pytest.raises(ValueError, match="leverage must list"):
        backtest.monte_carlo(HoldLong(), market, leverage=[])


class HoldLongAlone(HoldLong):
    portfolio = False


def test_instruments_trading_alone_each_get_the_default_size_of_one_account(market):
    # found here: with portfolio = False the default size split the leverage across instruments
    other = resample(market, stationary_bootstrap(len(market), 1, 48, seed=1)[0], "B")
    markets = backtest.Markets({"A": market, "B": other})
    together = HoldLongAlone(leverage=3.0).run(markets).stats()
    for symbol, alone_market in (("A", market), ("B", other)):
        alone = HoldLongAlone(leverage=3.0).run(alone_market).stats()
        assert together.loc[symbol, "final_equity"] == pytest.approx(alone["final_equity"], rel=1e-12)


def test_the_command_prints_the_summary_writes_json_and_gates(small_data, in_tmp, capsys):
    import json

    from backtest.cli import main
    from strategies import TrendFollowing

    argv = ["montecarlo", "--data", str(small_data), "--param", "slow=48", "--leverage", "1,25",
            "--paths", "6", "--block", "24", "--seed", "2"]
    assert main([*argv, "--json", "mc.json", "--fail-on", "p_liquidation>1"]) == 0
    out = capsys.readouterr().out
    assert "6 bootstrap paths" in out and "leverage 25" in out
    summary = json.loads((in_tmp / "mc.json").read_text())
    expected = backtest.monte_carlo(TrendFollowing(slow=48), backtest.load(small_data),
                                    leverage=[1, 25], n_paths=6, mean_block=24, seed=2).summary()
    assert summary["p_ruin"]["leverage 25"] == pytest.approx(expected.loc[25.0, "p_ruin"])
    assert summary["final_equity_median"]["leverage 1"] == pytest.approx(
        expected.loc[1.0, "final_equity_median"], rel=1e-12)
    # a gate every leverage trips (probabilities are never below 0), and an existing --json
    assert main([*argv, "--fail-on", "p_ruin>=0"]) == 1
    assert "[leverage 1] p_ruin" in capsys.readouterr().err
    assert main([*argv, "--json", "mc.json"]) == 2
    assert "exists" in capsys.readouterr().err


@pytest.mark.parametrize(("extra", "message"), [
    (["--leverage", "0,3"], "--leverage: '0' is not a positive number"),
    (["--leverage", "3", "--fail-on", "p_liquidations>0.1"], "did you mean 'p_liquidation'"),
    (["--leverage", "3", "--ruin", "2"], "ruin and drawdown are fractions"),
])
def test_bad_command_input_exits_2_with_one_line(extra, message, small_data, in_tmp, capsys):
    from backtest.cli import main

    assert main(["montecarlo", "--data", str(small_data), "--paths", "2", *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
