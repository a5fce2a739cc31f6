"""Numba kernel of the perpetual-futures simulation: arrays in, arrays and records out.

Shapes: ``K`` instruments, ``n`` bars, ``C`` columns, ``G`` accounts. Per-instrument series are
``(K, n)``; per-column parameters ``(C or 1, n or 1)``, a length-1 axis meaning "the same for
all" (``flex_nb``), so broadcasts are never materialised; every array is C-contiguous and
read-only (one numba signature whatever the shapes). See ``records.py`` for the grouped inputs.

**Accounts, legs and slots.** An account is a group of columns sharing one wallet. Each column
is a *leg*: it trades one instrument with its own entry, stops and trade records. The legs of
one instrument in one account net into a *slot* — one position in one-way mode — whose net
quantity sets the maintenance bracket, the liquidation price and the exposure. Cross accounts
back every slot with the wallet; isolated slots each have their own margin (the sum of their
legs'), drawn from and returned to the same wallet.

**Per bar and account**, in this order (``backtest.engine.simulate`` states the semantics):

1. funding at the bar's open (mark open when known), per leg;
2. the open as the first point of the path: levels already crossed (gaps) trigger there,
   liquidation first;
3. orders due at the open (``timing=next_open``: the previous bar's signals);
4. the joint intrabar path: every instrument walks its own O→X1→X2→C (its own low-/high-first
   rule), all in step: segment k of each spans the same third of the bar. Along a segment the
   earliest event triggers (liquidation on the mark path, stops on each leg's traded path;
   ties: liquidation, stop-loss, trailing stop, take-profit, then column order); the segment is
   then scanned on from that moment;
4b. auto-deleveraging at the close, on instruments with an ADL price at the bar (a scenario
   input; ``_auto_deleverage``): profitable positions ranked high enough close at that price;
5. orders at the close (``timing=close``), not for a leg a stop or liquidation closed on this
   bar; if any were placed, the close is checked once more as a point of the path;
6. mark to market at the close, per-bar outputs and the statistics accumulators.

**Liquidation** comes where the *surplus* — margin balance less maintenance margin, each slot's
bracket taken at its mark price itself — reaches zero. For one slot it is a price, found
bracket by bracket and cached until the slot, its collateral or the wallet change: a quiet bar
costs a few comparisons. The surplus is continuous and concave in each price (tables pass
:func:`~backtest.engine.margin.check_tiers`), so a cross account of several slots is safe on a
bar when it is at the adverse corner of every slot's mark range, and along a segment it is
crossed once: found by walking the moments where some slot changes bracket.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from backtest.engine.records import (
    DEPTH_BAND,
    MAX_DEPTH_IMPACT,
    MIN_NOTIONAL_USD,
    N_ACCOUNT_STATS,
    N_COLUMN_STATS,
    WIPED_EQUITY_FRACTION,
    AccountStat,
    ColumnStat,
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

# Leg state fields (rows of ``legs``).
QTY, ENTRY, MARGIN, FEES, FUNDING, SL, TP, TRAIL, PEAK, ENTRY_BAR, STOP_BAR, ENTRY_MARGIN = range(12)
N_LEG_FIELDS = 12
# Slot fields (rows of ``slots``): net quantity, Σ qty·entry, isolated collateral (Σ legs'
# margins), cached LP, legs open. Σ qty·entry stays while legs are open even if they net to 0.
S_Q, S_QE, S_MARGIN, S_LP, S_LEGS = range(5)
N_SLOT_FIELDS = 5
# Record kinds (index into ``counts``).
ORDERS, TRADES, LIQS, FUNDS = range(4)
NO_EVENT, EV_LIQ, EV_SL, EV_TRAIL, EV_TP = 0, 1, 2, 3, 4
RELATIVE_TOLERANCE = 1e-9  # rounding slack when checking that an order fits the available margin
# The most one bar can record per leg: a stop or liquidation at the open, a close and an open on
# a signal, a stop or liquidation on the path, a liquidation at the close.
ORDERS_PER_LEG_BAR, TRADES_PER_LEG_BAR, LIQS_PER_LEG_BAR = 6, 4, 3
# What per-bar series to keep: none (statistics only), equity, or everything. Fresh memory is
# slow to touch (page faults), so a sweep keeps as little as it is asked for.
PER_BAR_NONE, PER_BAR_EQUITY, PER_BAR_ALL = 0, 1, 2
# Bars run in blocks: record buffers grow between blocks, never inside the bar loop.
BLOCK_BARS, BLOCK_LEG_BARS = 4096, 32768
ACS, CLS = AccountStat, ColumnStat


@njit(cache=True)
def flex_nb(a, i, c):
    """Bar i, column c of a ``(columns, bars)`` parameter where a length-1 axis broadcasts."""
    return a[c if a.shape[0] > 1 else 0, i if a.shape[1] > 1 else 0]


@njit(cache=True)
def at_nb(a, k, i):
    """Instrument k's value at bar i of an optional per-instrument series: a series no
    instrument has is a (K, 1) placeholder of NaN, never indexed by bar."""
    return a[k, i if a.shape[1] > 1 else 0]


@njit(cache=True)
def grow_nb(records, need):
    """``records`` with room for at least ``need`` entries (doubling)."""
    if need <= records.shape[0]:
        return records
    bigger = np.empty(max(need, 2 * records.shape[0]), dtype=records.dtype)
    bigger[: records.shape[0]] = records
    return bigger


@njit(cache=True)
def _sign(x):
    return 1 if x > 0 else (-1 if x < 0 else 0)


# ----- brackets and the surplus -------------------------------------------------------------------


@njit(cache=True)
def _bracket(tiers, k, notional):
    """Global index of instrument k's bracket holding ``notional`` ([min, max); the last for
    anything beyond)."""
    start, count = tiers.start[k], tiers.count[k]
    for j in range(start, start + count - 1):
        if notional < tiers.max_notional[j]:
            return j
    return start + count - 1


@njit(cache=True)
def _slot_value(slots, s, k, price, tiers):
    """g(P) = q·P − Σ q·entry − maintenance(|q|·P): the slot's unrealized PnL less its
    maintenance margin at mark price P."""
    q = slots[S_Q, s]
    if q == 0.0:
        return -slots[S_QE, s]  # legs netting to zero: their locked-in PnL, no maintenance
    notional = abs(q) * price
    j = _bracket(tiers, k, notional)
    return q * price - slots[S_QE, s] - (notional * tiers.mmr[j] - tiers.cum[j])


@njit(cache=True)
def _slot_lp(slots, s, k, collateral, tiers):
    """The mark price where collateral + g(P) = 0, in the bracket that holds the notional there
    (Binance's LP = (WB + cum − s·Q·EP) / (Q·mmr − s·Q) with the consistent bracket)."""
    q = slots[S_Q, s]
    if q == 0.0:
        return np.nan
    best, best_miss = np.nan, np.inf
    start, count = tiers.start[k], tiers.count[k]
    for j in range(start, start + count):
        slope = q - abs(q) * tiers.mmr[j]
        if slope == 0.0:
            continue
        price = max(-(collateral - slots[S_QE, s] + tiers.cum[j]) / slope, 0.0)
        notional = abs(q) * price
        low = tiers.max_notional[j - 1] if j > start else 0.0
        high = tiers.max_notional[j] if j < start + count - 1 else np.inf
        if low <= notional < high:
            return price
        miss = max(low - notional, notional - high)
        if miss < best_miss:  # rounding at a boundary: the nearest candidate
            best, best_miss = price, miss
    return best


@njit(cache=True)
def _lp_cached(slots, s, k, collateral, tiers):
    if np.isnan(slots[S_LP, s]):
        slots[S_LP, s] = _slot_lp(slots, s, k, collateral, tiers)
    return slots[S_LP, s]


@njit(cache=True)
def _invalidate(slots, s, cross):
    """A slot's cached LP is stale after a fill or funding; a cross wallet change stales all."""
    if cross:
        slots[S_LP, :] = np.nan
    else:
        slots[S_LP, s] = np.nan


@njit(cache=True)
def _cross_surplus(wallet, slots, slot_inst, n_slots, t, m0, m1, tiers):
    """The cross account's surplus at fraction t of the joint mark segment m0→m1."""
    total = wallet
    for s in range(n_slots):
        if slots[S_LEGS, s] > 0.0:
            total += _slot_value(slots, s, slot_inst[s], m0[s] + t * (m1[s] - m0[s]), tiers)
    return total


@njit(cache=True)
def _cross_crossing(wallet, slots, slot_inst, n_slots, m0, m1, tiers):
    """First t in [0, 1] where the cross surplus reaches zero along the joint segment (-1 if
    never): piece by piece between the moments some slot changes bracket."""
    f_lo = _cross_surplus(wallet, slots, slot_inst, n_slots, 0.0, m0, m1, tiers)
    if f_lo <= 0.0:
        return 0.0
    if _cross_surplus(wallet, slots, slot_inst, n_slots, 1.0, m0, m1, tiers) > 0.0:
        return -1.0  # concave: positive at both ends, positive between
    t_lo = 0.0
    while t_lo < 1.0:
        t_hi = 1.0
        for s in range(n_slots):
            q = abs(slots[S_Q, s])
            if q == 0.0 or m1[s] == m0[s]:
                continue
            k = slot_inst[s]
            for j in range(tiers.start[k], tiers.start[k] + tiers.count[k] - 1):
                t = (tiers.max_notional[j] / q - m0[s]) / (m1[s] - m0[s])
                if t_lo < t < t_hi:
                    t_hi = t
        f_hi = _cross_surplus(wallet, slots, slot_inst, n_slots, t_hi, m0, m1, tiers)
        if f_hi <= 0.0:
            return t_lo + (t_hi - t_lo) * f_lo / (f_lo - f_hi)
        t_lo, f_lo = t_hi, f_hi
    return -1.0


@njit(cache=True)
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
def _impact(notional, depth_i):
    """Average price impact of a market order walking one side of a linear book (see records)."""
    if np.isnan(depth_i) or depth_i <= 0.0:
        return 0.0
    return min(DEPTH_BAND * notional / depth_i, MAX_DEPTH_IMPACT)


# ----- records and statistics ----------------------------------------------------------------------


@njit(cache=True)
def _record_order(rec, counts, keep, c, i, side, qty, price, fee, status, reason):
    if keep:
        orders = rec[0]
        k = counts[ORDERS]
        orders[k]["col"], orders[k]["bar"], orders[k]["side"] = c, i, side
        orders[k]["qty"], orders[k]["price"], orders[k]["fee"] = qty, price, fee
        orders[k]["status"], orders[k]["reason"] = status, reason
        counts[ORDERS] = k + 1


@njit(cache=True)
def _record_trade(rec, counts, keep, acc, colacc, c, legs, j, exit_bar, exit_price, pnl,
                  shortfall, reason):
    """Record leg j's trade; ``pnl`` is the trader's, net of fees and funding, so it already
    includes the ``shortfall`` the insurance fund bore beyond the collateral."""
    q = legs[QTY, j]
    if keep:
        trades = rec[1]
        k = counts[TRADES]
        trades[k]["col"], trades[k]["entry_bar"], trades[k]["exit_bar"] = c, int(legs[ENTRY_BAR, j]), exit_bar
        trades[k]["side"], trades[k]["qty"] = _sign(q), abs(q)
        trades[k]["entry_price"], trades[k]["exit_price"] = legs[ENTRY, j], exit_price
        trades[k]["pnl"], trades[k]["fees"], trades[k]["funding"] = pnl, legs[FEES, j], legs[FUNDING, j]
        trades[k]["margin"], trades[k]["shortfall"] = legs[ENTRY_MARGIN, j], shortfall
        trades[k]["exit_reason"] = reason
        counts[TRADES] = k + 1
    acc[ACS.shortfall] += shortfall
    colacc[c, CLS.pnl] += pnl
    if reason != Reason.end:
        acc[ACS.trades] += 1.0
        acc[ACS.pnl] += pnl
        colacc[c, CLS.trades] += 1.0
        if pnl > 0.0:
            acc[ACS.wins] += 1.0
            acc[ACS.gross_profit] += pnl
        elif pnl < 0.0:
            acc[ACS.gross_loss] -= pnl


@njit(cache=True)
def _clear(legs, j):
    for field in range(N_LEG_FIELDS):
        if field != STOP_BAR:
            legs[field, j] = np.nan
    legs[QTY, j] = 0.0


# ----- fills ---------------------------------------------------------------------------------------


@njit(cache=True)
def _remove_from_slot(slots, s, legs, j, cross):
    slots[S_Q, s] -= legs[QTY, j]
    slots[S_QE, s] -= legs[QTY, j] * legs[ENTRY, j]
    slots[S_MARGIN, s] -= legs[MARGIN, j]
    slots[S_LEGS, s] -= 1.0
    if slots[S_LEGS, s] == 0.0:  # nothing left: no rounding residue either
        slots[S_Q, s], slots[S_QE, s], slots[S_MARGIN, s] = 0.0, 0.0, 0.0
    elif abs(slots[S_Q, s]) < 1e-12 * abs(legs[QTY, j]):  # legs that net to zero
        slots[S_Q, s] = 0.0
    _invalidate(slots, s, cross)


@njit(cache=True)
def _close(ctx, j, i, ref, reason, market_order, charge_fee):
    """Close leg j at ``ref`` (± slippage and depth impact for market orders; the taker fee
    unless ``charge_fee`` is False: auto-deleveraging).

    The loss stops at the collateral — the leg's margin when isolated, the wallet of a cross
    account with nothing else open — and the excess is the insurance fund's shortfall. A cross
    account with other positions open takes the whole loss into its wallet, which may go
    negative while their unrealized profit keeps the margin balance positive.
    """
    (cols, legs, leg_slot, slots, slot_inst, wallet, acc, colacc, counts, rec, keep, fees, slippage,
     depth, cross, liq_rate) = ctx
    c = cols[j]
    s = leg_slot[j]
    k = slot_inst[s]
    q = legs[QTY, j]
    side = _sign(q)
    fill = ref
    if market_order:
        fill = ref * (1.0 - side * flex_nb(slippage, i, c))
        fill *= 1.0 - side * _impact(abs(q) * ref, at_nb(depth, k, i))
    fee = abs(q) * fill * flex_nb(fees, i, c) if charge_fee else 0.0
    pnl = q * (fill - legs[ENTRY, j])
    shortfall = 0.0
    if not cross or counts[4] == 1:  # counts[4]: legs open in the account
        balance = (wallet[0] if cross else legs[MARGIN, j]) + pnl
        fee = min(fee, max(balance, 0.0))
        shortfall = max(-balance, 0.0)
    wallet[0] += pnl - fee + shortfall
    legs[FEES, j] += fee
    acc[ACS.fees] += fee
    colacc[c, CLS.fees] += fee
    _record_order(rec, counts, keep, c, i, -side, abs(q), fill, fee, OrderStatus.filled, reason)
    net = pnl + shortfall - legs[FEES, j] - legs[FUNDING, j]
    _record_trade(rec, counts, keep, acc, colacc, c, legs, j, i, fill, net, shortfall, reason)
    _remove_from_slot(slots, s, legs, j, cross)
    counts[4] -= 1
    _clear(legs, j)


@njit(cache=True)
def _liquidate(ctx, i, slot, fills):
    """Close every leg of ``slot`` (isolated) or of the account (cross, ``slot`` = -1) at the
    fill price of its slot; the loss stops at the collateral, the clearance fee is paid out of
    what is left, the rest is the insurance fund's shortfall (shared by notional)."""
    (cols, legs, leg_slot, slots, slot_inst, wallet, acc, colacc, counts, rec, keep, fees, slippage,
     depth, cross, liq_rate) = ctx
    m = cols.shape[0]
    pnl_total, fee_due_total, notional_total = 0.0, 0.0, 0.0
    for j in range(m):
        q = legs[QTY, j]
        if q != 0.0 and (slot < 0 or leg_slot[j] == slot):
            fill = fills[leg_slot[j]]
            pnl_total += q * (fill - legs[ENTRY, j])
            fee_due_total += abs(q) * fill * liq_rate
            notional_total += abs(q) * fill
    if cross:
        collateral, others = wallet[0], 0.0
    else:
        collateral = slots[S_MARGIN, slot]
        others = wallet[0] - collateral  # cash not committed to this slot is safe
    balance = collateral + pnl_total
    fee_total = min(fee_due_total, max(balance, 0.0))
    shortfall_total = max(-balance, 0.0)
    wallet[0] = others + max(balance - fee_due_total, 0.0)
    acc[ACS.liquidations] += 1.0
    acc[ACS.fees] += fee_total
    for j in range(m):
        q = legs[QTY, j]
        if q == 0.0 or not (slot < 0 or leg_slot[j] == slot):
            continue
        c = cols[j]
        fill = fills[leg_slot[j]]
        share = abs(q) * fill / notional_total if notional_total > 0.0 else 1.0
        pnl = q * (fill - legs[ENTRY, j])
        fee = fee_total * share
        shortfall = shortfall_total * share
        if keep:
            liqs = rec[2]
            k = counts[LIQS]
            liqs[k]["col"], liqs[k]["bar"], liqs[k]["side"] = c, i, _sign(q)
            liqs[k]["qty"], liqs[k]["price"], liqs[k]["fee"] = abs(q), fill, fee
            liqs[k]["loss"], liqs[k]["shortfall"] = -pnl + fee - shortfall, shortfall
            counts[LIQS] = k + 1
        legs[FEES, j] += fee
        colacc[c, CLS.fees] += fee
        colacc[c, CLS.liquidations] += 1.0
        _record_order(rec, counts, keep, c, i, -_sign(q), abs(q), fill, fee, OrderStatus.filled,
                      Reason.liquidation)
        net = pnl + shortfall - legs[FEES, j] - legs[FUNDING, j]
        _record_trade(rec, counts, keep, acc, colacc, c, legs, j, i, fill, net, shortfall,
                      Reason.liquidation)
        legs[STOP_BAR, j] = i
        counts[4] -= 1
        _clear(legs, j)
    n_slots = slots.shape[1]
    for s in range(n_slots):
        if slot < 0 or s == slot:
            slots[S_Q, s], slots[S_QE, s], slots[S_MARGIN, s], slots[S_LEGS, s] = 0.0, 0.0, 0.0, 0.0
    slots[S_LP, :] = np.nan
    if cross:
        for j in range(m):
            legs[STOP_BAR, j] = i


@njit(cache=True)
def _equity(ctx, prices):
    """Account equity at ``prices`` (one per slot); an isolated slot never loses more than its
    margin. Floored at zero."""
    (cols, legs, leg_slot, slots, slot_inst, wallet, acc, colacc, counts, rec, keep, fees, slippage,
     depth, cross, liq_rate) = ctx
    total = wallet[0]
    for s in range(slots.shape[1]):
        if slots[S_LEGS, s] > 0.0:
            upnl = slots[S_Q, s] * prices[s] - slots[S_QE, s]
            if not cross:
                upnl = max(upnl, -slots[S_MARGIN, s])
            total += upnl
    return max(total, 0.0)


@njit(cache=True)
def _tier_cap(tiers, k, lev):
    """The largest notional whose bracket allows ``lev``: just below the upper bound of the last
    such bracket (brackets are [min, max), and leverage caps only fall as notional grows; the
    table ends at the last bracket's upper bound)."""
    allowed = tiers.start[k]
    for j in range(tiers.start[k], tiers.start[k] + tiers.count[k]):
        if tiers.max_leverage[j] >= lev:
            allowed = j
    return np.nextafter(tiers.max_notional[allowed], 0.0)


@njit(cache=True)
def _open(ctx, od, vol, j, i, s_bar, side, ref, prices, tiers, size_type):
    """Open a position for leg j at reference price ``ref`` (signal bar s_bar, fill bar i);
    ``prices`` are every slot's reference prices at this moment (for the equity)."""
    (cols, legs, leg_slot, slots, slot_inst, wallet, acc, colacc, counts, rec, keep, fees, slippage,
     depth, cross, liq_rate) = ctx
    c = cols[j]
    s = leg_slot[j]
    k = slot_inst[s]
    size_value = flex_nb(od.size, s_bar, c)
    if not size_value > 0.0:  # also catches NaN: no order
        return
    lev = flex_nb(od.leverage, s_bar, c)
    fee_rate = flex_nb(od.fees, i, c)
    equity = _equity(ctx, prices)
    used = 0.0
    for other in range(cols.shape[0]):
        if other != j and legs[QTY, other] != 0.0:
            used += legs[MARGIN, other]
    # cross: the margin balance backs new orders; isolated: only the wallet not committed to
    # positions (an isolated position's unrealized profit is not available balance)
    available = equity - used if cross else wallet[0] - used
    slst, slpx = flex_nb(od.sl_stop, s_bar, c), flex_nb(od.sl_price, s_bar, c)
    sl_level = np.nan
    if slst > 0.0:
        sl_level = ref * (1.0 - side * slst)
    elif (side > 0 and slpx < ref) or (side < 0 and slpx > ref):
        sl_level = slpx
    tpst, tppx = flex_nb(od.tp_stop, s_bar, c), flex_nb(od.tp_price, s_bar, c)
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
        notional = size_value * equity / at_nb(vol, k, s_bar)  # NaN before the window fills
    capped = size_type >= SizeType.exposure  # sizes "capped by leverage and tiers"

    reason = Reason.signal
    limit = _tier_cap(tiers, k, lev)
    if not notional >= 0.0:
        reason = Reason.size_unavailable
        notional = 0.0
    elif notional > limit:
        if capped:
            notional = limit
        elif tiers.max_leverage[_bracket(tiers, k, notional)] < lev:
            reason = Reason.tier_leverage
        else:
            reason = Reason.exceeds_max_notional
    if reason == Reason.signal and notional > affordable * (1.0 + RELATIVE_TOLERANCE):
        if capped:
            notional = affordable
        else:
            reason = Reason.insufficient_margin
    depth_i = at_nb(depth, k, i)
    visible = 0.5 * depth_i if depth_i > 0.0 else np.inf  # NaN depth: no limit
    if reason == Reason.signal and notional > visible:
        if capped:
            notional = visible
        else:
            reason = Reason.exceeds_depth
    if reason == Reason.signal and notional < MIN_NOTIONAL_USD:
        reason = Reason.insufficient_margin if affordable < MIN_NOTIONAL_USD else Reason.below_min_notional
    fill = ref * (1.0 + side * flex_nb(od.slippage, i, c))
    fill *= 1.0 + side * _impact(notional, depth_i)
    qty = notional / fill
    if reason != Reason.signal:
        acc[ACS.rejected] += 1.0
        _record_order(rec, counts, keep, c, i, side, qty, fill, 0.0, OrderStatus.rejected, reason)
        return
    fee = notional * fee_rate
    margin = notional / lev
    wallet[0] -= fee
    acc[ACS.fees] += fee
    colacc[c, CLS.fees] += fee
    legs[QTY, j] = side * qty
    legs[ENTRY, j] = fill
    legs[MARGIN, j] = margin
    legs[FEES, j] = fee
    legs[FUNDING, j] = 0.0
    legs[SL, j], legs[TP, j] = sl_level, tp_level
    trail = flex_nb(od.trail_stop, s_bar, c)
    legs[TRAIL, j] = trail if trail > 0.0 else np.nan
    legs[PEAK, j] = ref
    legs[ENTRY_BAR, j] = i
    legs[ENTRY_MARGIN, j] = margin
    slots[S_Q, s] += side * qty
    slots[S_QE, s] += side * qty * fill
    slots[S_MARGIN, s] += margin
    slots[S_LEGS, s] += 1.0
    _invalidate(slots, s, cross)
    counts[4] += 1
    _record_order(rec, counts, keep, c, i, side, qty, fill, fee, OrderStatus.filled, Reason.signal)


@njit(cache=True)
def _signal_action(position, long_in, long_out, short_in, short_out):
    """What a leg's signals do to its position (sign ``position``): (close it, side to open:
    +1, -1 or 0). An entry and an exit of the same side on one bar cancel, as do long and short
    entries together (vectorbt's "ignore"); an opposite entry reverses the position. Decided on
    scalars in the bar loop, so a signal that changes nothing costs no call."""
    if long_in and long_out:
        long_in = long_out = False
    if short_in and short_out:
        short_in = short_out = False
    if long_in and short_in:
        long_in = short_in = False
    if position > 0:
        if short_in or long_out:
            return True, -1 if short_in else 0
        return False, 0
    if position < 0:
        if long_in or short_out:
            return True, 1 if long_in else 0
        return False, 0
    return False, 1 if long_in else (-1 if short_in else 0)


@njit(cache=True)
def _act(ctx, od, vol, j, i, s_bar, ref, prices, tiers, size_type, close, side):
    """Carry out ``_signal_action``'s decision for leg j at reference price ``ref`` on bar i."""
    if close:
        _close(ctx, j, i, ref, Reason.signal, True, True)
    if side != 0:
        _open(ctx, od, vol, j, i, s_bar, side, ref, prices, tiers, size_type)


# ----- the path ----------------------------------------------------------------------------------


@njit(cache=True)
def _liquidation_event(ctx, tiers, p0, m0, m1, fills):
    """(t, slot) of the earliest liquidation on the joint segment; ``fills`` receives each slot's
    fill. slot = -1 for the whole cross account; t = -1 when none."""
    (cols, legs, leg_slot, slots, slot_inst, wallet, acc, colacc, counts, rec, keep, fees, slippage,
     depth, cross, liq_rate) = ctx
    n_slots = slots.shape[1]
    held = 0
    last = -1
    for s in range(n_slots):
        if slots[S_LEGS, s] > 0.0:
            held += 1
            last = s
    if held == 0:
        return -1.0, -1
    if cross and held > 1:
        t = _cross_crossing(wallet[0], slots, slot_inst, n_slots, m0, m1, tiers)
        if t < 0.0:
            return -1.0, -1
        for s in range(n_slots):
            fills[s] = p0[s] if t == 0.0 else m0[s] + t * (m1[s] - m0[s])
        return t, -1
    best_t, best_slot = -1.0, -1
    for s in range(n_slots):
        q = slots[S_Q, s]
        if q == 0.0 or (cross and s != last):
            continue
        collateral = wallet[0] if cross else slots[S_MARGIN, s]
        level = _lp_cached(slots, s, slot_inst[s], collateral, tiers)
        t = _cross_time(m0[s], m1[s], level, q > 0.0)
        if t >= 0.0 and (best_t < 0.0 or t < best_t):
            best_t, best_slot = t, s
            if t == 0.0:  # already beyond it: the worse of it and the traded price
                fills[s] = min(level, p0[s]) if q > 0.0 else max(level, p0[s])
            else:
                fills[s] = level
    return best_t, (-1 if cross else best_slot)


@njit(cache=True)
def _move_peaks(legs, leg_slot, lows, highs):
    """Trailing stops measure from the best price reached: the high for longs, the low for shorts."""
    for j in range(legs.shape[1]):
        q = legs[QTY, j]
        if q > 0.0:
            legs[PEAK, j] = max(legs[PEAK, j], highs[leg_slot[j]])
        elif q < 0.0:
            legs[PEAK, j] = min(legs[PEAK, j], lows[leg_slot[j]])


@njit(cache=True)
def _walk_segment(ctx, i, tiers, p0, p1, m0, m1, fills):
    """Trigger every level crossed on the joint segment p0→p1 (marks m0→m1, one per slot),
    earliest first; p0 and m0 are moved along as events happen."""
    (cols, legs, leg_slot, slots, slot_inst, wallet, acc, colacc, counts, rec, keep, fees, slippage,
     depth, cross, liq_rate) = ctx
    n_slots = slots.shape[1]
    while counts[4] > 0:
        best_t, best_kind, best_leg, best_level = 2.0, NO_EVENT, -1, np.nan
        for j in range(cols.shape[0]):
            q = legs[QTY, j]
            if q == 0.0:
                continue
            s = leg_slot[j]
            falling = q > 0.0
            t = _cross_time(p0[s], p1[s], legs[SL, j], falling)
            if t >= 0.0 and (t < best_t or (t == best_t and EV_SL < best_kind)):
                best_t, best_kind, best_leg, best_level = t, EV_SL, j, legs[SL, j]
            t = _cross_time(p0[s], p1[s], legs[TP, j], not falling)
            if t >= 0.0 and (t < best_t or (t == best_t and EV_TP < best_kind)):
                best_t, best_kind, best_leg, best_level = t, EV_TP, j, legs[TP, j]
            if not np.isnan(legs[TRAIL, j]):
                level = legs[PEAK, j] * (1.0 - legs[TRAIL, j] if falling else 1.0 + legs[TRAIL, j])
                t = _cross_time(p0[s], p1[s], level, falling)
                if t >= 0.0 and (t < best_t or (t == best_t and EV_TRAIL < best_kind)):
                    best_t, best_kind, best_leg, best_level = t, EV_TRAIL, j, level
        t, slot = _liquidation_event(ctx, tiers, p0, m0, m1, fills)
        if t >= 0.0 and t <= best_t:
            _liquidate(ctx, i, slot, fills)
            best_t = t
        elif best_kind == NO_EVENT:
            break
        else:
            reason = Reason.stop_loss if best_kind == EV_SL else (
                Reason.trailing_stop if best_kind == EV_TRAIL else Reason.take_profit)
            s = leg_slot[best_leg]
            ref = p0[s] if best_t == 0.0 else best_level  # a gap through the level fills at the open
            _close(ctx, best_leg, i, ref, reason, best_kind != EV_TP, True)
            legs[STOP_BAR, best_leg] = i
        for s in range(n_slots):
            p0[s] = p0[s] + best_t * (p1[s] - p0[s])
            m0[s] = m0[s] + best_t * (m1[s] - m0[s])
    _move_peaks(legs, leg_slot, p1, p1)


@njit(cache=True)
def _auto_deleverage(ctx, i, adl_price, min_rank, closes):
    """Auto-deleveraging at bar i's close (after the bar's stops and liquidations): each position
    (slot: the account's net position on one instrument) on an instrument with a finite ADL
    price P at bar i, in profit at P (q·P > Σ q·entry: a long above its average entry, a short
    below it), whose rank reaches ``min_rank``, closes — every leg of it — at exactly P, without
    fee or slippage (``Reason.adl``). The rank is

        rank = upnl(P) / margin × |q|·P / equity

    with upnl(P) = q·P − Σ q·entry, margin = the slot's margin (Σ of its legs' entry notional /
    leverage; isolated: less the funding paid, i.e. its collateral) and equity = the margin
    balance backing it: margin + upnl(P) for an isolated slot, the cross account's equity
    (wallet + every position's unrealized PnL, this one's at P, the others' at the bar's
    close). A margin or equity of zero or less ranks first (+inf). Ranks are taken before any
    close (a close without fee only moves the profit into the wallet: the equity stays)."""
    (cols, legs, leg_slot, slots, slot_inst, wallet, acc, colacc, counts, rec, keep, fees, slippage,
     depth, cross, liq_rate) = ctx
    n_slots = slots.shape[1]
    account = wallet[0]
    hit = False
    for s in range(n_slots):
        if slots[S_LEGS, s] > 0.0:
            price = at_nb(adl_price, slot_inst[s], i)
            if price > 0.0:  # NaN: no ADL here
                hit = True
            else:
                price = closes[s]
            account += slots[S_Q, s] * price - slots[S_QE, s]
    if not hit:
        return
    for s in range(n_slots):
        q = slots[S_Q, s]
        if slots[S_LEGS, s] == 0.0 or q == 0.0:
            continue
        price = at_nb(adl_price, slot_inst[s], i)
        if not price > 0.0:
            continue
        upnl = q * price - slots[S_QE, s]
        if not upnl > 0.0:
            continue
        margin = slots[S_MARGIN, s]
        equity = account if cross else margin + upnl
        rank = np.inf
        if margin > 0.0 and equity > 0.0:
            rank = upnl / margin * (abs(q) * price / equity)
        if rank < min_rank:
            continue
        for j in range(cols.shape[0]):
            if legs[QTY, j] != 0.0 and leg_slot[j] == s:
                _close(ctx, j, i, price, Reason.adl, False, False)
                legs[STOP_BAR, j] = i


# ----- statistics -----------------------------------------------------------------------------------


@njit(cache=True)
def _init_stats(acc, init_cash):
    acc[:] = 0.0
    acc[ACS.growth] = 1.0
    acc[ACS.peak] = np.nan
    acc[ACS.max_drawdown] = np.nan
    acc[ACS.max_leverage] = np.nan
    acc[ACS.worst_margin_ratio] = np.nan
    acc[ACS.last_equity] = init_cash


# ----- one account ----------------------------------------------------------------------------


@njit(cache=True)
def _low_first(intrabar, open_i, close_i, net_side):
    if intrabar == Intrabar.auto:
        return close_i >= open_i
    adverse_low = net_side >= 0  # the low hurts longs
    return adverse_low if intrabar == Intrabar.pessimistic else not adverse_low


@njit(cache=True)
def _set_segment(p0, p1, m0, m1, a0, a1, b0, b1):
    for s in range(p0.shape[0]):
        p0[s], p1[s], m0[s], m1[s] = a0[s], a1[s], b0[s], b1[s]


@njit(cache=True)
def _grow_records(rec, counts, leg_bars):
    """Room for what ``leg_bars`` (legs × bars) can record, plus the end-of-run marks (see
    ORDERS_PER_LEG_BAR)."""
    orders, trades, liqs, funds = rec
    if counts[ORDERS] + ORDERS_PER_LEG_BAR * leg_bars > orders.shape[0]:
        orders = grow_nb(orders, counts[ORDERS] + ORDERS_PER_LEG_BAR * leg_bars)
    if counts[TRADES] + (TRADES_PER_LEG_BAR + 1) * leg_bars > trades.shape[0]:
        trades = grow_nb(trades, counts[TRADES] + (TRADES_PER_LEG_BAR + 1) * leg_bars)
    if counts[LIQS] + LIQS_PER_LEG_BAR * leg_bars > liqs.shape[0]:
        liqs = grow_nb(liqs, counts[LIQS] + LIQS_PER_LEG_BAR * leg_bars)
    if counts[FUNDS] + leg_bars > funds.shape[0]:
        funds = grow_nb(funds, counts[FUNDS] + leg_bars)
    return (orders, trades, liqs, funds)


@njit(cache=True)
def _pay_funding(i, legs, leg_slot, slots, slot_inst, wallet, acc, colacc, cols, cross, funding,
                 mopens, funds, counts, keep):
    """Funding at bar i's open: each leg pays qty × mark open × rate (longs pay positive rates)."""
    for j in range(legs.shape[1]):
        q = legs[QTY, j]
        if q == 0.0:
            continue
        s = leg_slot[j]
        rate = at_nb(funding, slot_inst[s], i)
        if np.isnan(rate) or rate == 0.0:
            continue
        c = cols[j]
        payment = q * mopens[s] * rate
        wallet[0] -= payment
        if not cross:
            legs[MARGIN, j] -= payment
            slots[S_MARGIN, s] -= payment
        legs[FUNDING, j] += payment
        acc[ACS.funding] += payment
        colacc[c, CLS.funding] += payment
        _invalidate(slots, s, cross)
        if keep:
            kf = counts[FUNDS]
            funds[kf]["col"], funds[kf]["bar"], funds[kf]["qty"] = c, i, q
            funds[kf]["price"], funds[kf]["rate"], funds[kf]["payment"] = mopens[s], rate, payment
            counts[FUNDS] = kf + 1


@njit(cache=True)
def _quiet(legs, leg_slot, slots, slot_inst, wallet0, cross, lows, highs, mlows, mhighs,
           t_start, t_count, t_max, t_mmr, t_cum):
    """True when nothing can trigger within the ranges given per slot (the common case): no
    stop inside any leg's traded range, and the account above maintenance at the adverse corner
    of every slot's mark range. A point (low = high) checks a moment, e.g. the open.

    Takes plain arrays, not the grouped inputs: it runs on every bar with a position, and
    numba's reference counting makes a call with tuples of arrays cost ~100 ns.
    """
    for j in range(legs.shape[1]):
        q = legs[QTY, j]
        if q == 0.0:
            continue
        s = leg_slot[j]
        low_i, high_i = lows[s], highs[s]
        sl, tp, trail, peak = legs[SL, j], legs[TP, j], legs[TRAIL, j], legs[PEAK, j]
        if q > 0.0:
            if low_i <= sl or high_i >= tp or (trail > 0.0 and low_i <= max(peak, high_i) * (1.0 - trail)):
                return False
        else:
            if high_i >= sl or low_i <= tp or (trail > 0.0 and high_i >= min(peak, low_i) * (1.0 + trail)):
                return False
    n_slots = slots.shape[1]
    held, last = 0, -1
    for s in range(n_slots):
        if slots[S_LEGS, s] > 0.0:
            held += 1
            last = s
    if cross and held > 1:
        worst = wallet0
        for s in range(n_slots):
            q = slots[S_Q, s]
            if slots[S_LEGS, s] == 0.0:
                continue
            if q == 0.0:
                worst -= slots[S_QE, s]
                continue
            k = slot_inst[s]
            worst_s = np.inf
            for price in (mlows[s], mhighs[s]):
                notional = abs(q) * price
                jb = t_start[k] + t_count[k] - 1
                for jj in range(t_start[k], t_start[k] + t_count[k] - 1):
                    if notional < t_max[jj]:
                        jb = jj
                        break
                worst_s = min(worst_s, q * price - slots[S_QE, s] - (notional * t_mmr[jb] - t_cum[jb]))
            worst += worst_s
        return worst > 0.0
    for s in range(n_slots):
        q = slots[S_Q, s]
        if q == 0.0 or (cross and s != last):
            continue
        level = slots[S_LP, s]  # cached by the caller (see _refresh_lps)
        if (q > 0.0 and mlows[s] <= level) or (q < 0.0 and mhighs[s] >= level):
            return False
    return True


@njit(cache=True, inline="always")
def _lps_stale(slots):
    for s in range(slots.shape[1]):
        if slots[S_Q, s] != 0.0 and np.isnan(slots[S_LP, s]):
            return True
    return False


@njit(cache=True)
def _refresh_lps(slots, slot_inst, wallet0, cross, tiers):
    """Recompute the cached liquidation prices that fills, funding or wallet changes staled
    (one slot's, or the cross account's single slot; a multi-slot cross account has none)."""
    held = 0
    for s in range(slots.shape[1]):
        if slots[S_LEGS, s] > 0.0:
            held += 1
    if cross and held > 1:
        return
    for s in range(slots.shape[1]):
        if slots[S_Q, s] != 0.0 and np.isnan(slots[S_LP, s]):
            slots[S_LP, s] = _slot_lp(slots, s, slot_inst[s], wallet0 if cross else slots[S_MARGIN, s],
                                      tiers)


@njit(cache=True)
def _run_block(ctx, mk, od, i0, i1, n, flags, tiers, sg, size_type, timing, intrabar, per_bar, row, col_row,
               init_cash, wiped_level, equity_out, wallet_out, position_out, margin_out,
               leverage_out, ratio_out, path, mpath, p0, p1, m0, m1, fills, opens, closes, lows,
               highs, mlows, mhighs, mopens, mcloses, adl_price, adl_on, adl_min_rank):
    """Bars i0 to i1 of one account (see ``_run_account``).

    Written for the bar where nothing happens: numba counts references to every array passed
    to a function or held by a tuple reassigned in a loop, and those atomic operations would
    cost more than the bar. So nothing array-holding is reassigned here, the statistics live in
    local scalars (written back at the end of the block), and an account of one leg — every
    column of a sweep — is checked with scalars; helpers taking arrays run on events only.
    """
    (cols, legs, leg_slot, slots, slot_inst, wallet, acc, colacc, counts, rec, keep, fees, slippage,
     depth, cross, liq_rate) = ctx
    m = cols.shape[0]
    n_slots = slots.shape[1]
    single = m == 1 and n_slots == 1
    opens2, highs2, lows2, closes2 = mk.open, mk.high, mk.low, mk.close
    mopens2, mhighs2, mlows2, mcloses2 = mk.mark_open, mk.mark_high, mk.mark_low, mk.mark_close
    funding2, vol2 = mk.funding, mk.vol
    first_bar, last_bar = mk.first_bar, mk.last_bar
    entries, exits, short_entries, short_exits = sg.entries, sg.exits, sg.short_entries, sg.short_exits
    t_start, t_count = tiers.start, tiers.count
    t_max, t_mmr, t_cum = tiers.max_notional, tiers.mmr, tiers.cum
    c0 = cols[0]
    wiped = flags[0] != 0.0
    has_mark = mk.has_mark
    # the statistics, as locals for the block
    bars, sum_r, sum_r2, shift = acc[ACS.bars], acc[ACS.sum_returns], acc[ACS.sum_squares], acc[ACS.shift]
    downside_sq, growth, last_equity = acc[ACS.downside_sq], acc[ACS.growth], acc[ACS.last_equity]
    peak, peak_bar, in_drawdown, valley = acc[ACS.peak], acc[ACS.peak_bar], acc[ACS.in_drawdown], acc[ACS.valley]
    max_dd, max_dd_bars = acc[ACS.max_drawdown], acc[ACS.max_drawdown_bars]
    exposed_bars, max_lev, worst_ratio = acc[ACS.exposed_bars], acc[ACS.max_leverage], acc[ACS.worst_margin_ratio]
    i = i0
    while i < i1:
        # A one-leg account without a position, on bars without a signal, only repeats its
        # statistics: skip the run at once (the last bar closes drawdowns, so it is walked).
        if single and counts[4] == 0 and i > 0 and last_equity == max(wallet[0], 0.0):
            quiet_end = _flat_run_end(entries, exits, short_entries, short_exits, c0, i,
                                      min(i1, n - 1), timing)
            if quiet_end > i:
                skipped = quiet_end - i
                bars += skipped
                sum_r -= skipped * shift
                sum_r2 += skipped * shift * shift
                if in_drawdown == 0.0:  # the equity repeats its peak
                    peak, peak_bar = last_equity, quiet_end - 1.0
                if not wiped:
                    wiped = wallet[0] <= wiped_level
                if per_bar >= PER_BAR_EQUITY:
                    equity_out[row, i:quiet_end] = last_equity
                if per_bar >= PER_BAR_ALL:
                    wallet_out[row, i:quiet_end] = wallet[0]
                    leverage_out[row, i:quiet_end] = 0.0
                    ratio_out[row, i:quiet_end] = 0.0
                    position_out[col_row, i:quiet_end] = 0.0
                    margin_out[col_row, i:quiet_end] = 0.0
                i = quiet_end
                if i == i1:
                    break
        for s in range(n_slots):
            k = slot_inst[s]
            opens[s], closes[s] = opens2[k, i], closes2[k, i]
        open_legs = counts[4]
        # signals acting on this bar (the previous bar's with timing="next_open")
        s_bar = i - 1 if timing == Timing.next_open else i
        signalled = False
        if s_bar >= 0:
            for j in range(m):
                c = cols[j]
                if (flex_nb(entries, s_bar, c) or flex_nb(exits, s_bar, c)
                        or flex_nb(short_entries, s_bar, c) or flex_nb(short_exits, s_bar, c)):
                    signalled = True
                    break
        # lows, highs and marks are read only when a position or an order needs them
        if open_legs > 0 or signalled:
            for s in range(n_slots):
                k = slot_inst[s]
                lows[s], highs[s] = lows2[k, i], highs2[k, i]
                if has_mark[k]:
                    mo, ml, mh, mc = mopens2[k, i], mlows2[k, i], mhighs2[k, i], mcloses2[k, i]
                    covered = not (np.isnan(ml) or np.isnan(mh) or np.isnan(mc))
                    mopens[s] = mo if not np.isnan(mo) else opens[s]
                    mlows[s] = ml if covered else lows[s]
                    mhighs[s] = mh if covered else highs[s]
                    mcloses[s] = mc if covered else closes[s]
                else:
                    mopens[s], mlows[s], mhighs[s], mcloses[s] = opens[s], lows[s], highs[s], closes[s]

        # 1. funding at the open
        if open_legs > 0:
            due = False
            for s in range(n_slots):
                rate = at_nb(funding2, slot_inst[s], i)
                if slots[S_LEGS, s] > 0.0 and not np.isnan(rate) and rate != 0.0:
                    due = True  # each leg pays on its own quantity: the net position's funding
            if due:
                _pay_funding(i, legs, leg_slot, slots, slot_inst, wallet, acc, colacc, cols, cross,
                             funding2, mopens, rec[3], counts, keep)

        # 2. the open: gaps through levels, then 3. orders due at the open (with timing="close"
        #    no order comes between, so the open is checked with the path below)
        if open_legs > 0 and timing == Timing.next_open:
            if _lps_stale(slots):
                _refresh_lps(slots, slot_inst, wallet[0], cross, tiers)
            if single:
                quiet = _leg_quiet(legs[QTY, 0], legs[SL, 0], legs[TP, 0], legs[TRAIL, 0],
                                   legs[PEAK, 0], slots[S_LP, 0], opens[0], opens[0], mopens[0],
                                   mopens[0])
            else:
                quiet = _quiet(legs, leg_slot, slots, slot_inst, wallet[0], cross, opens, opens,
                               mopens, mopens, t_start, t_count, t_max, t_mmr, t_cum)
            if not quiet:
                _set_segment(p0, p1, m0, m1, opens, opens, mopens, mopens)
                _walk_segment(ctx, i, tiers, p0, p1, m0, m1, fills)
            elif single:  # the open is a point of the path: trailing peaks move to it
                q = legs[QTY, 0]
                legs[PEAK, 0] = max(legs[PEAK, 0], opens[0]) if q > 0.0 else min(legs[PEAK, 0], opens[0])
            else:
                _move_peaks(legs, leg_slot, opens, opens)
        if not wiped:
            wiped = counts[4] == 0 and wallet[0] <= wiped_level
        if timing == Timing.next_open and signalled and not wiped:
            for j in range(m):
                c = cols[j]
                s = leg_slot[j]
                k = slot_inst[s]
                if first_bar[k] <= i <= last_bar[k]:
                    close, side = _signal_action(
                        _sign(legs[QTY, j]), flex_nb(entries, s_bar, c), flex_nb(exits, s_bar, c),
                        flex_nb(short_entries, s_bar, c), flex_nb(short_exits, s_bar, c))
                    if close or side != 0:
                        _act(ctx, od, vol2, j, i, s_bar, opens[s], opens, tiers, size_type, close, side)

        # 4. the joint intrabar path (skipped when nothing can trigger within the bar)
        if counts[4] > 0:
            if _lps_stale(slots):
                _refresh_lps(slots, slot_inst, wallet[0], cross, tiers)
            if single:
                q = legs[QTY, 0]
                quiet = _leg_quiet(q, legs[SL, 0], legs[TP, 0], legs[TRAIL, 0], legs[PEAK, 0],
                                   slots[S_LP, 0], lows[0], highs[0], mlows[0], mhighs[0])
                if quiet:
                    legs[PEAK, 0] = max(legs[PEAK, 0], highs[0]) if q > 0.0 else min(legs[PEAK, 0], lows[0])
            else:
                quiet = _quiet(legs, leg_slot, slots, slot_inst, wallet[0], cross, lows, highs,
                               mlows, mhighs, t_start, t_count, t_max, t_mmr, t_cum)
                if quiet:
                    _move_peaks(legs, leg_slot, lows, highs)
            if not quiet:
                if timing == Timing.close and open_legs > 0:  # the open first (see step 2)
                    _set_segment(p0, p1, m0, m1, opens, opens, mopens, mopens)
                    _walk_segment(ctx, i, tiers, p0, p1, m0, m1, fills)
                for s in range(n_slots):
                    low_first = _low_first(intrabar, opens[s], closes[s], _sign(slots[S_Q, s]))
                    path[0, s], path[3, s] = opens[s], closes[s]
                    path[1, s], path[2, s] = (lows[s], highs[s]) if low_first else (highs[s], lows[s])
                    mpath[0, s], mpath[3, s] = mopens[s], mcloses[s]
                    mpath[1, s], mpath[2, s] = (mlows[s], mhighs[s]) if low_first else (mhighs[s], mlows[s])
                for segment in range(3):
                    _set_segment(p0, p1, m0, m1, path[segment], path[segment + 1],
                                 mpath[segment], mpath[segment + 1])
                    _walk_segment(ctx, i, tiers, p0, p1, m0, m1, fills)

        # 4b. auto-deleveraging at the close (``adl_on``: an instrument of the account has ADL)
        if adl_on and counts[4] > 0:
            _auto_deleverage(ctx, i, adl_price, adl_min_rank, closes)

        # 5. orders at the close
        if not wiped:
            wiped = counts[4] == 0 and wallet[0] <= wiped_level
        if timing == Timing.close and signalled and not wiped:
            acted = False
            for j in range(m):
                c = cols[j]
                s = leg_slot[j]
                k = slot_inst[s]
                if legs[STOP_BAR, j] != i and first_bar[k] <= i <= last_bar[k]:
                    close, side = _signal_action(
                        _sign(legs[QTY, j]), flex_nb(entries, i, c), flex_nb(exits, i, c),
                        flex_nb(short_entries, i, c), flex_nb(short_exits, i, c))
                    if close or side != 0:
                        acted = True
                        _act(ctx, od, vol2, j, i, i, closes[s], closes, tiers, size_type, close, side)
            if acted and counts[4] > 0:  # the close as a point of the path
                _set_segment(p0, p1, m0, m1, closes, closes, mcloses, mcloses)
                _walk_segment(ctx, i, tiers, p0, p1, m0, m1, fills)

        # 6. mark to market
        equity = max(wallet[0], 0.0)
        exposure, maintenance, balance = 0.0, 0.0, 0.0
        if counts[4] > 0:
            total = wallet[0]
            for s in range(n_slots):
                if slots[S_LEGS, s] == 0.0:
                    continue
                q = slots[S_Q, s]
                k = slot_inst[s]
                upnl = q * closes[s] - slots[S_QE, s]
                total += upnl if cross else max(upnl, -slots[S_MARGIN, s])
                if q == 0.0:
                    continue
                exposure += abs(q) * closes[s]
                notional = abs(q) * mcloses[s]
                jb = t_start[k] + t_count[k] - 1
                for jj in range(t_start[k], t_start[k] + t_count[k] - 1):
                    if notional < t_max[jj]:
                        jb = jj
                        break
                maintenance += notional * t_mmr[jb] - t_cum[jb]
                balance += q * mcloses[s] - slots[S_QE, s] + (0.0 if cross else slots[S_MARGIN, s])
            if cross:
                balance += wallet[0]
            equity = max(total, 0.0)
            exposed_bars += 1.0
            if single:
                colacc[c0, CLS.exposed_bars] += 1.0
            else:
                for j in range(m):
                    if legs[QTY, j] != 0.0:
                        colacc[cols[j], CLS.exposed_bars] += 1.0
        # returns as Result.returns defines them; sums shifted by the first return (exact
        # variance without a division in the loop)
        previous = init_cash if i == 0 else last_equity
        r = equity / previous - 1.0 if previous > 0.0 else 0.0
        if i == 0:
            shift = r
        bars += 1.0
        sum_r += r - shift
        sum_r2 += (r - shift) * (r - shift)
        if r < 0.0:
            downside_sq += r * r
        growth *= 1.0 + r
        last_equity = equity
        # drawdowns exactly as vectorbt's get_drawdowns_nb records them on the equity series
        closed_depth, closed_bars = np.nan, 0.0
        if in_drawdown == 0.0:
            if np.isnan(peak) or equity >= peak:
                peak, peak_bar = equity, i
            else:
                in_drawdown, valley = 1.0, equity
        elif equity >= peak:  # recovered
            closed_depth, closed_bars = (valley - peak) / peak, i - (peak_bar + 1.0)
            in_drawdown = 0.0
            peak, peak_bar = equity, i
        elif equity < valley:
            valley = equity
        if i == n - 1 and in_drawdown == 1.0:  # still running at the end: active
            closed_depth, closed_bars = (valley - peak) / peak, i - peak_bar
        if not np.isnan(closed_depth):
            if np.isnan(max_dd) or closed_depth < max_dd:
                max_dd = closed_depth
            max_dd_bars = max(max_dd_bars, closed_bars)
        leverage = exposure / equity if equity > 0.0 else (np.inf if exposure > 0.0 else 0.0)
        ratio = (maintenance / balance if balance > 0.0 else np.inf) if exposure > 0.0 else 0.0
        if exposure > 0.0:
            if not leverage <= max_lev:  # also replaces the initial NaN
                max_lev = leverage
            if not ratio <= worst_ratio:
                worst_ratio = ratio
        if per_bar >= PER_BAR_EQUITY:
            equity_out[row, i] = equity
        if per_bar >= PER_BAR_ALL:
            wallet_out[row, i] = wallet[0]
            leverage_out[row, i] = leverage
            ratio_out[row, i] = ratio
            for j in range(m):
                q = legs[QTY, j]
                position_out[col_row + j, i] = q
                margin_out[col_row + j, i] = legs[MARGIN, j] if q != 0.0 else 0.0
        i += 1
    flags[0] = 1.0 if wiped else 0.0
    acc[ACS.bars], acc[ACS.sum_returns], acc[ACS.sum_squares], acc[ACS.shift] = bars, sum_r, sum_r2, shift
    acc[ACS.downside_sq], acc[ACS.growth], acc[ACS.last_equity] = downside_sq, growth, last_equity
    acc[ACS.peak], acc[ACS.peak_bar], acc[ACS.in_drawdown], acc[ACS.valley] = peak, peak_bar, in_drawdown, valley
    acc[ACS.max_drawdown], acc[ACS.max_drawdown_bars] = max_dd, max_dd_bars
    acc[ACS.exposed_bars], acc[ACS.max_leverage], acc[ACS.worst_margin_ratio] = exposed_bars, max_lev, worst_ratio


@njit(cache=True)
def _flat_run_end(entries, exits, short_entries, short_exits, c, i, end, timing):
    """The first bar from ``i`` (before ``end``) on which a signal of column c acts; ``end``
    when none does."""
    lag = 1 if timing == Timing.next_open else 0
    while i < end:
        s_bar = i - lag
        if s_bar >= 0 and (flex_nb(entries, s_bar, c) or flex_nb(exits, s_bar, c)
                           or flex_nb(short_entries, s_bar, c) or flex_nb(short_exits, s_bar, c)):
            return i
        i += 1
    return end


@njit(cache=True)
def _leg_quiet(q, sl, tp, trail, peak, lp, low_i, high_i, mlow, mhigh):
    """``_quiet`` for an account of one leg, on scalars."""
    if q > 0.0:
        return not (low_i <= sl or high_i >= tp or mlow <= lp
                    or (trail > 0.0 and low_i <= max(peak, high_i) * (1.0 - trail)))
    return not (high_i >= sl or low_i <= tp or mhigh >= lp
                or (trail > 0.0 and high_i >= min(peak, low_i) * (1.0 + trail)))
@njit(cache=True)
def _run_account(g, mk, tiers, sg, od, lay, adl, size_type, margin_mode, timing, intrabar, liq_rate,
                 rec, counts, keep, per_bar, row, col_row, acc_all, colacc, equity_out, wallet_out,
                 position_out, margin_out, leverage_out, ratio_out):
    """Simulate account g over all bars; per-bar outputs go to row ``row`` (and its columns to
    rows from ``col_row``). Returns the record buffers (grown as needed).

    The loop touches only local arrays on bars where nothing happens; the helpers that take
    the whole context (``ctx``) run on events: fills, stops, liquidations.
    """
    n = mk.open.shape[1]
    start = lay.group_start[g]
    m = lay.group_len[g]
    cols = lay.col_order[start: start + m]
    init_cash = lay.init_cash[g]
    cross = margin_mode == MarginMode.cross
    wiped_level = WIPED_EQUITY_FRACTION * init_cash
    acc = acc_all[row]
    _init_stats(acc, init_cash)
    # slots: the account's distinct instruments
    leg_slot = np.empty(m, np.int64)
    slot_inst = np.empty(m, np.int64)
    n_slots = 0
    for j in range(m):
        k = lay.col_instrument[cols[j]]
        found = -1
        for s in range(n_slots):
            if slot_inst[s] == k:
                found = s
        if found < 0:
            slot_inst[n_slots] = k
            found = n_slots
            n_slots += 1
        leg_slot[j] = found
    slot_inst = slot_inst[:n_slots]
    adl_on = False
    for s in range(n_slots):
        if adl.has[slot_inst[s]]:
            adl_on = True
    slots = np.zeros((N_SLOT_FIELDS, n_slots))
    slots[S_LP, :] = np.nan
    legs = np.full((N_LEG_FIELDS, m), np.nan)
    legs[QTY, :] = 0.0
    legs[STOP_BAR, :] = -1.0
    wallet = np.full(1, init_cash)
    counts[4] = 0
    # per-slot path points: traded (4 points) and mark (4 points), segment work arrays
    path = np.empty((4, n_slots))
    mpath = np.empty((4, n_slots))
    p0, p1, m0, m1 = np.empty(n_slots), np.empty(n_slots), np.empty(n_slots), np.empty(n_slots)
    fills = np.empty(n_slots)
    opens, closes = np.empty(n_slots), np.empty(n_slots)
    lows, highs, mlows, mhighs = np.empty(n_slots), np.empty(n_slots), np.empty(n_slots), np.empty(n_slots)
    mopens, mcloses = np.empty(n_slots), np.empty(n_slots)
    flags = np.zeros(1)  # [wiped]
    block = max(1, min(BLOCK_BARS, BLOCK_LEG_BARS // m))
    for i0 in range(0, n, block):
        i1 = min(n, i0 + block)
        if keep:
            rec = _grow_records(rec, counts, m * (i1 - i0))
        ctx = (cols, legs, leg_slot, slots, slot_inst, wallet, acc, colacc, counts, rec, keep,
               od.fees, od.slippage, mk.depth, cross, liq_rate)
        _run_block(ctx, mk, od, i0, i1, n, flags, tiers, sg, size_type, timing, intrabar, per_bar, row,
                   col_row, init_cash, wiped_level, equity_out, wallet_out, position_out,
                   margin_out, leverage_out, ratio_out, path, mpath, p0, p1, m0, m1, fills, opens,
                   closes, lows, highs, mlows, mhighs, mopens, mcloses, adl.price, adl_on,
                   adl.min_rank)
    for s in range(n_slots):
        closes[s] = mk.close[slot_inst[s], n - 1]

    # positions still open at the end are marked at the last close (the blocks left room)
    ctx = (cols, legs, leg_slot, slots, slot_inst, wallet, acc, colacc, counts, rec, keep, od.fees,
           od.slippage, mk.depth, cross, liq_rate)
    _mark_open_positions(ctx, n - 1, closes)
    acc[ACS.final_wallet] = wallet[0]
    if np.isnan(acc[ACS.max_leverage]):
        acc[ACS.max_leverage] = 0.0
        acc[ACS.worst_margin_ratio] = 0.0
    return rec


@njit(cache=True)
def _mark_open_positions(ctx, i, prices):
    """Record positions still open at the end (``Reason.end``), marked like the equity: an
    isolated slot loses at most its margin, a cross account at most its wallet; what lies
    beyond is shown as shortfall, shared by notional."""
    (cols, legs, leg_slot, slots, slot_inst, wallet, acc, colacc, counts, rec, keep, fees, slippage,
     depth, cross, liq_rate) = ctx
    m = cols.shape[0]
    n_slots = slots.shape[1]
    pnl_slot = np.zeros(n_slots)
    notional_slot = np.zeros(n_slots)
    for j in range(m):
        q = legs[QTY, j]
        if q != 0.0:
            s = leg_slot[j]
            pnl_slot[s] += q * (prices[s] - legs[ENTRY, j])
            notional_slot[s] += abs(q) * prices[s]
    shortfall_slot = np.zeros(n_slots)
    if cross:
        total = max(-(wallet[0] + pnl_slot.sum()), 0.0)
        notional = notional_slot.sum()
        for s in range(n_slots):
            shortfall_slot[s] = total * notional_slot[s] / notional if notional > 0.0 else 0.0
    else:
        for s in range(n_slots):
            shortfall_slot[s] = max(-(slots[S_MARGIN, s] + pnl_slot[s]), 0.0)
    for j in range(m):
        q = legs[QTY, j]
        if q == 0.0:
            continue
        s = leg_slot[j]
        price = prices[s]
        pnl = q * (price - legs[ENTRY, j])
        share = abs(q) * price / notional_slot[s] if notional_slot[s] > 0.0 else 1.0
        shortfall = shortfall_slot[s] * share
        net = pnl + shortfall - legs[FEES, j] - legs[FUNDING, j]
        _record_trade(rec, counts, keep, acc, colacc, cols[j], legs, j, i, price, net, shortfall,
                      Reason.end)
        _clear(legs, j)


@njit(cache=True, nogil=True)
def simulate_accounts_nb(mk, tiers, sg, od, lay, adl, size_type, margin_mode, timing, intrabar,
                         liq_rate, g_start, g_stop, keep_records, per_bar, acc_all, colacc,
                         equity_out, wallet_out, position_out, margin_out, leverage_out, ratio_out):
    """Simulate accounts ``g_start`` to ``g_stop`` (a chunk; releases the GIL, so chunks run on
    threads). Statistics go to rows ``g`` of ``acc_all`` and per-column sums to ``colacc``
    (indexed by column); per-bar outputs, when kept, to rows ``g`` (accounts) and to the rows of
    the accounts' columns in ``col_order`` order. Returns the records of the chunk.
    """
    n_cols = 0
    for g in range(g_start, g_stop):
        n_cols += lay.group_len[g]
    cap = 16 if not keep_records else max(16, (ORDERS_PER_LEG_BAR + 2) * n_cols)
    rec = (np.empty(cap, dtype=order_dt), np.empty(cap, dtype=trade_dt),
           np.empty(max(16, n_cols), dtype=liquidation_dt), np.empty(cap, dtype=funding_dt))
    counts = np.zeros(5, dtype=np.int64)  # orders, trades, liquidations, funding, open legs
    for g in range(g_start, g_stop):
        rec = _run_account(g, mk, tiers, sg, od, lay, adl, size_type, margin_mode, timing, intrabar,
                           liq_rate, rec, counts, keep_records, per_bar, g, lay.group_start[g],
                           acc_all, colacc, equity_out, wallet_out, position_out, margin_out,
                           leverage_out, ratio_out)
    return (rec[0][: counts[ORDERS]], rec[1][: counts[TRADES]], rec[2][: counts[LIQS]],
            rec[3][: counts[FUNDS]])


N_STATS = N_ACCOUNT_STATS
N_COLSTATS = N_COLUMN_STATS
