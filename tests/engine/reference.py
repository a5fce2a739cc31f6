"""A plain-Python model of Binance-style USDⓈ-M accounts, to check the numba kernel against.

Written from the semantics documented in ``backtest/engine/simulate.py`` and DESIGN.md, not from
the kernel, and sharing no code with it: no numba, no import from ``backtest``, one account at a
time, objects and lists instead of arrays, and its own arithmetic where the kernel has a formula
(the liquidation point is found by scanning every linear piece of the surplus between bracket
boundaries and interpolating, without assuming the surplus concave; the realized volatility is
computed from scratch; the constant-funding schedule is counted with datetimes).

Accounts hold legs (columns), each trading one instrument; the legs of one instrument net
into one position (a slot): maintenance brackets and liquidation use the net quantity, an
isolated slot's collateral is the sum of its legs' margins, a cross account's is the wallet.

Per bar and account:

1. funding at the open: each position pays ``qty × mark open × rate`` (isolated: out of its
   margin too);
2. the open is the first point of the path: a level already passed triggers there, a
   liquidation first; a gap fills at the open (a liquidation at the worse of the open and its
   liquidation price);
3. ``timing="next_open"``: the previous bar's signals fill at the open;
4. the path O→X1→X2→C (mark: MO→Y1→Y2→MC) of every instrument, all in step, segment by
   segment; on each the earliest event triggers (ties: liquidation, stop-loss, trailing stop,
   take-profit; then leg order), then the rest of the segment is scanned again; a cross account
   of several slots is liquidated where its surplus, summed over the instruments' joint path,
   reaches zero; trailing peaks move at segment ends;
5. ``timing="close"``: this bar's signals fill at the close (not for a column stopped or
   liquidated on this bar), then the close is checked as a point of the path;
6. equity at the close: wallet + unrealized PnL (isolated: a loss no larger than the margin),
   floored at zero.

Losses stop at the collateral (an isolated position's margin; the wallet of a cross account with
nothing else open); the excess is the insurance fund's shortfall, recorded on the trade.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
import pandas as pd

MIN_NOTIONAL = 5.0
WIPED = 1e-4
TOLERANCE = 1e-9
DEPTH_BAND = 0.02
RANK = {"liquidation": 0, "stop_loss": 1, "trailing_stop": 2, "take_profit": 3}
REASONS = ("signal", "stop_loss", "take_profit", "trailing_stop", "liquidation", "end",
           "insufficient_margin", "tier_leverage", "below_min_notional", "size_unavailable",
           "exceeds_depth", "exceeds_max_notional")
MAX_IMPACT = 0.5
CAPPED = ("exposure", "risk", "target_vol")


@dataclass
class Tier:
    low: float
    high: float
    mmr: float
    cum: float
    max_leverage: float


def tiers_from_frame(frame: pd.DataFrame) -> list[Tier]:
    return [Tier(float(r.min_notional), float(r.max_notional), float(r.mmr),
                 float(r.maintenance_amount), float(r.max_leverage)) for r in frame.itertuples()]


def bracket(tiers: list[Tier], notional: float) -> Tier:
    for tier in tiers:
        if notional < tier.high:
            return tier
    return tiers[-1]


@dataclass
class Position:
    qty: float  # signed coins
    entry: float
    margin: float  # isolated: what is left of it after funding; cross: the initial margin
    fees: float
    funding: float
    sl: float
    tp: float
    trail: float
    peak: float
    entry_bar: int
    entry_margin: float


@dataclass
class Inputs:
    """Everything a run needs, as plain arrays. Per instrument: (K, n, 4) OHLC and marks,
    (K, n) funding, depth and volatility; per column parameters are (bars, columns)."""

    ohlc: np.ndarray  # (K, n, 4), NaN before an instrument's first bar
    times: pd.DatetimeIndex
    mark: np.ndarray | None  # (K, n, 4), NaN rows where not covered; None: no instrument has one
    has_mark: list  # (K,) whether each instrument has a mark series
    funding: np.ndarray | None  # (K, n) rate per bar, NaN where there is no funding
    depth: np.ndarray | None  # (K, n)
    vol: np.ndarray | None  # (K, n) annualized realized volatility (target_vol sizing)
    first_bar: list
    last_bar: list
    col_instrument: list  # (C,)
    entries: np.ndarray
    exits: np.ndarray
    short_entries: np.ndarray
    short_exits: np.ndarray
    size: np.ndarray
    sl_stop: np.ndarray
    tp_stop: np.ndarray
    trail_stop: np.ndarray
    sl_price: np.ndarray
    tp_price: np.ndarray
    fees: np.ndarray
    slippage: np.ndarray
    leverage: np.ndarray  # (columns,)
    size_type: str
    margin_mode: str
    timing: str
    intrabar: str
    liquidation_fee: float
    tiers: list  # per instrument: a list of Tier
    init_cash: np.ndarray  # (accounts,)
    groups: list[list[int]]  # the columns of each account, in processing order


@dataclass
class Records:
    orders: list = field(default_factory=list)  # (col, bar, side, qty, price, fee, status, reason)
    trades: list = field(default_factory=list)  # see Account._trade
    liquidations: list = field(default_factory=list)  # (col, bar, side, qty, price, loss, fee, shortfall)
    funding: list = field(default_factory=list)  # (col, bar, qty, price, rate, payment)


def _crossing(p0, p1, level, falling):
    """Fraction of the monotone move p0→p1 at which ``level`` is reached (0 if already beyond)."""
    if level is None or math.isnan(level):
        return None
    if falling:
        if p0 <= level:
            return 0.0
        return (p0 - level) / (p0 - p1) if p1 <= level else None
    if p0 >= level:
        return 0.0
    return (level - p0) / (p1 - p0) if p1 >= level else None


def realized_vol(close: np.ndarray, window: int, periods_per_year: float) -> np.ndarray:
    """Sample standard deviation of the last ``window`` log returns up to each bar, annualized."""
    vol = np.full(len(close), np.nan)
    returns = [math.log(close[j] / close[j - 1]) for j in range(1, len(close))]
    for s in range(window, len(close)):
        sample = returns[s - window: s]
        if any(math.isnan(x) for x in sample):
            continue
        mean = sum(sample) / window
        vol[s] = math.sqrt(sum((x - mean) ** 2 for x in sample) / (window - 1) * periods_per_year)
    return vol


def constant_funding(times: pd.DatetimeIndex, rate: float, interval_hours: int = 8) -> np.ndarray:
    """``rate`` × the number of funding times (00:00, 08:00, 16:00 UTC) in each bar."""
    step = times[1] - times[0] if len(times) > 1 else timedelta(hours=1)
    out = np.full(len(times), np.nan)
    for i, start in enumerate(times):
        end = times[i + 1] if i + 1 < len(times) else start + step
        count = 0
        mark = start.normalize()
        while mark < end:
            if mark >= start:
                count += 1
            mark += timedelta(hours=interval_hours)
        if count:
            out[i] = rate * count
    return out


class Account:
    def __init__(self, inputs: Inputs, cols: list[int], init_cash: float, records: Records):
        self.x = inputs
        self.cols = cols
        self.init_cash = init_cash
        self.wallet = init_cash
        self.pos: dict[int, Position] = {}
        self.stop_bar = {c: -1 for c in cols}
        self.dead = False
        self.rec = records
        self.isolated = inputs.margin_mode == "isolated"
        self.inst = {c: inputs.col_instrument[c] for c in cols}
        self.slots: list[int] = []  # the account's instruments, in order of first appearance
        for c in cols:
            if self.inst[c] not in self.slots:
                self.slots.append(self.inst[c])

    # ----- margin -------------------------------------------------------------------------------

    def legs_on(self, k):
        return [self.pos[c] for c in self.cols if c in self.pos and self.inst[c] == k]

    def net(self, k):
        return sum(p.qty for p in self.legs_on(k))

    def slot_value(self, k, price):
        """Unrealized PnL of the instrument's legs less the maintenance of their net position."""
        legs = self.legs_on(k)
        net = sum(p.qty for p in legs)
        upnl = sum(p.qty * (price - p.entry) for p in legs)
        if net == 0.0:
            return upnl
        notional = abs(net) * price
        tier = bracket(self.x.tiers[k], notional)
        return upnl - (notional * tier.mmr - tier.cum)

    def collateral(self, k):
        return sum(p.margin for p in self.legs_on(k)) if self.isolated else self.wallet

    def boundaries(self, k, low, high):
        """Prices strictly inside (low, high) where the instrument's net changes bracket."""
        net = abs(self.net(k))
        if net == 0.0:
            return []
        return sorted({t.high / net for t in self.x.tiers[k][:-1] if low < t.high / net < high})

    def _one_root(self, k, collateral, a, b):
        fa = collateral + self.slot_value(k, a)
        fb = collateral + self.slot_value(k, b)
        return a + (b - a) * fa / (fa - fb)

    def first_crossing(self, k, collateral, m0, m1):
        """(t, price) where collateral + the slot value first falls to zero along m0→m1."""
        if m0 == m1:
            return None
        inner = self.boundaries(k, min(m0, m1), max(m0, m1))
        points = [m0, *(inner if m1 > m0 else inner[::-1]), m1]
        for a, b in zip(points[:-1], points[1:], strict=True):
            if collateral + self.slot_value(k, b) <= 0.0:
                root = self._one_root(k, collateral, a, b)
                root = min(max(root, min(a, b)), max(a, b))
                return (m0 - root) / (m0 - m1), root
        return None

    def recovery_price(self, k, collateral, m0):
        """The liquidation price of a slot already beyond it at ``m0``: the nearest price in the
        direction its surplus grows where it is zero."""
        net = self.net(k)
        tier = bracket(self.x.tiers[k], abs(net) * m0)
        slope = net - abs(net) * tier.mmr
        if slope == 0.0:
            return None
        upward = slope > 0.0
        points = [m0, *self.boundaries(k, m0, math.inf)] if upward else \
            [m0, *self.boundaries(k, 0.0, m0)[::-1], 0.0]
        for a, b in zip(points[:-1], points[1:], strict=True):
            if collateral + self.slot_value(k, b) > 0.0:
                return self._one_root(k, collateral, a, b)
        if upward:  # the last, unbounded piece: linear from its start
            a = points[-1]
            probe = 2.0 * a + 1.0
            fa = collateral + self.slot_value(k, a)
            fp = collateral + self.slot_value(k, probe)
            if fp > fa:
                return a + (probe - a) * fa / (fa - fp)
        return None

    def cross_surplus(self, t, m0, m1):
        return self.wallet + sum(self.slot_value(k, m0[k] + t * (m1[k] - m0[k]))
                                 for k in self.held())

    def held(self):
        return [k for k in self.slots if self.legs_on(k)]

    def joint_crossing(self, m0, m1):
        """First t where the cross account's surplus, along every instrument's mark segment at
        once, falls to zero: scanning each piece between the moments some net position changes
        bracket."""
        if self.cross_surplus(0.0, m0, m1) <= 0.0:
            return 0.0
        moments = set()
        for k in self.held():
            net = abs(self.net(k))
            if net == 0.0 or m1[k] == m0[k]:
                continue
            for tier in self.x.tiers[k][:-1]:
                t = (tier.high / net - m0[k]) / (m1[k] - m0[k])
                if 0.0 < t < 1.0:
                    moments.add(t)
        points = [0.0, *sorted(moments), 1.0]
        for a, b in zip(points[:-1], points[1:], strict=True):
            fb = self.cross_surplus(b, m0, m1)
            if fb <= 0.0:
                fa = self.cross_surplus(a, m0, m1)
                return a + (b - a) * fa / (fa - fb)
        return None

    def equity(self, prices) -> float:
        total = self.wallet
        for k in self.slots:
            legs = self.legs_on(k)
            if not legs:
                continue
            upnl = sum(p.qty * (prices[k] - p.entry) for p in legs)
            total += max(upnl, -sum(p.margin for p in legs)) if self.isolated else upnl
        return max(total, 0.0)

    # ----- records --------------------------------------------------------------------------

    def _order(self, c, i, side, qty, price, fee, status, reason):
        self.rec.orders.append((c, i, side, qty, price, fee, status, REASONS.index(reason)))

    def _trade(self, c, p: Position, i, price, pnl, shortfall, reason):
        self.rec.trades.append((c, p.entry_bar, i, 1 if p.qty > 0 else -1, abs(p.qty), p.entry,
                                price, pnl, p.fees, p.funding, p.entry_margin, shortfall,
                                REASONS.index(reason)))

    # ----- fills ----------------------------------------------------------------------------

    def impact(self, notional, k, i):
        depth = np.nan if self.x.depth is None else self.x.depth[k, i]
        if math.isnan(depth) or depth <= 0.0:
            return 0.0
        return min(DEPTH_BAND * notional / depth, MAX_IMPACT)

    def close(self, c, i, ref, reason, market_order):
        p, k = self.pos[c], self.inst[c]
        side = 1 if p.qty > 0 else -1
        fill = ref
        if market_order:
            fill = ref * (1 - side * self.x.slippage[i, c])
            fill *= 1 - side * self.impact(abs(p.qty) * ref, k, i)
        fee = abs(p.qty) * fill * self.x.fees[i, c]
        pnl = p.qty * (fill - p.entry)
        shortfall = 0.0
        others = [d for d in self.pos if d != c]
        if self.isolated or not others:
            balance = (p.margin if self.isolated else self.wallet) + pnl
            fee = min(fee, max(balance, 0.0))
            shortfall = max(-balance, 0.0)
        self.wallet += pnl - fee + shortfall
        p.fees += fee
        self._order(c, i, -side, abs(p.qty), fill, fee, 0, reason)
        self._trade(c, p, i, fill, pnl + shortfall - p.fees - p.funding, shortfall, reason)
        del self.pos[c]

    def liquidate(self, cols, i, fills, slot=None):
        """Close ``cols`` (an isolated slot's legs, or every leg) at their instrument's fill."""
        positions = [(c, self.pos[c]) for c in cols]
        pnl_total = sum(p.qty * (fills[self.inst[c]] - p.entry) for c, p in positions)
        fee_due = sum(abs(p.qty) * fills[self.inst[c]] * self.x.liquidation_fee for c, p in positions)
        notional_total = sum(abs(p.qty) * fills[self.inst[c]] for c, p in positions)
        if self.isolated:
            collateral = sum(p.margin for _, p in positions)
            untouched = self.wallet - collateral
        else:
            collateral, untouched = self.wallet, 0.0
        balance = collateral + pnl_total
        fee_total = min(fee_due, max(balance, 0.0))
        shortfall_total = max(-balance, 0.0)
        self.wallet = untouched + max(balance - fee_due, 0.0)
        for c, p in positions:
            fill = fills[self.inst[c]]
            share = abs(p.qty) * fill / notional_total if notional_total > 0 else 1.0
            pnl = p.qty * (fill - p.entry)
            fee, shortfall = fee_total * share, shortfall_total * share
            side = 1 if p.qty > 0 else -1
            self.rec.liquidations.append((c, i, side, abs(p.qty), fill, -pnl + fee - shortfall,
                                          fee, shortfall))
            p.fees += fee
            self._order(c, i, -side, abs(p.qty), fill, fee, 0, "liquidation")
            self._trade(c, p, i, fill, pnl + shortfall - p.fees - p.funding, shortfall,
                        "liquidation")
            del self.pos[c]
            self.stop_bar[c] = i
        if not self.isolated:
            for c in self.cols:
                self.stop_bar[c] = i

    def stop_level(self, value, price_level, ref, side, sign):
        """A stop ``value`` as a fraction of ``ref`` or an absolute level on the right side."""
        if value > 0:
            return ref * (1 + sign * side * value)
        if (sign * side > 0 and price_level > ref) or (sign * side < 0 and price_level < ref):
            return price_level
        return math.nan

    def open(self, c, s, i, side, ref, prices):
        x, k = self.x, self.inst[c]
        size = x.size[s, c]
        if not size > 0:
            return
        leverage, fee_rate = x.leverage[c], x.fees[i, c]
        equity = self.equity(prices)
        used = sum(p.margin for d, p in self.pos.items() if d != c)
        available = (self.wallet if self.isolated else equity) - used
        sl = self.stop_level(x.sl_stop[s, c], x.sl_price[s, c], ref, side, -1)
        tp = self.stop_level(x.tp_stop[s, c], x.tp_price[s, c], ref, side, +1)
        affordable = max(available, 0.0) * leverage / (1 + leverage * fee_rate)
        notional = {
            "equity": lambda: size * affordable,
            "notional": lambda: size,
            "exposure": lambda: size * equity,
            "risk": lambda: size * equity / (abs(ref - sl) / ref),
            "target_vol": lambda: size * equity / x.vol[k, s],
        }[x.size_type]()
        capped = x.size_type in CAPPED
        tiers = x.tiers[k]
        reason = None
        allowed = [t for t in tiers if t.max_leverage >= leverage]
        largest = float(np.nextafter(allowed[-1].high, 0.0))  # strictly inside that bracket
        if math.isnan(notional):
            reason, notional = "size_unavailable", 0.0
        elif notional > largest:
            if capped:
                notional = largest
            elif bracket(tiers, notional).max_leverage < leverage:
                reason = "tier_leverage"
            else:
                reason = "exceeds_max_notional"
        if reason is None and notional > affordable * (1 + TOLERANCE):
            if capped:
                notional = affordable
            else:
                reason = "insufficient_margin"
        depth = math.nan if x.depth is None else x.depth[k, i]
        if reason is None and depth > 0 and notional > depth / 2:  # one side of the book
            if capped:
                notional = depth / 2
            else:
                reason = "exceeds_depth"
        if reason is None and notional < MIN_NOTIONAL:
            reason = "insufficient_margin" if affordable < MIN_NOTIONAL else "below_min_notional"
        fill = ref * (1 + side * x.slippage[i, c])
        fill *= 1 + side * self.impact(notional, k, i)
        qty = notional / fill
        if reason is not None:
            self._order(c, i, side, qty, fill, 0.0, 1, reason)
            return
        fee = notional * fee_rate
        margin = notional / leverage
        self.wallet -= fee
        trail = x.trail_stop[s, c]
        self.pos[c] = Position(side * qty, fill, margin, fee, 0.0, sl, tp,
                               trail if trail > 0 else math.nan, ref, i, margin)
        self._order(c, i, side, qty, fill, fee, 0, "signal")

    def act(self, c, s, i, ref, prices):
        x = self.x
        long_in, long_out = x.entries[s, c], x.exits[s, c]
        short_in, short_out = x.short_entries[s, c], x.short_exits[s, c]
        if long_in and long_out:
            long_in = long_out = False
        if short_in and short_out:
            short_in = short_out = False
        if long_in and short_in:
            long_in = short_in = False
        side = 0
        p = self.pos.get(c)
        if p is None:
            side = 1 if long_in else (-1 if short_in else 0)
        elif p.qty > 0 and (short_in or long_out):
            self.close(c, i, ref, "signal", True)
            side = -1 if short_in else 0
        elif p.qty < 0 and (long_in or short_out):
            self.close(c, i, ref, "signal", True)
            side = 1 if long_in else 0
        if side:
            self.open(c, s, i, side, ref, prices)

    # ----- the path -------------------------------------------------------------------------

    def liquidation_candidates(self, p0, m0, m1):
        """(t, slot order, fills by instrument, columns) of the liquidations on the joint segment."""
        found = []
        held = self.held()
        if not self.isolated and len(held) > 1:
            t = self.joint_crossing(m0, m1)
            if t is not None:
                fills = {k: (p0[k] if t == 0.0 else m0[k] + t * (m1[k] - m0[k])) for k in held}
                found.append((t, 0, fills, [c for c in self.cols if c in self.pos]))
            return found
        for order, k in enumerate(self.slots):
            if k not in held or self.net(k) == 0.0:
                continue
            collateral = self.collateral(k)
            cols = [c for c in self.cols if c in self.pos and (self.inst[c] == k or not self.isolated)]
            if collateral + self.slot_value(k, m0[k]) <= 0.0:  # already beyond: a gap
                level = self.recovery_price(k, collateral, m0[k])
                if level is None:
                    fill = p0[k]
                else:
                    fill = min(level, p0[k]) if self.net(k) > 0 else max(level, p0[k])
                found.append((0.0, order, {k: fill}, cols))
                continue
            crossing = self.first_crossing(k, collateral, m0[k], m1[k])
            if crossing is not None:
                found.append((crossing[0], order, {k: crossing[1]}, cols))
        return found

    def segment(self, i, p0, p1, m0, m1):
        p0, m0 = dict(p0), dict(m0)
        while self.pos:
            events = []
            for rank_col, c in enumerate(self.cols):
                p = self.pos.get(c)
                if p is None:
                    continue
                k = self.inst[c]
                long = p.qty > 0
                trail = math.nan
                if not math.isnan(p.trail):
                    trail = p.peak * (1 - p.trail) if long else p.peak * (1 + p.trail)
                for kind, level, falling in (("stop_loss", p.sl, long), ("take_profit", p.tp, not long),
                                             ("trailing_stop", trail, long)):
                    t = _crossing(p0[k], p1[k], level, falling)
                    if t is not None:
                        events.append((t, RANK[kind], rank_col, kind, level, [c], None))
            for t, order, fills, cols in self.liquidation_candidates(p0, m0, m1):
                events.append((t, RANK["liquidation"], order, "liquidation", None, cols, fills))
            if not events:
                break
            t, _, _, kind, level, cols, fills = min(events, key=lambda e: e[:3])
            if kind == "liquidation":
                self.liquidate(cols, i, fills)
            else:
                c = cols[0]
                k = self.inst[c]
                self.close(c, i, p0[k] if t == 0.0 else level, kind, kind != "take_profit")
                self.stop_bar[c] = i
            for k in self.slots:
                p0[k] = p0[k] + t * (p1[k] - p0[k])
                m0[k] = m0[k] + t * (m1[k] - m0[k])
        for c, p in self.pos.items():
            k = self.inst[c]
            p.peak = max(p.peak, p1[k]) if p.qty > 0 else min(p.peak, p1[k])

    def check_dead(self):
        if not self.dead and not self.pos and self.wallet <= WIPED * self.init_cash:
            self.dead = True

    def has_signal(self, c, s):
        x = self.x
        return bool(x.entries[s, c] or x.exits[s, c] or x.short_entries[s, c] or x.short_exits[s, c])

    def tradable(self, c, i):
        k = self.inst[c]
        return self.x.first_bar[k] <= i <= self.x.last_bar[k]

    def bar(self, i):
        x = self.x
        o, h, low, cl, mo, mh, ml, mc = {}, {}, {}, {}, {}, {}, {}, {}
        for k in self.slots:
            o[k], h[k], low[k], cl[k] = x.ohlc[k, i]
            mark = x.mark[k, i] if x.mark is not None and x.has_mark[k] else np.full(4, np.nan)
            mo[k] = o[k] if math.isnan(mark[0]) else mark[0]
            covered = not any(math.isnan(v) for v in mark[1:])
            mh[k], ml[k], mc[k] = (mark[1], mark[2], mark[3]) if covered else (h[k], low[k], cl[k])
        if x.funding is not None:
            for c in self.cols:
                p = self.pos.get(c)
                if p is None:
                    continue
                k = self.inst[c]
                rate = x.funding[k, i]
                if not math.isnan(rate) and rate != 0.0:
                    payment = p.qty * mo[k] * rate
                    self.wallet -= payment
                    if self.isolated:
                        p.margin -= payment
                    p.funding += payment
                    self.rec.funding.append((c, i, p.qty, mo[k], rate, payment))
        self.segment(i, o, o, mo, mo)
        self.check_dead()
        if x.timing == "next_open" and i > 0 and not self.dead:
            for c in self.cols:
                if self.tradable(c, i) and self.has_signal(c, i - 1):
                    self.act(c, i - 1, i, o[self.inst[c]], o)
        traded, marks = [], []
        for k in self.slots:
            net = self.net(k)
            if x.intrabar == "auto":
                low_first = cl[k] >= o[k]
            elif x.intrabar == "pessimistic":
                low_first = net >= 0
            else:
                low_first = net < 0
            traded.append((o[k], low[k], h[k], cl[k]) if low_first else (o[k], h[k], low[k], cl[k]))
            marks.append((mo[k], ml[k], mh[k], mc[k]) if low_first else (mo[k], mh[k], ml[k], mc[k]))
        for seg in range(3):
            p0 = {k: traded[n][seg] for n, k in enumerate(self.slots)}
            p1 = {k: traded[n][seg + 1] for n, k in enumerate(self.slots)}
            m0 = {k: marks[n][seg] for n, k in enumerate(self.slots)}
            m1 = {k: marks[n][seg + 1] for n, k in enumerate(self.slots)}
            self.segment(i, p0, p1, m0, m1)
        self.check_dead()
        if x.timing == "close" and not self.dead:
            for c in self.cols:
                if self.stop_bar[c] != i and self.tradable(c, i) and self.has_signal(c, i):
                    self.act(c, i, i, cl[self.inst[c]], cl)
            self.segment(i, cl, cl, mc, mc)
        return self.equity(cl)

    def finish(self):
        """Positions still open at the end, marked at the last close like the equity."""
        n = len(self.x.times)
        prices = {k: self.x.ohlc[k, -1, 3] for k in self.slots}
        open_cols = [c for c in self.cols if c in self.pos]
        pnl = {c: self.pos[c].qty * (prices[self.inst[c]] - self.pos[c].entry) for c in open_cols}
        notional = {c: abs(self.pos[c].qty) * prices[self.inst[c]] for c in open_cols}
        shortfall_of = {}
        if self.isolated:
            for k in self.slots:
                legs = [c for c in open_cols if self.inst[c] == k]
                if not legs:
                    continue
                total = max(-(sum(self.pos[c].margin for c in legs) + sum(pnl[c] for c in legs)), 0.0)
                slot_notional = sum(notional[c] for c in legs)
                for c in legs:
                    shortfall_of[c] = total * notional[c] / slot_notional if slot_notional else total
        else:
            total = max(-(self.wallet + sum(pnl.values())), 0.0)
            all_notional = sum(notional.values())
            for c in open_cols:
                shortfall_of[c] = total * notional[c] / all_notional if all_notional else total
        for c in open_cols:
            p = self.pos.pop(c)
            shortfall = shortfall_of[c]
            self._trade(c, p, n - 1, prices[self.inst[c]], pnl[c] + shortfall - p.fees - p.funding,
                        shortfall, "end")


def run(inputs: Inputs):
    """Equity (bars × accounts), wallet (bars × accounts), position (bars × columns), Records."""
    n = len(inputs.times)
    n_cols = inputs.entries.shape[1]
    records = Records()
    equity = np.empty((n, len(inputs.groups)))
    wallet = np.empty((n, len(inputs.groups)))
    position = np.zeros((n, n_cols))
    for g, cols in enumerate(inputs.groups):
        account = Account(inputs, cols, float(inputs.init_cash[g]), records)
        for i in range(n):
            equity[i, g] = account.bar(i)
            wallet[i, g] = account.wallet
            for c in cols:
                position[i, c] = account.pos[c].qty if c in account.pos else 0.0
        account.finish()
    return equity, wallet, position, records
