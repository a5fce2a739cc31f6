"""The synthetic sample data: deterministic, committed, and realistic in the ways that matter."""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest

import backtest
from backtest.data import synthetic
from backtest.data.synthetic import (
    CASCADE_DAY,
    COLUMNS,
    FUNDING_CAP,
    FUNDING_INTEREST,
    SEED,
    SYMBOLS,
    generate,
    generate_pair,
    write_sample_data,
)

from ..conftest import SAMPLE_DATA

MAX_TOTAL_BYTES = 5 * 1024 * 1024
BARS_IN_2024_AND_2025 = (366 + 365) * 24
CRASH = pd.Timestamp(CASCADE_DAY, tz="UTC") + pd.Timedelta(hours=synthetic.CASCADE.hour)


@pytest.fixture(scope="module")
def frames() -> dict[str, pd.DataFrame]:
    return generate_pair()


@pytest.fixture(scope="module")
def bars(frames) -> dict[str, pd.DataFrame]:
    """The generated frames indexed by time."""
    return {symbol: frame.set_index("timestamp") for symbol, frame in frames.items()}


def _log_returns(frame: pd.DataFrame) -> pd.Series:
    return np.log(frame["close"]).diff().dropna()


def _without_cascade(returns: pd.Series) -> pd.Series:
    return returns.drop(returns.loc[CASCADE_DAY:"2025-10-11"].index)


# ----- determinism and the committed files ---------------------------------------------------------


def test_same_seed_gives_identical_values(frames):
    again = generate_pair()
    for symbol, frame in frames.items():
        pd.testing.assert_frame_equal(frame, again[symbol], check_exact=True)


def test_different_seed_gives_different_values(frames):
    other = generate_pair(seed=SEED + 1)
    for symbol, frame in frames.items():
        assert not np.allclose(frame["close"], other[symbol]["close"])


def test_generate_one_symbol_equals_its_part_of_the_pair(frames):
    pd.testing.assert_frame_equal(generate("ETHUSDT"), frames["ETHUSDT"], check_exact=True)


def test_unknown_symbol_is_rejected_by_name():
    with pytest.raises(ValueError, match="'DOGEUSDT'"):
        generate("DOGEUSDT")


def test_committed_files_equal_a_fresh_generation(frames):
    for symbol, frame in frames.items():
        committed = pd.read_parquet(SAMPLE_DATA / f"{symbol}-1h.parquet")
        pd.testing.assert_frame_equal(committed, frame, check_exact=True)


def test_committed_files_together_are_under_5_mb():
    sizes = [(SAMPLE_DATA / f"{symbol}-1h.parquet").stat().st_size for symbol in SYMBOLS]
    assert 0 < sum(sizes) < MAX_TOTAL_BYTES


def test_generating_both_symbols_takes_under_2_seconds():
    started = time.perf_counter()
    generate_pair()
    assert time.perf_counter() - started < 2.0


def test_committed_file_loads_as_a_market_with_mark_funding_and_depth():
    market = backtest.load(backtest.sample_path("ETHUSDT"))
    assert len(market) == BARS_IN_2024_AND_2025
    assert market.mark is not None and market.funding is not None and market.depth is not None


# ----- layout ------------------------------------------------------------------------------------------


def test_two_full_years_of_hourly_utc_bars(frames):
    for frame in frames.values():
        times = frame["timestamp"]
        assert len(frame) == BARS_IN_2024_AND_2025
        assert times.iloc[0] == pd.Timestamp("2024-01-01 00:00", tz="UTC")
        assert times.iloc[-1] == pd.Timestamp("2025-12-31 23:00", tz="UTC")
        assert (times.diff().dropna() == pd.Timedelta(hours=1)).all()


def test_columns_and_dtypes_are_the_loader_layout(frames):
    for frame in frames.values():
        assert tuple(frame.columns) == COLUMNS
        assert frame["timestamp"].dtype == "datetime64[ns, UTC]"
        for column in ("open", "high", "low", "close", "mark_open", "mark_close", "funding_rate"):
            assert frame[column].dtype == np.float64


def test_a_range_without_the_cascade_day_is_generated_too():
    week = generate_pair(start="2024-03-01", end="2024-03-07 23:00")["BTCUSDT"]
    assert len(week) == 7 * 24
    assert (week["low"] > 0).all() and week["volume"].notna().all()


# ----- candles -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["", "mark_"])
def test_candles_are_consistent_and_positive(frames, prefix):
    for frame in frames.values():
        o, h, lo, c = (frame[prefix + k] for k in ("open", "high", "low", "close"))
        assert (h >= np.maximum(o, c)).all()
        assert (lo <= np.minimum(o, c)).all()
        assert (lo > 0).all()


@pytest.mark.parametrize("symbol", list(SYMBOLS))
def test_prices_are_on_the_tick(frames, symbol):
    tick = SYMBOLS[symbol].tick
    prices = frames[symbol][["open", "high", "low", "close", "mark_low", "mark_high"]].to_numpy()
    np.testing.assert_allclose(prices / tick, np.round(prices / tick), rtol=0, atol=1e-6)


def test_prices_start_near_the_levels_of_january_2024(frames):
    assert frames["BTCUSDT"]["open"].iloc[0] == pytest.approx(42_000, rel=0.05)
    assert frames["ETHUSDT"]["open"].iloc[0] == pytest.approx(2_300, rel=0.05)


def test_open_is_the_previous_close_within_a_few_basis_points(bars):
    for frame in bars.values():
        gap = (frame["open"] / frame["close"].shift() - 1).abs().dropna()
        assert gap.median() < 5e-4


def test_hourly_range_is_about_one_and_a_half_return_stds_as_in_real_bars(bars):
    # real Binance perp hours: mean ln(high/low) ≈ 1.6 × std of hourly log returns
    for frame in bars.values():
        ratio = np.log(frame["high"] / frame["low"]).mean() / _log_returns(frame).std()
        assert 1.2 < ratio < 2.0


def test_mark_close_stays_within_a_few_basis_points_of_the_traded_close(bars):
    for frame in bars.values():
        basis = (frame["mark_close"] / frame["close"] - 1).abs()
        assert basis.median() < 5e-4


# ----- returns -------------------------------------------------------------------------------------------


def test_annualized_volatility_is_plausible_and_higher_for_eth(bars):
    vol = {s: _log_returns(f).std() * np.sqrt(365 * 24) for s, f in bars.items()}
    assert 0.4 < vol["BTCUSDT"] < 0.7
    assert vol["ETHUSDT"] > vol["BTCUSDT"]


def test_btc_and_eth_returns_are_strongly_correlated(bars):
    rho = _log_returns(bars["BTCUSDT"]).corr(_log_returns(bars["ETHUSDT"]))
    assert 0.65 < rho < 0.9


def test_returns_have_fat_tails_even_without_the_cascade(bars):
    for frame in bars.values():
        assert _without_cascade(_log_returns(frame)).kurt() > 3


def test_volatility_clusters(bars):
    for frame in bars.values():
        assert _log_returns(frame).abs().autocorr(lag=1) > 0.05


# ----- funding, volume, depth ----------------------------------------------------------------------------


def test_funding_only_at_8h_marks_and_within_the_cap(frames):
    for frame in frames.values():
        paid = frame[frame["funding_rate"].notna()]
        assert set(paid["timestamp"].dt.hour) == {0, 8, 16}
        assert len(paid) == len(frame) // 8
        assert paid["funding_rate"].abs().max() <= FUNDING_CAP


def test_typical_funding_is_the_interest_rate(frames):
    for frame in frames.values():
        assert frame["funding_rate"].median() == FUNDING_INTEREST


def test_funding_is_higher_after_rallies_than_after_selloffs(bars):
    for frame in bars.values():
        paid = frame["funding_rate"].dropna()
        three_days = np.log(frame["close"]).diff(72).shift(1).reindex(paid.index)
        after_rally = paid[three_days > three_days.quantile(0.9)].mean()
        after_selloff = paid[three_days < three_days.quantile(0.1)].mean()
        assert after_rally > FUNDING_INTEREST > after_selloff


def test_volume_rises_with_absolute_returns(bars):
    for frame in bars.values():
        moves = _log_returns(frame).abs()
        assert frame["volume"].reindex(moves.index).rank().corr(moves.rank()) > 0.3  # Spearman


def test_depth_thins_when_volatility_rises(bars):
    for frame in bars.values():
        recent_vol = _log_returns(frame).abs().rolling(24).mean()
        assert frame["depth_2pct_usd"].rank().corr(recent_vol.rank()) < -0.3  # Spearman


def test_depth_has_realistic_magnitudes(bars):
    assert 2e8 < bars["BTCUSDT"]["depth_2pct_usd"].median() < 8e8
    assert 1e8 < bars["ETHUSDT"]["depth_2pct_usd"].median() < 4e8


# ----- the cascade day (2025-10-10) ----------------------------------------------------------------------


def _drop(day: pd.DataFrame, prefix: str = "") -> float:
    """Intraday high-to-low fall, as a fraction."""
    return 1 - day[prefix + "low"].min() / day[prefix + "high"].max()


@pytest.mark.parametrize("seed", [SEED, 1, 2, 3])
def test_cascade_takes_btc_7_to_11_pct_and_eth_at_least_15_pct_high_to_low(seed):
    pair = generate_pair(seed=seed)
    btc, eth = (pair[s].set_index("timestamp").loc[CASCADE_DAY] for s in ("BTCUSDT", "ETHUSDT"))
    assert 0.07 <= _drop(btc) <= 0.11
    assert _drop(eth) >= 0.15


def test_the_crash_bar_holds_the_day_low(bars):
    for frame in bars.values():
        day = frame.loc[CASCADE_DAY]
        assert day["low"].idxmin() == CRASH


def test_lower_wicks_partly_recover_over_the_following_hours(bars):
    for frame in bars.values():
        crash = frame.loc[CRASH]
        fall = crash["open"] - crash["low"]
        day_close = frame.loc[CASCADE_DAY, "close"].iloc[-1]
        assert crash["close"] - crash["low"] > 0.15 * fall  # a wide lower wick
        assert 0.3 * fall < day_close - crash["low"] < fall  # regained in part, not in full


def test_mark_wicks_less_than_the_traded_price_in_the_crash(bars):
    for frame in bars.values():
        crash = frame.loc[CRASH]
        assert crash["mark_low"] / crash["mark_open"] > crash["low"] / crash["open"]


def test_volume_spikes_5_to_10_times_the_previous_day(bars):
    for frame in bars.values():
        previous = frame.loc["2025-10-09", "volume"].median()
        assert 5 <= frame.loc[CRASH, "volume"] / previous <= 10


def test_volatility_spikes_after_the_crash(bars):
    # hourly ranges are a less noisy volatility measure than 12 returns
    for frame in bars.values():
        ranges = np.log(frame["high"] / frame["low"])
        before = ranges.loc["2025-09-10":"2025-10-09"].mean()
        after = ranges.loc[CRASH + pd.Timedelta(hours=1):CRASH + pd.Timedelta(hours=12)].mean()
        assert after > 1.8 * before


def test_depth_collapses_at_least_80_pct_then_recovers_within_a_day(bars):
    for frame in bars.values():
        previous = frame.loc["2025-10-09", "depth_2pct_usd"].median()
        assert frame.loc[CASCADE_DAY, "depth_2pct_usd"].min() <= 0.2 * previous
        assert frame.loc[CRASH + pd.Timedelta(hours=24), "depth_2pct_usd"] >= 0.6 * previous


def test_funding_turns_negative_after_the_cascade(bars):
    for frame in bars.values():
        next_day = frame["funding_rate"].loc[CRASH:CRASH + pd.Timedelta(hours=24)].dropna()
        assert next_day.min() < 0


def test_a_5x_eth_long_opened_before_the_cascade_is_liquidated():
    eth = pd.read_parquet(SAMPLE_DATA / "ETHUSDT-1h.parquet").set_index("timestamp")
    entry = eth.loc[CRASH - pd.Timedelta(hours=1), "close"]  # bought at the 20:00 close
    # isolated 5x: margin = 20% of notional; ETH's first tier has mmr 0.4%, no maintenance amount.
    # Liquidated when entry·(1 − 0.2) = price·(1 − mmr): price = entry · 0.8 / 0.996 ≈ 0.8032 entry
    liquidation_price = entry * 0.8 / 0.996
    crash = eth.loc[CRASH]
    assert crash["low"] < liquidation_price
    assert crash["mark_low"] < liquidation_price  # the engine checks liquidation on the mark


# ----- writing -------------------------------------------------------------------------------------------


def test_writer_leaves_identical_files_untouched(tmp_path):
    paths = write_sample_data(tmp_path)
    stamps = [p.stat().st_mtime_ns for p in paths]
    assert write_sample_data(tmp_path) == paths
    assert [p.stat().st_mtime_ns for p in paths] == stamps


def test_writer_refuses_to_overwrite_a_different_file_unless_forced(tmp_path):
    original = write_sample_data(tmp_path)[0].read_bytes()
    target = tmp_path / "BTCUSDT-1h.parquet"
    generate("BTCUSDT", seed=7).to_parquet(target)
    changed = target.read_bytes()
    with pytest.raises(FileExistsError, match="force"):
        write_sample_data(tmp_path)
    assert target.read_bytes() == changed
    write_sample_data(tmp_path, force=True)
    assert target.read_bytes() == original


def test_command_line_exits_2_on_a_different_file_and_writes_with_force(tmp_path, capsys):
    (tmp_path / "ETHUSDT-1h.parquet").write_text("not parquet")
    assert synthetic.main(["--out", str(tmp_path)]) == 2
    assert "--force" in capsys.readouterr().err
    assert (tmp_path / "ETHUSDT-1h.parquet").read_text() == "not parquet"
    assert synthetic.main(["--out", str(tmp_path), "--force"]) == 0
    assert pd.read_parquet(tmp_path / "ETHUSDT-1h.parquet").shape == (BARS_IN_2024_AND_2025, 12)


def test_the_altcoin_cascade_is_far_worse_than_btcs_and_its_book_thins_most(frames):
    """SOLUSDT's 10 October 2025: −30% to −40% from the day's high (BTC −9%), its 2% depth falling
    further than BTC's, and a 5x long on it liquidated on the mark where BTC's survives."""
    day = {s: f.set_index("timestamp").loc["2025-10-10"] for s, f in frames.items()}
    before = {s: f.set_index("timestamp").loc["2025-10-09"] for s, f in frames.items()}
    drop = {s: d["low"].min() / d["high"].max() - 1 for s, d in day.items()}
    assert -0.40 <= drop["SOLUSDT"] <= -0.30
    assert drop["SOLUSDT"] < 3 * drop["BTCUSDT"]
    thinning = {s: day[s]["depth_2pct_usd"].min() / before[s]["depth_2pct_usd"].median() for s in day}
    assert thinning["SOLUSDT"] < thinning["ETHUSDT"] < thinning["BTCUSDT"] + 0.06
    assert np.corrcoef(np.diff(np.log(frames["SOLUSDT"]["close"])),
                       np.diff(np.log(frames["BTCUSDT"]["close"])))[0, 1] > 0.5
