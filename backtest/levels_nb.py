"""Numba kernels for :mod:`backtest.levels`: pivots and support/resistance levels.

Pure functions, 1-D float64 arrays in, arrays out; the Python layer in ``levels.py`` validates the
inputs once and these kernels trust them (finite prices, ``left``/``right`` >= 1, and so on).

Level state lives in parallel arrays indexed by a level id (ids are handed out in order of
creation). The ids of the levels still alive are kept in ``order``, sorted by price, so the
nearest level above or below a price is a binary search away. Levels that outgrow ``max_age`` are
removed lazily, when a search meets them; since expiry depends only on the bar, this gives the
same answers as removing them eagerly every bar.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def pivot_flags_nb(high, low, left, right):
    """Flag swing pivots at the bar where they happen (bar i, known at bar i + right).

    A pivot high at i: ``high[i]`` is above every high in ``i-left .. i-1`` and not below any in
    ``i+1 .. i+right`` — the strict maximum of the window, a plateau of equal highs counting once,
    at its first bar. Pivot lows mirror this. Bars without a full window on either side are not
    pivots.

    Returns ``(is_pivot_high, is_pivot_low)``, boolean arrays of ``len(high)``.
    """
    n = high.shape[0]
    is_high = np.zeros(n, dtype=np.bool_)
    is_low = np.zeros(n, dtype=np.bool_)
    for i in range(left, n - right):
        top = high[i]
        bottom = low[i]
        ok_high = True
        ok_low = True
        for j in range(i - left, i):
            if high[j] >= top:
                ok_high = False
            if low[j] <= bottom:
                ok_low = False
        for j in range(i + 1, i + right + 1):
            if high[j] > top:
                ok_high = False
            if low[j] < bottom:
                ok_low = False
        is_high[i] = ok_high
        is_low[i] = ok_low
    return is_high, is_low


@njit(cache=True)
def touch_weights_nb(volume, left, right):
    """Relative volume of each bar against the mean of its pivot window ``i-left .. i+right``.

    The window ends at the confirmation bar, so the weight is known when the pivot is. A window
    with no volume at all gives the neutral weight 1. Bars without a full window get NaN.
    """
    n = volume.shape[0]
    weights = np.full(n, np.nan)
    width = left + right + 1
    for i in range(left, n - right):
        total = 0.0
        for j in range(i - left, i + right + 1):
            total += volume[j]
        mean = total / width
        weights[i] = volume[i] / mean if mean > 0.0 else 1.0
    return weights


@njit(cache=True)
def _lower_bound_nb(order, n_active, level_price, price):
    """First position in ``order[:n_active]`` whose level price is >= ``price``."""
    lo = 0
    hi = n_active
    while lo < hi:
        mid = (lo + hi) // 2
        if level_price[order[mid]] < price:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True)
def _upper_bound_nb(order, n_active, level_price, price):
    """First position in ``order[:n_active]`` whose level price is > ``price``."""
    lo = 0
    hi = n_active
    while lo < hi:
        mid = (lo + hi) // 2
        if level_price[order[mid]] <= price:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True)
def _remove_at_nb(order, n_active, pos):
    for k in range(pos, n_active - 1):
        order[k] = order[k + 1]
    return n_active - 1


@njit(cache=True)
def _insert_at_nb(order, n_active, pos, level_id):
    for k in range(n_active, pos, -1):
        order[k] = order[k - 1]
    order[pos] = level_id
    return n_active + 1


@njit(cache=True)
def _alive_below_nb(order, n_active, pos, last_touch, bar, max_age):
    """Nearest alive position below ``pos`` (or -1), dropping expired levels met on the way.

    Returns ``(position, n_active)``; positions at or above ``pos`` shift down by the number of
    levels dropped.
    """
    k = pos - 1
    while k >= 0 and bar - last_touch[order[k]] > max_age:
        n_active = _remove_at_nb(order, n_active, k)
        k -= 1
    return k, n_active


@njit(cache=True)
def _alive_from_nb(order, n_active, pos, last_touch, bar, max_age):
    """Nearest alive position at or above ``pos`` (or ``n_active``), dropping expired levels."""
    while pos < n_active and bar - last_touch[order[pos]] > max_age:
        n_active = _remove_at_nb(order, n_active, pos)
    return pos, n_active


@njit(cache=True)
def _resort_at_nb(order, n_active, pos, level_price):
    """Move the level at ``pos`` to its place after its price changed (one insertion step)."""
    while pos > 0 and level_price[order[pos - 1]] > level_price[order[pos]]:
        order[pos - 1], order[pos] = order[pos], order[pos - 1]
        pos -= 1
    while pos < n_active - 1 and level_price[order[pos + 1]] < level_price[order[pos]]:
        order[pos + 1], order[pos] = order[pos], order[pos + 1]
        pos += 1


@njit(cache=True)
def support_resistance_nb(
    high,
    low,
    close,
    touch_weight,
    tolerance_abs,
    tolerance_frac,
    left,
    right,
    half_life,
    max_age,
):
    """Cluster confirmed pivots into levels and report the nearest level on each side per bar.

    Arguments (all 1-D, length n): ``touch_weight`` per pivot bar (1 without volume),
    ``tolerance_abs`` per confirmation bar (NaN = warm-up: pivots confirmed there are ignored);
    scalars: ``tolerance_frac`` (fraction of the pivot price added to the tolerance), ``left``,
    ``right``, ``half_life`` (bars; ``inf`` = no decay), ``max_age`` (bars since a level's last
    touch after which it is dropped; ``n`` = never).

    At bar t the pivots of bar ``i = t - right`` are processed (high first, then low): a pivot
    joins the nearest alive level within tolerance (ties: the lower level), else starts one. A
    level's price is the plain mean of its touch prices; its strength at bar T is
    ``sum_k w_k * 0.5 ** ((T - i_k) / half_life)`` over its touches k at pivot bars ``i_k``.
    Then support = nearest level strictly below ``close[t]``, resistance = nearest strictly above.

    Returns per-bar ``support, support_strength, resistance, resistance_strength`` (NaN where
    none) and the state after the last bar: per level id ``price, strength (at the last bar),
    touches, first_seen, last_touch`` (pivot bar positions) and ``alive_ids`` sorted by price.
    """
    n = close.shape[0]
    is_high, is_low = pivot_flags_nb(high, low, left, right)
    capacity = int(is_high.sum() + is_low.sum())

    level_price = np.empty(capacity)
    level_price_sum = np.empty(capacity)
    level_strength = np.empty(capacity)
    level_ref_bar = np.empty(capacity, dtype=np.int64)
    level_touches = np.empty(capacity, dtype=np.int64)
    level_first_seen = np.empty(capacity, dtype=np.int64)
    level_last_touch = np.empty(capacity, dtype=np.int64)
    order = np.empty(capacity, dtype=np.int64)
    n_levels = 0
    n_active = 0

    support = np.full(n, np.nan)
    support_strength = np.full(n, np.nan)
    resistance = np.full(n, np.nan)
    resistance_strength = np.full(n, np.nan)

    for t in range(n):
        i = t - right
        if i >= left:
            for side in range(2):
                if side == 0:
                    if not is_high[i]:
                        continue
                    price = high[i]
                else:
                    if not is_low[i]:
                        continue
                    price = low[i]
                tolerance = tolerance_abs[t] + tolerance_frac * price
                if not np.isfinite(tolerance):
                    continue
                weight = touch_weight[i]

                pos = _lower_bound_nb(order, n_active, level_price, price)
                below, n_active = _alive_below_nb(
                    order, n_active, pos, level_last_touch, t, max_age
                )
                above, n_active = _alive_from_nb(
                    order, n_active, below + 1, level_last_touch, t, max_age
                )
                best = -1
                best_distance = tolerance
                if below >= 0:
                    distance = price - level_price[order[below]]
                    if distance <= best_distance:
                        best = below
                        best_distance = distance
                if above < n_active:
                    distance = level_price[order[above]] - price
                    if distance <= tolerance and (best < 0 or distance < best_distance):
                        best = above

                if best >= 0:
                    lid = order[best]
                    decay = 0.5 ** ((t - level_ref_bar[lid]) / half_life)
                    level_strength[lid] = level_strength[lid] * decay + weight * 0.5 ** (
                        (t - i) / half_life
                    )
                    level_ref_bar[lid] = t
                    level_touches[lid] += 1
                    level_price_sum[lid] += price
                    level_price[lid] = level_price_sum[lid] / level_touches[lid]
                    level_last_touch[lid] = i
                    _resort_at_nb(order, n_active, best, level_price)
                else:
                    lid = n_levels
                    n_levels += 1
                    level_price[lid] = price
                    level_price_sum[lid] = price
                    level_strength[lid] = weight * 0.5 ** ((t - i) / half_life)
                    level_ref_bar[lid] = t
                    level_touches[lid] = 1
                    level_first_seen[lid] = i
                    level_last_touch[lid] = i
                    n_active = _insert_at_nb(order, n_active, below + 1, lid)

        price = close[t]
        pos = _lower_bound_nb(order, n_active, level_price, price)
        below, n_active = _alive_below_nb(order, n_active, pos, level_last_touch, t, max_age)
        if below >= 0:
            lid = order[below]
            support[t] = level_price[lid]
            support_strength[t] = level_strength[lid] * 0.5 ** (
                (t - level_ref_bar[lid]) / half_life
            )
        pos = _upper_bound_nb(order, n_active, level_price, price)
        above, n_active = _alive_from_nb(order, n_active, pos, level_last_touch, t, max_age)
        if above < n_active:
            lid = order[above]
            resistance[t] = level_price[lid]
            resistance_strength[t] = level_strength[lid] * 0.5 ** (
                (t - level_ref_bar[lid]) / half_life
            )

    last_bar = n - 1
    strength_now = np.empty(n_levels)
    for lid in range(n_levels):
        strength_now[lid] = level_strength[lid] * 0.5 ** (
            (last_bar - level_ref_bar[lid]) / half_life
        )
    alive_ids = np.empty(n_active, dtype=np.int64)
    n_alive = 0
    for k in range(n_active):
        lid = order[k]
        if last_bar - level_last_touch[lid] <= max_age:
            alive_ids[n_alive] = lid
            n_alive += 1
    return (
        support,
        support_strength,
        resistance,
        resistance_strength,
        level_price[:n_levels].copy(),
        strength_now,
        level_touches[:n_levels].copy(),
        level_first_seen[:n_levels].copy(),
        level_last_touch[:n_levels].copy(),
        alive_ids[:n_alive].copy(),
    )
