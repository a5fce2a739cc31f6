"""Specification of backtest.sizing: exposures (notional / equity), caps, warm-up, no look-ahead."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from backtest.sizing import (
    atr_risk,
    kelly_fraction,
    risk_per_trade,
    target_volatility,
    tier_capped,
)

DAYS = pd.date_range("2024-01-01", periods=5, freq="D", tz="UTC")
TIERS = pd.DataFrame(
    {
        "min_notional": [0.0, 10_000.0, 100_000.0],
        "max_notional": [10_000.0, 100_000.0, 1_000_000.0],
        "mmr": [0.004, 0.005, 0.01],
        "maintenance_amount": [0.0, 10.0, 510.0],
        "max_leverage": [50.0, 20.0, 10.0],
    }
)


def random_walk(n, seed=0):
    rng = np.random.default_rng(seed)
    index = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC")
    close = pd.Series(100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n))), index=index)
    spread = close * np.abs(rng.normal(0.0, 0.005, n))
    return close + spread, close - spread, close


# --------------------------------------------------------------------------- risk per trade


def test_risk_per_trade_long_entry_100_stop_95_risk_1pct_is_0_2():
    assert risk_per_trade(100.0, 95.0, risk=0.01) == 0.2


def test_risk_per_trade_short_stop_above_entry_is_sized_the_same():
    assert risk_per_trade(100.0, 105.0, risk=0.01) == 0.2


def test_risk_per_trade_caps_at_max_leverage():
    assert risk_per_trade(100.0, 99.9, risk=0.01, max_leverage=5) == 5.0  # uncapped 10
    assert risk_per_trade(100.0, 100.0, risk=0.01, max_leverage=5) == 5.0  # stop at entry


def test_risk_per_trade_series_in_series_out_with_nan_kept():
    entry = pd.Series([100.0, 200.0, np.nan], index=DAYS[:3])
    stop = pd.Series([98.0, 190.0, 95.0], index=DAYS[:3])
    out = risk_per_trade(entry, stop, risk=0.02)
    assert out.index.equals(DAYS[:3])
    assert out.tolist()[:2] == pytest.approx([1.0, 0.4]) and np.isnan(out.iloc[2])


def test_risk_per_trade_arrays_in_array_out():
    out = risk_per_trade(np.array([100.0, 50.0]), np.array([90.0, 45.0]), risk=0.01)
    assert isinstance(out, np.ndarray)
    assert out.tolist() == pytest.approx([0.1, 0.1])


# --------------------------------------------------------------------------- ATR risk


def flat_bars(n=20):
    """Close 100, high 101, low 99: every true range, hence the ATR, is 2."""
    close = pd.Series(100.0, index=pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC"))
    return close + 1.0, close - 1.0, close


def test_atr_risk_stop_two_atr_away():
    # ATR 2, stop 2 x 2 = 4 below 100: 4% away, 1% risk -> exposure 0.25
    out = atr_risk(*flat_bars(), risk=0.01, atr_window=5, atr_mult=2.0)
    assert out.iloc[-1] == pytest.approx(0.25)


def test_atr_risk_is_nan_during_atr_warm_up():
    out = atr_risk(*flat_bars(), atr_window=5)
    assert out.iloc[:4].isna().all() and out.iloc[4:].notna().all()


def test_atr_risk_caps_at_max_leverage():
    out = atr_risk(*flat_bars(), risk=0.5, atr_window=5, max_leverage=3)  # uncapped 12.5
    assert out.iloc[-1] == 3.0


def test_atr_risk_accepts_market_like_object():
    high, low, close = flat_bars()
    out = atr_risk(SimpleNamespace(high=high, low=low, close=close), atr_window=5)
    assert out.index.equals(close.index) and out.iloc[-1] == pytest.approx(0.25)


# --------------------------------------------------------------------------- target volatility


def alternating_close():
    return pd.Series([100.0, 110.0, 100.0, 110.0, 100.0], index=DAYS)


def test_target_volatility_hand_computed():
    # log returns +-ln(1.1) = +-0.09531; sample std of 4 of them: 0.09531 * sqrt(4/3) = 0.11005;
    # x sqrt(365) daily bars -> 2.10259 annualized; target 1.0 -> exposure 0.47560
    out = target_volatility(alternating_close(), target_vol=1.0, window=4)
    assert out.iloc[-1] == pytest.approx(0.47560, abs=1e-5)


def test_target_volatility_is_nan_for_first_window_bars():
    out = target_volatility(alternating_close(), target_vol=1.0, window=4)
    assert out.iloc[:4].isna().all()


def test_target_volatility_min_periods_shortens_warm_up():
    out = target_volatility(alternating_close(), target_vol=1.0, window=4, min_periods=2)
    # two returns +-ln(1.1): std 0.13479, x sqrt(365) = 2.57517 -> 0.38832
    assert out.iloc[2] == pytest.approx(0.38832, abs=1e-5)


def test_target_volatility_infers_periods_per_year_from_hourly_bars():
    _, _, close = random_walk(100)
    inferred = target_volatility(close, window=24)
    explicit = target_volatility(close, window=24, periods_per_year=365 * 24)
    pd.testing.assert_series_equal(inferred, explicit)


def test_target_volatility_zero_vol_gives_max_leverage():
    out = target_volatility(pd.Series(100.0, index=DAYS), window=3, max_leverage=4)
    assert out.iloc[-1] == 4.0


def test_target_volatility_arrays_need_periods_per_year():
    close = alternating_close().to_numpy()
    with pytest.raises(ValueError, match="periods_per_year"):
        target_volatility(close, window=4)
    out = target_volatility(close, target_vol=1.0, window=4, periods_per_year=365)
    assert isinstance(out, np.ndarray) and out[-1] == pytest.approx(0.47560, abs=1e-5)


# --------------------------------------------------------------------------- tier caps


def test_tier_capped_limits_notional_to_brackets_allowing_the_leverage():
    # leverage 20: brackets 1-2 allow it, up to 100k notional; equity 40k -> exposure <= 2.5
    assert tier_capped(5.0, equity=40_000, leverage=20, tiers=TIERS) == 2.5


def test_tier_capped_leaves_exposure_that_fits():
    assert tier_capped(2.0, equity=40_000, leverage=20, tiers=TIERS) == 2.0


def test_tier_capped_higher_leverage_only_in_first_bracket():
    # leverage 25 is allowed only up to 10k notional: 10k / 40k = 0.25
    assert tier_capped(5.0, equity=40_000, leverage=25, tiers=TIERS) == 0.25


def test_tier_capped_never_exceeds_leverage():
    assert tier_capped(15.0, equity=1_000, leverage=10, tiers=TIERS) == 10.0


def test_tier_capped_keeps_sign_and_nan_per_bar():
    exposure = pd.Series([-5.0, np.nan, 1.0], index=DAYS[:3])
    equity = pd.Series([40_000.0, 40_000.0, 400_000.0], index=DAYS[:3])
    out = tier_capped(exposure, equity, leverage=20, tiers=TIERS)
    assert out.iloc[0] == -2.5 and np.isnan(out.iloc[1]) and out.iloc[2] == 0.25


def test_tier_capped_leverage_above_every_bracket_raises():
    with pytest.raises(ValueError, match="leverage"):
        tier_capped(1.0, equity=1_000, leverage=60, tiers=TIERS)


def test_tier_capped_rejects_table_without_required_columns():
    with pytest.raises(ValueError, match="tiers"):
        tier_capped(1.0, equity=1_000, leverage=5, tiers=TIERS.drop(columns="max_leverage"))


# --------------------------------------------------------------------------- Kelly


def trades(returns):
    return pd.Series(returns, index=DAYS[: len(returns)], dtype=float)


P60_B15 = [0.03, -0.02, 0.03, -0.02, 0.03]  # p = 0.6, b = 0.03 / 0.02 = 1.5


def test_kelly_p_0_6_b_1_5_is_one_third():
    assert kelly_fraction(trades(P60_B15), window=5, fraction=1.0).iloc[-1] == pytest.approx(1 / 3)


def test_half_kelly_halves_it():
    assert kelly_fraction(trades(P60_B15), window=5, fraction=0.5).iloc[-1] == pytest.approx(1 / 6)


def test_kelly_is_nan_until_min_trades_have_closed():
    out = kelly_fraction(trades(P60_B15), window=5, fraction=1.0)
    assert out.iloc[:4].isna().all()
    out = kelly_fraction(trades(P60_B15), window=5, fraction=1.0, min_trades=3)
    # first 3 trades: p = 2/3, b = 1.5 -> f = 2/3 - (1/3)/1.5 = 4/9
    assert np.isnan(out.iloc[1]) and out.iloc[2] == pytest.approx(4 / 9)


def test_kelly_uses_only_the_last_window_trades():
    out = kelly_fraction(trades([0.05, 0.05, -0.01, -0.01]), window=2, fraction=1.0)
    assert out.tolist()[1:] == [1.0, pytest.approx(0.5 - 0.5 / 5), 0.0]  # wins only; b = 5; none


def test_kelly_is_clipped_to_cap():
    assert (
        kelly_fraction(trades([0.02, 0.01, 0.03]), window=3, fraction=1.0, cap=0.25).iloc[-1]
        == 0.25
    )


def test_kelly_negative_edge_is_zero():
    # p = 0.4, b = 1: f = 0.4 - 0.6 = -0.2 -> 0
    out = kelly_fraction(trades([0.01, -0.01, -0.01, 0.01, -0.01]), window=5, fraction=1.0)
    assert out.iloc[-1] == 0.0


def test_kelly_on_bars_applies_strictly_after_each_exit():
    bars = pd.date_range("2024-01-03", periods=6, freq="12h", tz="UTC")  # 3rd 00:00 .. 5th 12:00
    out = kelly_fraction(trades(P60_B15), window=3, fraction=1.0, index=bars)
    # trades exit daily at 00:00 from the 1st. Last 3 trades known at each bar:
    #   3rd 00:00: trades 1-2 only -> too few -> NaN
    #   3rd 12:00, 4th 00:00: trades 1-3 (+3 -2 +3): p = 2/3, b = 1.5 -> 2/3 - (1/3)/1.5 = 4/9
    #   4th 12:00, 5th 00:00: trades 2-4 (-2 +3 -2): p = 1/3 -> 1/3 - (2/3)/1.5 < 0 -> 0
    #   5th 12:00: trades 3-5 (+3 -2 +3) -> 4/9
    assert np.isnan(out.iloc[0])
    assert out.iloc[1:].tolist() == pytest.approx([4 / 9, 4 / 9, 0.0, 0.0, 4 / 9])


def test_kelly_sorts_trades_by_exit_time():
    shuffled = trades(P60_B15).iloc[[4, 0, 3, 1, 2]]
    assert kelly_fraction(shuffled, window=5, fraction=1.0).iloc[-1] == pytest.approx(1 / 3)


# --------------------------------------------------------------------------- no look-ahead


def test_sizing_on_prefix_equals_full_data_prefix():
    high, low, close = random_walk(400)
    stop = low.rolling(10, min_periods=1).min()
    equity = 10_000.0 * (close / close.iloc[0])
    sizers = {
        "risk_per_trade": lambda h, lo, c: risk_per_trade(c, stop[: len(c)]),
        "atr_risk": lambda h, lo, c: atr_risk(h, lo, c, atr_window=14),
        "target_volatility": lambda h, lo, c: target_volatility(c, window=48),
        "tier_capped": lambda h, lo, c: tier_capped(
            target_volatility(c, window=48), equity[: len(c)], leverage=20, tiers=TIERS
        ),
    }
    for name, sizer in sizers.items():
        full = sizer(high, low, close)
        for n in (30, 97, 250):
            part = sizer(high[:n], low[:n], close[:n])
            pd.testing.assert_series_equal(part, full.iloc[:n], check_exact=True, obj=name)


def test_kelly_on_bars_uses_only_trades_closed_before_each_bar():
    rng = np.random.default_rng(5)
    exits = pd.date_range("2024-01-01", periods=60, freq="7h", tz="UTC")
    returns = pd.Series(rng.normal(0.002, 0.02, 60), index=exits)
    bars = pd.date_range("2024-01-01", periods=400, freq="h", tz="UTC")
    full = kelly_fraction(returns, window=10, index=bars)
    for n in (50, 123, 300):
        known = returns[returns.index < bars[n]]
        part = kelly_fraction(known, window=10, index=bars[:n])
        pd.testing.assert_series_equal(part, full.iloc[:n], check_exact=True)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: risk_per_trade(100.0, 95.0, risk=0), "risk"),
        (lambda: risk_per_trade(100.0, 95.0, max_leverage=-1), "max_leverage"),
        (lambda: risk_per_trade(-100.0, 95.0), "entry_price"),
        (lambda: risk_per_trade(100.0, 0.0), "stop_price"),
        (lambda: atr_risk(*flat_bars(), atr_window=0), "atr_window"),
        (lambda: atr_risk(*flat_bars(), atr_mult=0), "atr_mult"),
        (lambda: target_volatility(alternating_close(), target_vol=0), "target_vol"),
        (lambda: target_volatility(alternating_close(), window=1), "window"),
        (lambda: target_volatility(alternating_close(), window=3, min_periods=4), "min_periods"),
        (lambda: target_volatility(alternating_close(), periods_per_year=-1), "periods_per_year"),
        (lambda: tier_capped(1.0, equity=0.0, leverage=5, tiers=TIERS), "equity"),
        (lambda: kelly_fraction(trades(P60_B15), window=0), "window"),
        (lambda: kelly_fraction(trades(P60_B15), fraction=0), "fraction"),
        (lambda: kelly_fraction(trades(P60_B15), cap=-1), "cap"),
        (lambda: kelly_fraction(P60_B15), "trade_returns"),
        (lambda: kelly_fraction(trades(P60_B15), index=[1, 2]), "index"),
    ],
)
def test_invalid_parameters_raise_naming_them(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_series_on_different_indexes_raise():
    entry = pd.Series([100.0, 100.0], index=DAYS[:2])
    stop = pd.Series([95.0, 95.0], index=DAYS[1:3])
    with pytest.raises(ValueError, match="stop_price"):
        risk_per_trade(entry, stop)
