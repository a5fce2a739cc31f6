"""Specification of backtest.levels: pivots, clustering into levels, no look-ahead, helpers."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backtest.levels import (
    active_levels,
    near_resistance,
    near_support,
    pivots,
    resistance_stop,
    resistance_target,
    support_resistance,
    support_stop,
    support_target,
)

# A hand-built zig-zag (left = right = 2). Highs; lows are high - 1, closes high - 0.5.
#   pivot high at bar 3 (13.0)  -> confirmed at bar 5
#   pivot low  at bar 6 (9.0)   -> confirmed at bar 8
#   pivot high at bar 9 (13.1)  -> confirmed at bar 11, within 1% of 13.0: level 13.05, 2 touches
#   pivot low  at bar 12 (9.2)  -> confirmed at bar 14, 0.2 from 9.0 > 1% of 9.2: a new level
#   bar 16 closes at 13.5, above the 13.05 level, which becomes support.
ZIGZAG_HIGH = [10, 11, 12, 13, 12, 11, 10, 11, 12, 13.1, 12, 11, 10.2, 11, 12, 13, 14]
INDEX = pd.date_range("2024-01-01", periods=len(ZIGZAG_HIGH), freq="h", tz="UTC")
PCT = {"left": 2, "right": 2, "tolerance": 1.0, "tolerance_unit": "pct", "half_life": None}


def zigzag():
    high = pd.Series(ZIGZAG_HIGH, index=INDEX, dtype=float)
    return high, high - 1.0, high - 0.5


def random_walk(n, seed):
    rng = np.random.default_rng(seed)
    index = pd.date_range("2024-01-01", periods=n, freq="h", tz="UTC")
    close = pd.Series(100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n))), index=index)
    spread = close * np.abs(rng.normal(0.0, 0.005, n))
    volume = pd.Series(rng.lognormal(0.0, 1.0, n), index=index)
    return close + spread, close - spread, close, volume


# --------------------------------------------------------------------------- pivots


def test_pivots_mark_the_pivot_bar_with_its_price():
    high, low, _ = zigzag()
    p = pivots(high, low, left=2, right=2)
    assert p["pivot_high"].dropna().to_dict() == {INDEX[3]: 13.0, INDEX[9]: 13.1}
    assert p["pivot_low"].dropna().to_dict() == {INDEX[6]: 9.0, INDEX[12]: 9.2}


def test_pivot_plateau_counts_once_at_its_first_bar():
    high = np.array([1.0, 2.0, 3.0, 3.0, 2.0, 1.0])
    p = pivots(high, high - 0.5, left=2, right=2)
    assert p["pivot_high"].tolist()[2] == 3.0
    assert p["pivot_high"].notna().sum() == 1


def test_bars_without_a_full_window_are_not_pivots():
    high = np.array([5.0, 4.0, 3.0, 4.0, 6.0])  # bar 0 is the top of what we see; bar 4 too
    p = pivots(high, high - 1.0, left=1, right=1)
    assert p["pivot_high"].isna().all()
    assert p["pivot_low"].tolist()[2] == 2.0


# --------------------------------------------------------------------------- levels per bar


def test_pivot_is_invisible_until_its_confirmation_bar():
    levels = support_resistance(*zigzag(), **PCT)
    assert np.isnan(levels["resistance"].iloc[4])  # bar i + right - 1
    assert levels["resistance"].iloc[5] == 13.0  # bar i + right


def test_nearest_levels_on_each_side_of_the_close():
    levels = support_resistance(*zigzag(), **PCT)
    assert np.isnan(levels["support"].iloc[7])
    assert levels.iloc[8][["support", "resistance"]].tolist() == [9.0, 13.0]


def test_pivot_within_tolerance_joins_level_at_mean_price():
    levels = support_resistance(*zigzag(), **PCT)
    assert levels["resistance"].iloc[10] == 13.0
    assert levels["resistance"].iloc[11] == pytest.approx(13.05)
    assert levels["resistance_strength"].iloc[11] == 2.0


def test_pivot_beyond_tolerance_starts_a_new_level():
    levels = support_resistance(*zigzag(), **PCT)
    assert levels["support"].iloc[13] == 9.0
    assert levels["support"].iloc[14] == 9.2


def test_broken_resistance_becomes_support():
    levels = support_resistance(*zigzag(), **PCT)
    assert levels["support"].iloc[16] == pytest.approx(13.05)
    assert np.isnan(levels["resistance"].iloc[16])


def test_strength_halves_every_half_life_bars():
    levels = support_resistance(*zigzag(), **{**PCT, "half_life": 2})
    assert levels["resistance_strength"].iloc[5] == pytest.approx(0.5)  # touch 2 bars old
    # touches at bars 3 and 9, seen from bar 11: 0.5**4 + 0.5**1
    assert levels["resistance_strength"].iloc[11] == pytest.approx(0.5625)


def test_volume_weights_touch_by_relative_volume():
    high, low, close = zigzag()
    volume = pd.Series(1.0, index=INDEX)
    volume.iloc[3] = 5.0  # pivot window bars 1..5 average 1.8
    levels = support_resistance(high, low, close, volume, **PCT)
    assert levels["resistance_strength"].iloc[5] == pytest.approx(5.0 / 1.8)


def test_level_older_than_max_age_is_dropped():
    levels = support_resistance(*zigzag(), **{**PCT, "max_age": 4})
    assert levels["resistance"].iloc[7] == 13.0  # last touch bar 3, age 4
    assert np.isnan(levels["resistance"].iloc[8])  # age 5
    # the bar-9 pivot no longer has a level to join: it starts its own
    assert levels["resistance"].iloc[11] == 13.1
    assert levels["resistance_strength"].iloc[11] == 1.0


def constant_range_bars():
    """Closes move at most 1 per bar with high/low = close ± 1, so every true range (and ATR) is 2.

    Pivot highs 14.0 at bar 3 and 13.9 at bar 9 (0.1 apart)."""
    close = pd.Series([10, 11, 12, 13, 12, 11, 10, 11, 12, 12.9, 12, 11, 10], dtype=float)
    return close + 1.0, close - 1.0, close


def test_atr_tolerance_joins_pivots_within_multiple_of_atr():
    params = {"left": 2, "right": 2, "atr_window": 3, "half_life": None}
    joined = support_resistance(*constant_range_bars(), tolerance=0.1, **params)  # 0.2 apart
    apart = support_resistance(*constant_range_bars(), tolerance=0.04, **params)  # 0.08 apart
    assert joined["resistance"].iloc[12] == pytest.approx(13.95)
    assert apart["resistance"].iloc[12] == 13.9


def test_pivots_confirmed_during_atr_warm_up_are_ignored():
    # ATR(7) is first defined at bar 6; the bar-3 pivot is confirmed at bar 5
    levels = support_resistance(*constant_range_bars(), left=2, right=2, atr_window=7)
    assert levels["resistance"].iloc[5:11].isna().all()
    assert levels["resistance"].iloc[11] == 13.9


def test_arrays_in_give_a_range_index():
    high, low, close = zigzag()
    levels = support_resistance(high.to_numpy(), low.to_numpy(), close.to_numpy(), **PCT)
    assert isinstance(levels.index, pd.RangeIndex)
    assert levels["resistance"].iloc[5] == 13.0


def test_market_like_object_is_accepted():
    high, low, close = zigzag()
    market = SimpleNamespace(high=high, low=low, close=close, volume=pd.Series(1.0, index=INDEX))
    levels = support_resistance(market, **PCT)
    assert levels.index.equals(INDEX)
    assert levels["resistance"].iloc[11] == pytest.approx(13.05)


# --------------------------------------------------------------------------- reference model


def reference_levels(
    high, low, close, weight, tolerance_abs, tolerance_frac, left, right, half_life, max_age
):
    """Plain-Python statement of the rules, for comparison with the kernel."""
    n = len(close)
    out = np.full((n, 4), np.nan)
    levels = []  # each: {"touches": [(price, bar, weight)], "last": bar}

    def level_price(lv):
        return sum(p for p, _, _ in lv["touches"]) / len(lv["touches"])

    def strength(lv, t):
        return sum(w * 0.5 ** ((t - i) / half_life) for _, i, w in lv["touches"])

    for t in range(n):
        levels = [lv for lv in levels if t - lv["last"] <= max_age]
        i = t - right
        if i >= left:
            is_high = high[i] > high[i - left : i].max() and high[i] >= high[i + 1 : t + 1].max()
            is_low = low[i] < low[i - left : i].min() and low[i] <= low[i + 1 : t + 1].min()
            for price, is_pivot in ((high[i], is_high), (low[i], is_low)):
                tolerance = tolerance_abs[t] + tolerance_frac * price
                if not is_pivot or not np.isfinite(tolerance):
                    continue
                near = [
                    (abs(level_price(lv) - price), level_price(lv), k)
                    for k, lv in enumerate(levels)
                    if abs(level_price(lv) - price) <= tolerance
                ]
                if near:
                    lv = levels[min(near)[2]]
                    lv["touches"].append((price, i, weight[i]))
                    lv["last"] = i
                else:
                    levels.append({"touches": [(price, i, weight[i])], "last": i})
        below = [lv for lv in levels if level_price(lv) < close[t]]
        above = [lv for lv in levels if level_price(lv) > close[t]]
        if below:
            lv = max(below, key=level_price)
            out[t, 0:2] = level_price(lv), strength(lv, t)
        if above:
            lv = min(above, key=level_price)
            out[t, 2:4] = level_price(lv), strength(lv, t)
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kernel_matches_reference_model_with_expiry_and_decay(seed):
    from backtest.levels_nb import support_resistance_nb, touch_weights_nb

    high, low, close, volume = (s.to_numpy() for s in random_walk(400, seed))
    weight = touch_weights_nb(volume, 2, 3)
    rng = np.random.default_rng(seed)
    tolerance_abs = rng.uniform(0.0, 1.0, len(close))
    tolerance_abs[:10] = np.nan  # a warm-up
    args = (weight, tolerance_abs, 0.002, 2, 3, 40.0, 60)
    expected = reference_levels(high, low, close, *args)
    actual = np.column_stack(support_resistance_nb(high, low, close, *args)[:4])
    np.testing.assert_allclose(actual, expected, rtol=1e-12)


# --------------------------------------------------------------------------- no look-ahead


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"tolerance": 0.3, "tolerance_unit": "pct", "max_age": 50, "half_life": 20},
        {"left": 1, "right": 5, "atr_window": 5, "half_life": None},
    ],
)
def test_prefix_gives_same_rows_as_full_data(params):
    high, low, close, volume = random_walk(600, seed=7)
    full = support_resistance(high, low, close, volume, **params)
    for n in (40, 137, 401):
        part = support_resistance(high[:n], low[:n], close[:n], volume[:n], **params)
        pd.testing.assert_frame_equal(part, full.iloc[:n], check_exact=True)


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(20, 150),
    left=st.integers(1, 4),
    right=st.integers(1, 4),
    tolerance=st.floats(0.05, 2.0),
    unit=st.sampled_from(["atr", "pct"]),
)
def test_no_look_ahead_property(seed, n, left, right, tolerance, unit):
    high, low, close, volume = random_walk(160, seed)
    params = {
        "left": left,
        "right": right,
        "tolerance": tolerance,
        "tolerance_unit": unit,
        "atr_window": 5,
        "half_life": 30,
    }
    full = support_resistance(high, low, close, volume, **params)
    part = support_resistance(high[:n], low[:n], close[:n], volume[:n], **params)
    pd.testing.assert_frame_equal(part, full.iloc[:n], check_exact=True)


# --------------------------------------------------------------------------- active levels


def test_active_levels_lists_levels_known_at_bar():
    lv = active_levels(*zigzag(), at=11, **PCT)
    assert lv["price"].tolist() == pytest.approx([9.0, 13.05])
    assert lv["touches"].tolist() == [1, 2]
    assert lv["first_seen"].tolist() == [INDEX[6], INDEX[3]]
    assert lv["last_touch"].tolist() == [INDEX[6], INDEX[9]]


def test_active_levels_at_timestamp_uses_last_bar_at_or_before_it():
    by_time = active_levels(*zigzag(), at=INDEX[10] + pd.Timedelta("30min"), **PCT)
    assert by_time["price"].tolist() == [9.0, 13.0]  # bar 10: the bar-9 pivot is not known yet


def test_active_levels_strength_matches_per_bar_strength():
    high, low, close, volume = random_walk(300, seed=3)
    per_bar = support_resistance(high, low, close, volume, half_life=50)
    lv = active_levels(high, low, close, volume, at=250, half_life=50)
    row = per_bar.iloc[250]
    match = lv.loc[lv["price"] == row["support"], "strength"]
    assert match.tolist() == [row["support_strength"]]


# --------------------------------------------------------------------------- helpers


def levels_frame():
    return pd.DataFrame(
        {
            "support": [95.0, np.nan, 99.5],
            "support_strength": [1.0, np.nan, 3.0],
            "resistance": [110.0, 101.5, 100.8],
            "resistance_strength": [2.0, 0.5, 3.0],
        },
        index=INDEX[:3],
    )


def test_support_stop_is_support_minus_atr_buffer():
    atr = pd.Series([2.0, 2.0, 4.0], index=INDEX[:3])
    stop = support_stop(levels_frame(), atr, buffer_atr=0.5)
    assert stop.tolist()[0] == 94.0 and np.isnan(stop.iloc[1]) and stop.iloc[2] == 97.5


def test_resistance_stop_is_resistance_plus_atr_buffer():
    assert resistance_stop(levels_frame(), 2.0, buffer_atr=1.0).tolist() == [112.0, 103.5, 102.8]


def test_targets_are_the_opposite_levels():
    assert resistance_target(levels_frame()).tolist() == [110.0, 101.5, 100.8]
    assert support_target(levels_frame()).tolist()[0] == 95.0


def test_near_resistance_flags_close_within_fraction_of_strong_level():
    close = pd.Series([100.0, 100.0, 100.0], index=INDEX[:3])
    assert near_resistance(close, levels_frame(), within=0.01).tolist() == [False, False, True]
    assert near_resistance(close, levels_frame(), within=0.02).tolist() == [False, True, True]
    assert near_resistance(close, levels_frame(), within=0.02, min_strength=1.0).tolist() == [
        False,
        False,
        True,
    ]


def test_near_support_flags_close_within_fraction_above_support():
    close = pd.Series([100.0, 100.0, 100.0], index=INDEX[:3])
    assert near_support(close, levels_frame(), within=0.01).tolist() == [False, False, True]


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"left": 0}, "left"),
        ({"right": 1.5}, "right"),
        ({"tolerance": 0}, "tolerance"),
        ({"tolerance_unit": "bps"}, "tolerance_unit"),
        ({"atr_window": 0}, "atr_window"),
        ({"half_life": -1}, "half_life"),
        ({"max_age": 2}, "max_age"),  # below right = 3
    ],
)
def test_invalid_parameters_raise_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=name):
        support_resistance(*zigzag(), **kwargs)


def test_length_mismatch_raises_naming_the_input():
    high, low, close = zigzag()
    with pytest.raises(ValueError, match="close"):
        support_resistance(high.to_numpy(), low.to_numpy(), close.to_numpy()[:-1])


def test_nan_price_raises_naming_the_input():
    high, low, close = zigzag()
    low.iloc[4] = np.nan
    with pytest.raises(ValueError, match="low"):
        support_resistance(high, low, close)


def test_negative_volume_raises():
    high, low, close = zigzag()
    with pytest.raises(ValueError, match="volume"):
        support_resistance(high, low, close, -pd.Series(1.0, index=INDEX))


def test_active_levels_at_outside_data_raises():
    with pytest.raises(ValueError, match="at"):
        active_levels(*zigzag(), at=len(ZIGZAG_HIGH))
    with pytest.raises(ValueError, match="at"):
        active_levels(*zigzag(), at="2023-12-31")


def test_near_resistance_rejects_nonpositive_within():
    with pytest.raises(ValueError, match="within"):
        near_resistance(pd.Series([100.0, 100.0, 100.0], index=INDEX[:3]), levels_frame(), 0.0)


def test_negative_buffer_raises():
    with pytest.raises(ValueError, match="buffer_atr"):
        support_stop(levels_frame(), 2.0, buffer_atr=-1.0)
