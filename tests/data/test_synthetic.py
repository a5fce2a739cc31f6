"""The synthetic sample data: deterministic, realistic in the ways that matter, and committed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import backtest
from backtest.data.synthetic import CASCADE_DAY, FUNDING_CAP, generate_pair, write_sample_data

from ..conftest import SAMPLE_DATA

MAX_TOTAL_BYTES = 5 * 1024 * 1024


@pytest.fixture(scope="module")
def frames():
    return generate_pair()


def _day(frame, day):
    times = frame["timestamp"]
    return frame[times.dt.normalize() == pd.Timestamp(day, tz="UTC")]


def test_same_seed_gives_identical_values(frames):
    again = generate_pair()
    for symbol, frame in frames.items():
        pd.testing.assert_frame_equal(frame, again[symbol])


def test_different_seed_gives_different_values(frames):
    other = generate_pair(seed=1)
    assert not np.allclose(frames["BTCUSDT"]["close"], other["BTCUSDT"]["close"])


def test_committed_files_equal_a_fresh_generation(frames):
    for symbol, frame in frames.items():
        committed = pd.read_parquet(SAMPLE_DATA / f"{symbol}-1h.parquet")
        pd.testing.assert_frame_equal(committed, frame)


def test_files_are_small():
    total = sum(p.stat().st_size for p in SAMPLE_DATA.glob("*.parquet"))
    assert 0 < total < MAX_TOTAL_BYTES


def test_two_years_of_hourly_bars_load_and_validate():
    market = backtest.load(backtest.sample_path("ETHUSDT"))
    assert len(market) == 17_544
    assert market.index[0] == pd.Timestamp("2024-01-01", tz="UTC")
    assert market.mark is not None and market.funding is not None and market.depth is not None


@pytest.mark.parametrize("prefix", ["", "mark_"])
def test_candles_are_consistent(frames, prefix):
    for frame in frames.values():
        o, h, lo, c = (frame[prefix + k] for k in ("open", "high", "low", "close"))
        assert (h >= np.maximum(o, c)).all() and (lo <= np.minimum(o, c)).all() and (lo > 0).all()


def test_funding_only_at_8h_marks_and_within_cap(frames):
    for frame in frames.values():
        paid = frame[frame["funding_rate"].notna()]
        assert set(paid["timestamp"].dt.hour) == {0, 8, 16}
        assert len(paid) == len(frame) // 8
        assert paid["funding_rate"].abs().max() <= FUNDING_CAP


def test_cascade_day(frames):
    btc, eth = (_day(frames[s], CASCADE_DAY) for s in ("BTCUSDT", "ETHUSDT"))
    btc_drop = 1 - btc["low"].min() / btc["high"].max()
    eth_drop = 1 - eth["low"].min() / eth["high"].max()
    assert 0.07 <= btc_drop <= 0.11
    assert eth_drop >= 0.15
    before = _day(frames["BTCUSDT"], "2025-10-09")["depth_2pct_usd"].median()
    assert btc["depth_2pct_usd"].min() <= 0.2 * before
    after = frames["ETHUSDT"].set_index("timestamp")["funding_rate"][CASCADE_DAY:"2025-10-11"].dropna()
    assert after.min() < 0


def test_a_5x_eth_long_opened_before_the_cascade_is_liquidated(frames):
    eth = _day(frames["ETHUSDT"], CASCADE_DAY)
    entry = eth[eth["timestamp"].dt.hour == 20]["close"].iloc[0]
    # 5x isolated: margin is 20% of notional; maintenance ~0.5% → liquidated ~19.5% below entry
    liquidation = entry * (1 - 0.2 + 0.005)
    assert eth["low"].min() < liquidation


def test_fat_tails_and_volatility_clustering(frames):
    returns = np.log(frames["BTCUSDT"]["close"]).diff().dropna()
    assert returns.kurt() > 3
    assert returns.abs().autocorr(lag=1) > 0.05


def test_writer_refuses_to_overwrite_a_different_file(tmp_path):
    write_sample_data(tmp_path)
    target = tmp_path / "BTCUSDT-1h.parquet"
    before = target.read_bytes()
    generated_other = generate_pair(seed=7)["BTCUSDT"]
    generated_other.to_parquet(target)
    changed = target.read_bytes()
    with pytest.raises(FileExistsError, match="--force"):
        write_sample_data(tmp_path)
    assert target.read_bytes() == changed
    write_sample_data(tmp_path, force=True)
    assert target.read_bytes() == before
