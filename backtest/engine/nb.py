"""Numba kernel of the perpetual-futures simulation: arrays in, arrays and records out.

Shapes: ``n`` bars, ``C`` columns, ``G`` accounts (groups; one per column unless grouped).
Per-bar prices are 1-D ``(n,)``; parameters are 2-D ``(columns, bars)`` C-contiguous arrays
(each column's bars contiguous, the layout a column-by-column scan wants) indexed flexibly
(``flex_nb``): an axis of length 1 means "the same for all", so broadcasts are never
materialised. One layout for every shape also means one compiled signature.

Per bar and account, in this order (see ``backtest.engine.simulate`` for the full semantics):

1. funding at the bar's open (mark open when known), moving the wallet (and isolated margin);
2. the open as the first point of the path: levels already crossed (gaps) fill at the open,
   liquidation first;
3. orders due at the open (``timing=next_open``: the previous bar's signals);
4. the intrabar path O→X1→X2→C; along each monotone segment the first level crossed triggers
   (liquidation on the mark path, stops on the traded path; ties go to liquidation, then
   stop-loss, trailing stop, take-profit); after an event the segment is scanned on from there;
5. orders at the close (``timing=close``), skipped for a column a stop or liquidation closed on
   this bar; if any were placed, the close is checked as a point of the path once more (a
   realized loss in a cross account can leave the rest of it below maintenance);
6. mark to market at the close.

Liquidation is found where the account's *surplus* ``f(P)`` (margin balance less maintenance
margin, each position's bracket taken at the mark price P itself) reaches zero. ``f`` is
continuous and concave in P for the tables :func:`~backtest.engine.margin.check_tiers` accepts,
so positive at both ends of a range means positive throughout (the quiet-bar test), and along a
monotone segment it is crossed at most once: the crossing is found by walking the segment's
bracket boundaries, solving the linear piece that holds it.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from backtest.engine.margin import bracket_nb
from backtest.engine.records import (
    DEPTH_BAND,
    MAX_DEPTH_IMPACT,
    MIN_NOTIONAL_USD,
    WIPED_EQUITY_FRACTION,
    Intrabar,
    MarginMode,
    OrderStatus,
    Reason,
    SizeType,
    Timing,
    funding_dt,
    liquidation_dt,
    order_dt,
    trade_dt,
)

# Column state fields (rows of ``state``).
QTY, ENTRY, MARGIN, FEES, FUNDING, SL, TP, TRAIL, PEAK, ENTRY_BAR, STOP_BAR = range(11)
N_FIELDS = 11
# Record kinds (index into ``counts``).
ORDERS, TRADES, LIQS, FUNDS = range(4)
NO_EVENT, EV_LIQ, EV_SL, EV_TRAIL, EV_TP = 0, 1, 2, 3, 4
RELATIVE_TOLERANCE = 1e-9  # rounding slack when checking that an order fits the available margin


@njit(cache=True, inline="always")
def flex_nb(a, i, c):
    """Bar i, column c of a ``(columns, bars)`` parameter where a length-1 axis broadcasts."""
    return a[c if a.shape[0] > 1 else 0, i if a.shape[1] > 1 else 0]


@njit(cache=True)
def grow_nb(records, need):
    """``records`` with room for at least ``need`` entries (doubling)."""
    if need <= records.shape[0]:
        return records
    bigger = np.empty(max(need, 2 * records.shape[0]), dtype=records.dtype)
    bigger[: records.shape[0]] = records
    return bigger


@njit(cache=True, inline="always")
def _sign(x):
    return 1 if x > 0 else (-1 if x < 0 else 0)


@njit(cache=True)
def _mm_terms(abs_qty, price, t_max, t_mmr, t_cum):
    k = bracket_nb(abs_qty * price, t_max)
    return t_mmr[k], t_cum[k]


@njit(cache=True)
def _surplus_terms(cols, state, collateral, price, t_max, t_mmr, t_cum):
    """(A, B) with f(P) = A + B·P: the account's margin balance less its maintenance margin, on
    the brackets holding each position's notional at ``price`` (exact on that bracket piece)."""
    a = collateral
    b = 0.0
    for c in cols:
        q = state[QTY, c]
        if q != 0.0:
            mmr, cum = _mm_terms(abs(q), price, t_max, t_mmr, t_cum)
            a += -q * state[ENTRY, c] + cum
            b += q - abs(q) * mmr
    return a, b


@njit(cache=True)
def _surplus(cols, state, collateral, price, t_max, t_mmr, t_cum):
    a, b = _surplus_terms(cols, state, collateral, price, t_max, t_mmr, t_cum)
    return a + b * price


@njit(cache=True)
def _next_boundary(cols, state, price, end, t_max):
    """The first bracket boundary (as a mark price) strictly between ``price`` and ``end``."""
    best = end
    rising = end > price
    for c in cols:
        q = abs(state[QTY, c])
        if q == 0.0:
            continue
        for k in range(t_max.shape[0] - 1):
            boundary = t_max[k] / q
            if (rising and price < boundary < best) or (not rising and best < boundary < price):
                best = boundary
    return best


@njit(cache=True)
def _surplus_root(cols, state, collateral, start, end, t_max, t_mmr, t_cum):
    """The first price from ``start`` towards ``end`` (a price, 0 or inf) where the surplus
    changes sign, found piece by piece between bracket boundaries; NaN if it does not."""
    positive = _surplus(cols, state, collateral, start, t_max, t_mmr, t_cum) > 0.0
    lo = start
    while lo != end:
        hi = _next_boundary(cols, state, lo, end, t_max)
        mid = lo * 2.0 + 1.0 if np.isinf(hi) else 0.5 * (lo + hi)
        a, b = _surplus_terms(cols, state, collateral, mid, t_max, t_mmr, t_cum)
        if np.isinf(hi):
            f_hi_positive = b > 0.0 or (b == 0.0 and a > 0.0)
        else:
            f_hi_positive = a + b * hi > 0.0
        if f_hi_positive != positive:
            root = -a / b
            return min(max(root, min(lo, hi)), max(lo, hi))
        lo = hi
    return np.nan


@njit(cache=True)
def _liquidation_event(cols, state, collateral, p0, m0, m1, t_max, t_mmr, t_cum):
    """(t, fill): the fraction of the mark segment m0→m1 at which the account's surplus first
    reaches zero, and the fill there (the liquidation price; when the segment starts beyond it —
    a gap — the worse of it and the traded price p0). t = -1 when it is not reached."""
    a, b = _surplus_terms(cols, state, collateral, m0, t_max, t_mmr, t_cum)
    if a + b * m0 <= 0.0:
        if b > 0.0:  # the surplus grows with the price: the liquidation price lies above
            level = _surplus_root(cols, state, collateral, m0, np.inf, t_max, t_mmr, t_cum)
            return 0.0, p0 if np.isnan(level) else min(level, p0)
        if b < 0.0:
            level = _surplus_root(cols, state, collateral, m0, 0.0, t_max, t_mmr, t_cum)
            return 0.0, p0 if np.isnan(level) else max(level, p0)
        return 0.0, p0
    if m1 == m0 or _surplus(cols, state, collateral, m1, t_max, t_mmr, t_cum) > 0.0:
        return -1.0, np.nan
    level = _surplus_root(cols, state, collateral, m0, m1, t_max, t_mmr, t_cum)
    return (m0 - level) / (m0 - m1), level


@njit(cache=True, inline="always")
def _cross_time(p0, p1, level, falling):
    """Fraction of the segment p0→p1 at which the price reaches ``level``; -1 if it does not."""
    if np.isnan(level):
        return -1.0
    if falling:
        if p0 <= level:
            return 0.0
        if p1 <= level:
            return (p0 - level) / (p0 - p1)
    else:
        if p0 >= level:
            return 0.0
        if p1 >= level:
            return (level - p0) / (p1 - p0)
    return -1.0


@njit(cache=True)
def _collateral(g, cols, state, wallet, margin_mode):
    return state[MARGIN, cols[0]] if margin_mode == MarginMode.isolated else wallet[g]


@njit(cache=True)
def _find_event(cols, state, collateral, p0, p1, m0, m1, t_max, t_mmr, t_cum):
    """Earliest (t, kind, col, level) on the segment; kind NO_EVENT when nothing triggers."""
    best_t, best_kind, best_col, best_level = 2.0, NO_EVENT, -1, np.nan
    has_position = False
    for c in cols:
        q = state[QTY, c]
        if q == 0.0:
            continue
        has_position = True
        falling = q > 0.0
        for kind, level in ((EV_SL, state[SL, c]), (EV_TP, state[TP, c])):
            t = _cross_time(p0, p1, level, falling if kind == EV_SL else not falling)
            if t >= 0.0 and (t < best_t or (t == best_t and kind < best_kind)):
                best_t, best_kind, best_col, best_level = t, kind, c, level
        if not np.isnan(state[TRAIL, c]):
            level = state[PEAK, c] * (1.0 - state[TRAIL, c] if falling else 1.0 + state[TRAIL, c])
            t = _cross_time(p0, p1, level, falling)
            if t >= 0.0 and (t < best_t or (t == best_t and EV_TRAIL < best_kind)):
                best_t, best_kind, best_col, best_level = t, EV_TRAIL, c, level
    if has_position:
        t, fill = _liquidation_event(cols, state, collateral, p0, m0, m1, t_max, t_mmr, t_cum)
        if t >= 0.0 and t <= best_t:
            best_t, best_kind, best_col, best_level = t, EV_LIQ, -1, fill
    return best_t, best_kind, best_col, best_level


@njit(cache=True, inline="always")
def _impact(notional, depth_i):
    """Average price impact of a market order walking one side of a linear book (see records)."""
    if np.isnan(depth_i) or depth_i <= 0.0:
        return 0.0
    return min(DEPTH_BAND * notional / depth_i, MAX_DEPTH_IMPACT)


@njit(cache=True)
def _record_order(orders, counts, c, i, side, qty, price, fee, status, reason):
    k = counts[ORDERS]
    orders[k]["col"], orders[k]["bar"], orders[k]["side"] = c, i, side
    orders[k]["qty"], orders[k]["price"], orders[k]["fee"] = qty, price, fee
    orders[k]["status"], orders[k]["reason"] = status, reason
    counts[ORDERS] = k + 1


@njit(cache=True)
def _record_trade(trades, counts, c, state, exit_bar, exit_price, pnl, shortfall, reason,
                  entry_margin):
    """Record column c's trade; ``pnl`` is the trader's, net of fees and funding, so it already
    includes the ``shortfall`` the insurance fund bore beyond the collateral."""
    k = counts[TRADES]
    q = state[QTY, c]
    trades[k]["col"], trades[k]["entry_bar"], trades[k]["exit_bar"] = c, int(state[ENTRY_BAR, c]), exit_bar
    trades[k]["side"], trades[k]["qty"] = _sign(q), abs(q)
    trades[k]["entry_price"], trades[k]["exit_price"] = state[ENTRY, c], exit_price
    trades[k]["pnl"], trades[k]["fees"], trades[k]["funding"] = pnl, state[FEES, c], state[FUNDING, c]
    trades[k]["margin"], trades[k]["shortfall"] = entry_margin, shortfall
    trades[k]["exit_reason"] = reason
    counts[TRADES] = k + 1


@njit(cache=True)
def _clear(state, c):
    for field in range(N_FIELDS):
        state[field, c] = np.nan
    state[QTY, c] = 0.0


@njit(cache=True)
def _others_open(cols, state, c):
    for other in cols:
        if other != c and state[QTY, other] != 0.0:
            return True
    return False


@njit(cache=True)
def _close(c, cols, g, i, ref, reason, market_order, state, wallet, fees, slippage, depth,
           margin_mode, entry_margin, orders, trades, counts):
    """Close column c's position at ``ref`` (± slippage and depth impact for market orders).

    The loss stops at the collateral — the position's margin when isolated, the wallet of a
    cross account with no other position open — and the excess is the insurance fund's
    shortfall. A cross account with other positions open takes the whole loss into its wallet,
    which may go negative while their unrealized profit keeps the margin balance positive.
    """
    q = state[QTY, c]
    side = _sign(q)
    fill = ref
    if market_order:
        fill = ref * (1.0 - side * flex_nb(slippage, i, c))
        fill *= 1.0 - side * _impact(abs(q) * ref, depth[i])
    fee = abs(q) * fill * flex_nb(fees, i, c)
    pnl = q * (fill - state[ENTRY, c])
    shortfall = 0.0
    if margin_mode == MarginMode.isolated or not _others_open(cols, state, c):
        balance = (state[MARGIN, c] if margin_mode == MarginMode.isolated else wallet[g]) + pnl
        fee = min(fee, max(balance, 0.0))
        shortfall = max(-balance, 0.0)
    wallet[g] += pnl - fee + shortfall
    state[FEES, c] += fee
    _record_order(orders, counts, c, i, -side, abs(q), fill, fee, OrderStatus.filled, reason)
    net = pnl + shortfall - state[FEES, c] - state[FUNDING, c]
    _record_trade(trades, counts, c, state, i, fill, net, shortfall, reason, entry_margin[c])
    _clear(state, c)


@njit(cache=True)
def _liquidate(cols, g, i, fill, state, wallet, margin_mode, liq_fee_rate, entry_margin,
               orders, trades, liqs, counts):
    """Close every position of the account at ``fill``; loss capped at the collateral."""
    pnl_total, fee_due_total, abs_total = 0.0, 0.0, 0.0
    for c in cols:
        q = state[QTY, c]
        if q != 0.0:
            pnl_total += q * (fill - state[ENTRY, c])
            fee_due_total += abs(q) * fill * liq_fee_rate
            abs_total += abs(q)
    if margin_mode == MarginMode.isolated:
        collateral = state[MARGIN, cols[0]]
        others = wallet[g] - collateral  # cash not committed to this position is safe
    else:
        collateral = wallet[g]
        others = 0.0
    balance = collateral + pnl_total
    fee_total = min(fee_due_total, max(balance, 0.0))
    shortfall_total = max(-balance, 0.0)
    released = max(balance - fee_due_total, 0.0)
    wallet[g] = others + released
    for c in cols:
        q = state[QTY, c]
        if q == 0.0:
            continue
        share = abs(q) / abs_total
        pnl = q * (fill - state[ENTRY, c])
        fee = fee_total * share
        shortfall = shortfall_total * share
        k = counts[LIQS]
        liqs[k]["col"], liqs[k]["bar"], liqs[k]["side"] = c, i, _sign(q)
        liqs[k]["qty"], liqs[k]["price"], liqs[k]["fee"] = abs(q), fill, fee
        liqs[k]["loss"], liqs[k]["shortfall"] = -pnl + fee - shortfall, shortfall
        counts[LIQS] = k + 1
        state[FEES, c] += fee
        _record_order(orders, counts, c, i, -_sign(q), abs(q), fill, fee, OrderStatus.filled,
                      Reason.liquidation)
        net = pnl + shortfall - state[FEES, c] - state[FUNDING, c]
        _record_trade(trades, counts, c, state, i, fill, net, shortfall, Reason.liquidation,
                      entry_margin[c])
        _clear(state, c)


@njit(cache=True)
def _equity(cols, g, state, wallet, price, margin_mode):
    """Account equity at ``price``; an isolated position never loses more than its margin."""
    upnl = 0.0
    for c in cols:
        q = state[QTY, c]
        if q != 0.0:
            pnl = q * (price - state[ENTRY, c])
            if margin_mode == MarginMode.isolated:
                pnl = max(pnl, -state[MARGIN, c])
            upnl += pnl
    return max(wallet[g] + upnl, 0.0)


@njit(cache=True)
def _tier_cap(lev, t_max, t_maxlev):
    """The largest notional whose bracket allows ``lev``: just below the upper bound of the last
    such bracket (brackets are [min, max), and leverage caps only fall as notional grows; the
    table ends at the last bracket's upper bound)."""
    allowed = 0
    for k in range(t_max.shape[0]):
        if t_maxlev[k] >= lev:
            allowed = k
    return np.nextafter(t_max[allowed], 0.0)


@njit(cache=True)
def _open(c, cols, g, i, s, side, ref, state, wallet, size, size_type, sl_stop, tp_stop,
          trail_stop, sl_price, tp_price, leverage, fees, slippage, depth, vol, t_max, t_mmr,
          t_cum, t_maxlev, margin_mode, entry_margin, orders, counts):
    """Open a position for column c at reference price ``ref`` (signal bar s, fill bar i)."""
    size_value = flex_nb(size, s, c)
    if not size_value > 0.0:  # also catches NaN: no order
        return
    lev = flex_nb(leverage, s, c)
    fee_rate = flex_nb(fees, i, c)
    equity = _equity(cols, g, state, wallet, ref, margin_mode)
    used = 0.0
    for other in cols:
        if other != c and state[QTY, other] != 0.0:
            used += state[MARGIN, other]
    available = equity - used
    slst, slpx = flex_nb(sl_stop, s, c), flex_nb(sl_price, s, c)
    sl_level = np.nan
    if slst > 0.0:
        sl_level = ref * (1.0 - side * slst)
    elif (side > 0 and slpx < ref) or (side < 0 and slpx > ref):
        sl_level = slpx
    tpst, tppx = flex_nb(tp_stop, s, c), flex_nb(tp_price, s, c)
    tp_level = np.nan
    if tpst > 0.0:
        tp_level = ref * (1.0 + side * tpst)
    elif (side > 0 and tppx > ref) or (side < 0 and tppx < ref):
        tp_level = tppx

    affordable = max(available, 0.0) * lev / (1.0 + lev * fee_rate)
    if size_type == SizeType.equity:
        notional = size_value * affordable
    elif size_type == SizeType.notional:
        notional = size_value
    elif size_type == SizeType.exposure:
        notional = size_value * equity
    elif size_type == SizeType.risk:
        notional = size_value * equity / (abs(ref - sl_level) / ref)  # NaN without a stop
    else:
        notional = size_value * equity / vol[s]  # NaN before the volatility window fills
    capped = size_type >= SizeType.exposure  # sizes "capped by leverage and tiers"

    reason = Reason.signal
    limit = _tier_cap(lev, t_max, t_maxlev)
    if not notional >= 0.0:
        reason = Reason.size_unavailable
        notional = 0.0
    elif notional > limit:
        if capped:
            notional = limit
        elif t_maxlev[bracket_nb(notional, t_max)] < lev:
            reason = Reason.tier_leverage
        else:
            reason = Reason.exceeds_max_notional
    if reason == Reason.signal and notional > affordable * (1.0 + RELATIVE_TOLERANCE):
        if capped:
            notional = affordable
        else:
            reason = Reason.insufficient_margin
    visible = 0.5 * depth[i] if depth[i] > 0.0 else np.inf  # NaN depth: no limit
    if reason == Reason.signal and notional > visible:
        if capped:
            notional = visible
        else:
            reason = Reason.exceeds_depth
    if reason == Reason.signal and notional < MIN_NOTIONAL_USD:
        reason = Reason.insufficient_margin if affordable < MIN_NOTIONAL_USD else Reason.below_min_notional
    fill = ref * (1.0 + side * flex_nb(slippage, i, c))
    fill *= 1.0 + side * _impact(notional, depth[i])
    qty = notional / fill
    if reason != Reason.signal:
        _record_order(orders, counts, c, i, side, qty, fill, 0.0, OrderStatus.rejected, reason)
        return
    fee = notional * fee_rate
    margin = notional / lev
    wallet[g] -= fee
    state[QTY, c] = side * qty
    state[ENTRY, c] = fill
    state[MARGIN, c] = margin
    state[FEES, c] = fee
    state[FUNDING, c] = 0.0
    state[SL, c], state[TP, c] = sl_level, tp_level
    trail = flex_nb(trail_stop, s, c)
    state[TRAIL, c] = trail if trail > 0.0 else np.nan
    state[PEAK, c] = ref
    state[ENTRY_BAR, c] = i
    entry_margin[c] = margin
    _record_order(orders, counts, c, i, side, qty, fill, fee, OrderStatus.filled, Reason.signal)


@njit(cache=True)
def _signals(c, cols, g, i, s, ref, state, wallet, entries, exits, short_entries, short_exits,
             size, size_type, sl_stop, tp_stop, trail_stop, sl_price, tp_price, leverage, fees,
             slippage, depth, vol, t_max, t_mmr, t_cum, t_maxlev, margin_mode, entry_margin,
             orders, trades, counts):
    """Act on column c's signals of bar s at reference price ``ref`` on bar i.

    An entry and an exit of the same side on one bar cancel, as do long and short entries
    together (vectorbt's "ignore"); an opposite entry reverses the position.
    """
    long_in, long_out = flex_nb(entries, s, c), flex_nb(exits, s, c)
    short_in, short_out = flex_nb(short_entries, s, c), flex_nb(short_exits, s, c)
    if long_in and long_out:
        long_in = long_out = False
    if short_in and short_out:
        short_in = short_out = False
    if long_in and short_in:
        long_in = short_in = False
    position = _sign(state[QTY, c])
    side = 0
    if position > 0:
        if short_in or long_out:
            _close(c, cols, g, i, ref, Reason.signal, True, state, wallet, fees, slippage, depth,
                   margin_mode, entry_margin, orders, trades, counts)
            side = -1 if short_in else 0
    elif position < 0:
        if long_in or short_out:
            _close(c, cols, g, i, ref, Reason.signal, True, state, wallet, fees, slippage, depth,
                   margin_mode, entry_margin, orders, trades, counts)
            side = 1 if long_in else 0
    else:
        side = 1 if long_in else (-1 if short_in else 0)
    if side != 0:
        _open(c, cols, g, i, s, side, ref, state, wallet, size, size_type, sl_stop, tp_stop,
              trail_stop, sl_price, tp_price, leverage, fees, slippage, depth, vol, t_max, t_mmr,
              t_cum, t_maxlev, margin_mode, entry_margin, orders, counts)


@njit(cache=True)
def _move_peaks(cols, state, low_i, high_i):
    """Trailing stops measure from the best price reached: the high for longs, the low for shorts."""
    for c in cols:
        q = state[QTY, c]
        if q > 0.0:
            state[PEAK, c] = max(state[PEAK, c], high_i)
        elif q < 0.0:
            state[PEAK, c] = min(state[PEAK, c], low_i)


@njit(cache=True)
def _walk_segment(cols, g, i, p0, p1, m0, m1, state, wallet, margin_mode, fees, slippage, depth,
                  liq_fee_rate, t_max, t_mmr, t_cum, entry_margin, orders, trades, liqs, counts):
    """Trigger every level crossed on the segment p0→p1 (mark m0→m1), earliest first."""
    while True:
        collateral = _collateral(g, cols, state, wallet, margin_mode)
        t, kind, c, level = _find_event(cols, state, collateral, p0, p1, m0, m1, t_max, t_mmr, t_cum)
        if kind == NO_EVENT:
            break
        if kind == EV_LIQ:
            _liquidate(cols, g, i, level, state, wallet, margin_mode, liq_fee_rate, entry_margin,
                       orders, trades, liqs, counts)
            for other in cols:
                state[STOP_BAR, other] = i
        else:
            reason = Reason.stop_loss if kind == EV_SL else (
                Reason.trailing_stop if kind == EV_TRAIL else Reason.take_profit)
            ref = p0 if t == 0.0 else level  # a gap through the level fills at the open
            _close(c, cols, g, i, ref, reason, kind != EV_TP, state, wallet, fees, slippage,
                   depth, margin_mode, entry_margin, orders, trades, counts)
            state[STOP_BAR, c] = i
        p0, m0 = p0 + t * (p1 - p0), m0 + t * (m1 - m0)
    _move_peaks(cols, state, p1, p1)  # trailing stops follow the best price reached


@njit(cache=True)
def _walk_bar(cols, g, i, o, x1, x2, cl, mo, y1, y2, mc, state, wallet, margin_mode, fees, slippage,
              depth, liq_fee_rate, t_max, t_mmr, t_cum, entry_margin, orders, trades, liqs, counts):
    """The three segments of the bar's path, O→X1→X2→C (one call keeps the hot loop lean)."""
    for p0, p1, m0, m1 in ((o, x1, mo, y1), (x1, x2, y1, y2), (x2, cl, y2, mc)):
        _walk_segment(cols, g, i, p0, p1, m0, m1, state, wallet, margin_mode, fees, slippage,
                      depth, liq_fee_rate, t_max, t_mmr, t_cum, entry_margin, orders, trades, liqs,
                      counts)


@njit(cache=True)
def _bar_is_quiet(cols, g, state, wallet, margin_mode, low_i, high_i, ml, mh, t_max, t_mmr, t_cum):
    """True when no level of the account lies within the bar's range: the path walk can be
    skipped (the common case), only the trailing peaks move."""
    for c in cols:
        q = state[QTY, c]
        if q == 0.0:
            continue
        sl, tp, trail, peak = state[SL, c], state[TP, c], state[TRAIL, c], state[PEAK, c]
        if q > 0.0:
            if low_i <= sl or high_i >= tp or (trail > 0.0 and low_i <= max(peak, high_i) * (1.0 - trail)):
                return False
        else:
            if high_i >= sl or low_i <= tp or (trail > 0.0 and high_i >= min(peak, low_i) * (1.0 + trail)):
                return False
    collateral = _collateral(g, cols, state, wallet, margin_mode)
    # the surplus is concave in the price: positive at both extremes, positive in between
    for price in (ml, mh):
        if _surplus(cols, state, collateral, price, t_max, t_mmr, t_cum) <= 0.0:
            return False
    return True


@njit(cache=True)
def _mark_open_positions(cols, g, i, price, state, wallet, margin_mode, entry_margin, trades, counts):
    """Record positions still open at the end (``Reason.end``), marked at ``price`` like the
    equity: an isolated position loses at most its margin, a cross account at most its wallet;
    what lies beyond is shown as shortfall (shared by size in a cross account)."""
    balance, abs_total = wallet[g], 0.0
    for c in cols:
        q = state[QTY, c]
        if q != 0.0:
            balance += q * (price - state[ENTRY, c])
            abs_total += abs(q)
    cross_shortfall = max(-balance, 0.0) if margin_mode == MarginMode.cross else 0.0
    for c in cols:
        q = state[QTY, c]
        if q == 0.0:
            continue
        pnl = q * (price - state[ENTRY, c])
        if margin_mode == MarginMode.isolated:
            shortfall = max(-(state[MARGIN, c] + pnl), 0.0)
        else:
            shortfall = cross_shortfall * abs(q) / abs_total
        net = pnl + shortfall - state[FEES, c] - state[FUNDING, c]
        _record_trade(trades, counts, c, state, i, price, net, shortfall, Reason.end, entry_margin[c])
        _clear(state, c)


@njit(cache=True)
def _is_wiped(cols, g, state, wallet, init_cash):
    """A flat account left with almost nothing is closed for good."""
    return wallet[g] <= WIPED_EQUITY_FRACTION * init_cash[g] and not _has_position(cols, state)


@njit(cache=True)
def _has_position(cols, state):
    for c in cols:
        if state[QTY, c] != 0.0:
            return True
    return False


@njit(cache=True)
def _low_first(intrabar, open_i, close_i, net_side):
    if intrabar == Intrabar.auto:
        return close_i >= open_i
    adverse_low = net_side >= 0  # the low hurts longs
    return adverse_low if intrabar == Intrabar.pessimistic else not adverse_low


@njit(cache=True)
def simulate_nb(open_, high, low, close, mark_open, mark_high, mark_low, mark_close, funding_rate,
                depth, vol, entries, exits, short_entries, short_exits, size, sl_stop, tp_stop,
                trail_stop, sl_price, tp_price, leverage, fees, slippage, init_cash, col_order,
                group_start, group_len, t_max, t_mmr, t_cum, t_maxlev, size_type, margin_mode,
                timing, intrabar, liq_fee_rate, per_bar):
    """Simulate every account; see the module docstring for the order of steps per bar.

    Returns (equity (n, G), wallet (n, G), position (n, C), margin (n, C), effective_leverage
    (n, G), margin_ratio (n, G), orders, trades, liquidations, funding). Per-bar arrays other
    than equity are (0, ·)-shaped when ``per_bar`` is False.
    """
    n = open_.shape[0]
    n_cols = col_order.shape[0]
    n_groups = group_start.shape[0]
    kept = n if per_bar else 0
    # (bars × accounts) arrays in column-major layout: each account's bars are contiguous
    equity_out = np.empty((n_groups, n)).T
    wallet_out = np.empty((n_groups, kept)).T
    position_out = np.zeros((n_cols, kept)).T
    margin_out = np.zeros((n_cols, kept)).T
    leverage_out = np.zeros((n_groups, kept)).T
    ratio_out = np.zeros((n_groups, kept)).T
    orders = np.empty(max(16, n_cols * 8), dtype=order_dt)
    trades = np.empty(max(16, n_cols * 4), dtype=trade_dt)
    liqs = np.empty(max(16, n_cols), dtype=liquidation_dt)
    funds = np.empty(max(16, n_cols * 8), dtype=funding_dt)
    counts = np.zeros(4, dtype=np.int64)
    state = np.full((N_FIELDS, n_cols), np.nan)
    state[QTY, :] = 0.0
    wallet = init_cash.astype(np.float64).copy()
    entry_margin = np.zeros(n_cols)
    has_funding = funding_rate.shape[0] == n

    for g in range(n_groups):
        cols = col_order[group_start[g]: group_start[g] + group_len[g]]
        m = cols.shape[0]
        wiped = False
        for i in range(n):
            if counts[ORDERS] + 3 * m > orders.shape[0]:
                orders = grow_nb(orders, counts[ORDERS] + 3 * m)
            if counts[TRADES] + 2 * m > trades.shape[0]:
                trades = grow_nb(trades, counts[TRADES] + 2 * m)
            if counts[LIQS] + m > liqs.shape[0]:
                liqs = grow_nb(liqs, counts[LIQS] + m)
            if counts[FUNDS] + m > funds.shape[0]:
                funds = grow_nb(funds, counts[FUNDS] + m)
            mo = mark_open[i] if not np.isnan(mark_open[i]) else open_[i]
            in_position = _has_position(cols, state)

            # 1. funding at the open
            rate = funding_rate[i] if has_funding else np.nan
            if in_position and not np.isnan(rate) and rate != 0.0:
                for c in cols:
                    q = state[QTY, c]
                    if q != 0.0:
                        payment = q * mo * rate
                        wallet[g] -= payment
                        if margin_mode == MarginMode.isolated:
                            state[MARGIN, c] -= payment
                        state[FUNDING, c] += payment
                        k = counts[FUNDS]
                        funds[k]["col"], funds[k]["bar"], funds[k]["qty"] = c, i, q
                        funds[k]["price"], funds[k]["rate"], funds[k]["payment"] = mo, rate, payment
                        counts[FUNDS] = k + 1

            # 2. the open: gaps through levels, then 3. orders due at the open
            if in_position:
                _walk_segment(cols, g, i, open_[i], open_[i], mo, mo, state, wallet, margin_mode,
                              fees, slippage, depth, liq_fee_rate, t_max, t_mmr, t_cum,
                              entry_margin, orders, trades, liqs, counts)
            if not wiped and wallet[g] <= WIPED_EQUITY_FRACTION * init_cash[g]:
                wiped = _is_wiped(cols, g, state, wallet, init_cash)
            if timing == Timing.next_open and i > 0 and not wiped:
                for c in cols:
                    if not (flex_nb(entries, i - 1, c) or flex_nb(exits, i - 1, c)
                            or flex_nb(short_entries, i - 1, c) or flex_nb(short_exits, i - 1, c)):
                        continue
                    in_position = True  # may open one: recheck below
                    _signals(c, cols, g, i, i - 1, open_[i], state, wallet, entries, exits,
                             short_entries, short_exits, size, size_type, sl_stop, tp_stop,
                             trail_stop, sl_price, tp_price, leverage, fees, slippage, depth, vol,
                             t_max, t_mmr, t_cum, t_maxlev, margin_mode, entry_margin, orders,
                             trades, counts)

            # 4. the intrabar path (skipped when no level lies within the bar's range)
            if in_position:
                in_position = _has_position(cols, state)
            net = 0.0
            for c in cols:
                net += state[QTY, c]
            low_first = _low_first(intrabar, open_[i], close[i], _sign(net))
            has_mark = not (np.isnan(mark_low[i]) or np.isnan(mark_high[i]) or np.isnan(mark_close[i]))
            ml, mh = (mark_low[i], mark_high[i]) if has_mark else (low[i], high[i])
            mc = mark_close[i] if has_mark else close[i]
            x1, x2 = (low[i], high[i]) if low_first else (high[i], low[i])
            y1, y2 = (ml, mh) if low_first else (mh, ml)
            if in_position and _bar_is_quiet(cols, g, state, wallet, margin_mode, low[i], high[i],
                                             ml, mh, t_max, t_mmr, t_cum):
                _move_peaks(cols, state, low[i], high[i])
            elif in_position:
                _walk_bar(cols, g, i, open_[i], x1, x2, close[i], mo, y1, y2, mc, state, wallet,
                          margin_mode, fees, slippage, depth, liq_fee_rate, t_max, t_mmr, t_cum,
                          entry_margin, orders, trades, liqs, counts)

            # 5. orders at the close
            if not wiped and wallet[g] <= WIPED_EQUITY_FRACTION * init_cash[g]:
                wiped = _is_wiped(cols, g, state, wallet, init_cash)
            if timing == Timing.close and not wiped:
                acted = False
                for c in cols:
                    if state[STOP_BAR, c] != i and (
                            flex_nb(entries, i, c) or flex_nb(exits, i, c)
                            or flex_nb(short_entries, i, c) or flex_nb(short_exits, i, c)):
                        acted = True
                        _signals(c, cols, g, i, i, close[i], state, wallet, entries, exits,
                                 short_entries, short_exits, size, size_type, sl_stop, tp_stop,
                                 trail_stop, sl_price, tp_price, leverage, fees, slippage, depth,
                                 vol, t_max, t_mmr, t_cum, t_maxlev, margin_mode, entry_margin,
                                 orders, trades, counts)
                if acted and _has_position(cols, state):  # the close as a point of the path
                    _walk_segment(cols, g, i, close[i], close[i], mc, mc, state, wallet,
                                  margin_mode, fees, slippage, depth, liq_fee_rate, t_max, t_mmr,
                                  t_cum, entry_margin, orders, trades, liqs, counts)

            # 6. mark to market
            in_position = _has_position(cols, state) if timing == Timing.close else in_position
            equity = _equity(cols, g, state, wallet, close[i], margin_mode) if in_position \
                else max(wallet[g], 0.0)
            equity_out[i, g] = equity
            if per_bar:
                wallet_out[i, g] = wallet[g]
                exposure, maintenance, balance = 0.0, 0.0, 0.0
                for c in cols:
                    q = state[QTY, c]
                    position_out[i, c] = q
                    margin_out[i, c] = state[MARGIN, c] if q != 0.0 else 0.0
                    if q != 0.0:
                        exposure += abs(q) * close[i]
                        mmr, cum = _mm_terms(abs(q), mc, t_max, t_mmr, t_cum)
                        maintenance += abs(q) * mc * mmr - cum
                        balance += q * (mc - state[ENTRY, c])
                balance += _collateral(g, cols, state, wallet, margin_mode) if exposure > 0 else 0.0
                leverage_out[i, g] = exposure / equity if equity > 0.0 else (np.inf if exposure > 0 else 0.0)
                ratio_out[i, g] = (maintenance / balance if balance > 0.0 else np.inf) if exposure > 0 else 0.0

        trades = grow_nb(trades, counts[TRADES] + m)
        _mark_open_positions(cols, g, n - 1, close[n - 1], state, wallet, margin_mode,
                             entry_margin, trades, counts)

    return (equity_out, wallet_out, position_out, margin_out, leverage_out, ratio_out,
            orders[: counts[ORDERS]], trades[: counts[TRADES]], liqs[: counts[LIQS]],
            funds[: counts[FUNDS]])
