"""A plain-Python model of Binance-style USDⓈ-M accounts, to check the numba kernel against.

Written from the semantics documented in ``backtest/engine/simulate.py`` and DESIGN.md, not from
the kernel, and sharing no code with it: no numba, no import from ``backtest``, one account at a
time, objects and lists instead of arrays, and its own arithmetic where the kernel has a formula
(the liquidation point is found by scanning every linear piece of the surplus between bracket
boundaries and interpolating, without assuming the surplus concave; the realized volatility is
computed from scratch; the constant-funding schedule is counted with datetimes).

Per bar and account:

1. funding at the open: each position pays ``qty × mark open × rate`` (isolated: out of its
   margin too);
2. the open is the first point of the path: a level already passed triggers there, a
   liquidation first; a gap fills at the open (a liquidation at the worse of the open and its
   liquidation price);
3. ``timing="next_open"``: the previous bar's signals fill at the open;
4. the path O→X1→X2→C (mark: MO→Y1→Y2→MC), segment by segment; on each the earliest event
   triggers (ties: liquidation, stop-loss, trailing stop, take-profit; then column order), then
   the rest of the segment is scanned again; trailing peaks move at segment ends;
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
    """Everything a run needs, as plain arrays; parameters are (bars, columns)."""

    ohlc: np.ndarray  # (n, 4)
    times: pd.DatetimeIndex
    mark: np.ndarray | None  # (n, 4), NaN rows where not covered
    funding: np.ndarray | None  # (n,) rate per bar, NaN where there is no funding
    depth: np.ndarray | None  # (n,)
    vol: np.ndarray | None  # (n,) annualized realized volatility (target_vol sizing)
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
    tiers: list[Tier]
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
        mean = sum(sample) / window
        vol[s] = math.sqrt(sum((x - mean) ** 2 for x in sample) / (window - 1) * periods_per_year)
    return vol


def constant_funding(times: pd.DatetimeIndex, rate: float, interval_hours: int = 8) -> np.ndarray:
    """``rate`` × the number of funding times (00:00, 08:00, 16:00 UTC) in each bar."""
    step = times[1] - times[0] if len(times) > 1 else timedelta(hours=1)
    out = np.full(len(times), np.nan)
    for i, start in enumerate(times):
        end = times[i + 1] if i + 1 < len(times) else start + step
        day = start.normalize()
        count = 0
        mark = day
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

    # ----- margin ---------------------------------------------------------------------------

    def maintenance(self, position: Position, price: float) -> float:
        notional = abs(position.qty) * price
        tier = bracket(self.x.tiers, notional)
        return notional * tier.mmr - tier.cum

    def surplus(self, positions: list[Position], collateral: float, price: float) -> float:
        """Margin balance less maintenance margin at mark ``price``."""
        return collateral + sum(p.qty * (price - p.entry) - self.maintenance(p, price)
                                for p in positions)

    def boundaries(self, positions, low, high):
        """Mark prices strictly inside (low, high) where some position changes bracket."""
        points = set()
        for p in positions:
            for tier in self.x.tiers[:-1]:
                price = tier.high / abs(p.qty)
                if low < price < high:
                    points.add(price)
        return sorted(points)

    def _root(self, positions, collateral, a, b):
        """Where the surplus, linear on [a, b] (or beyond, for an unbounded last piece), is zero."""
        fa, fb = self.surplus(positions, collateral, a), self.surplus(positions, collateral, b)
        return a + (b - a) * fa / (fa - fb)

    def _piece_probe(self, a, upward):
        return 2.0 * a + 1.0 if upward else 0.5 * a

    def first_crossing(self, positions, collateral, m0, m1):
        """(t, price) where the surplus first falls to zero along m0→m1, scanning every piece."""
        if m0 == m1:
            return None
        low, high = min(m0, m1), max(m0, m1)
        inner = self.boundaries(positions, low, high)
        points = [m0, *(inner if m1 > m0 else inner[::-1]), m1]
        for a, b in zip(points[:-1], points[1:], strict=True):
            if self.surplus(positions, collateral, b) <= 0.0:
                root = self._root(positions, collateral, a, b)
                root = min(max(root, min(a, b)), max(a, b))
                return (m0 - root) / (m0 - m1), root
        return None

    def recovery_price(self, positions, collateral, m0):
        """The liquidation price of an account already beyond it at ``m0``: the nearest price in
        the direction the surplus grows (by the slope of its piece at m0) where it is zero."""
        slope = 0.0
        for p in positions:
            tier = bracket(self.x.tiers, abs(p.qty) * m0)
            slope += p.qty - abs(p.qty) * tier.mmr
        if slope == 0.0:
            return None, 0
        upward = slope > 0.0
        if upward:
            points = [m0, *self.boundaries(positions, m0, math.inf)]
        else:
            points = [m0, *self.boundaries(positions, 0.0, m0)[::-1], 0.0]
        for a, b in zip(points[:-1], points[1:], strict=True):
            if self.surplus(positions, collateral, b) > 0.0:
                return self._root(positions, collateral, a, b), slope
        a = points[-1]
        if upward:  # the last, unbounded piece: linear from a on
            probe = self._piece_probe(a, True)
            fa, fp = self.surplus(positions, collateral, a), self.surplus(positions, collateral, probe)
            if fp > fa:
                return a + (probe - a) * fa / (fa - fp), slope
        return None, slope

    def equity(self, price: float) -> float:
        total = self.wallet
        for p in self.pos.values():
            pnl = p.qty * (price - p.entry)
            total += max(pnl, -p.margin) if self.isolated else pnl
        return max(total, 0.0)

    # ----- records --------------------------------------------------------------------------

    def _order(self, c, i, side, qty, price, fee, status, reason):
        self.rec.orders.append((c, i, side, qty, price, fee, status, REASONS.index(reason)))

    def _trade(self, c, p: Position, i, price, pnl, shortfall, reason):
        self.rec.trades.append((c, p.entry_bar, i, 1 if p.qty > 0 else -1, abs(p.qty), p.entry,
                                price, pnl, p.fees, p.funding, p.entry_margin, shortfall,
                                REASONS.index(reason)))

    # ----- fills ----------------------------------------------------------------------------

    def impact(self, notional, i):
        depth = np.nan if self.x.depth is None else self.x.depth[i]
        if math.isnan(depth) or depth <= 0.0:
            return 0.0
        return min(DEPTH_BAND * notional / depth, MAX_IMPACT)

    def close(self, c, i, ref, reason, market_order):
        p = self.pos[c]
        side = 1 if p.qty > 0 else -1
        fill = ref
        if market_order:
            fill = ref * (1 - side * self.x.slippage[i, c])
            fill *= 1 - side * self.impact(abs(p.qty) * ref, i)
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

    def liquidate(self, cols, i, fill):
        positions = [self.pos[c] for c in cols]
        pnl_total = sum(p.qty * (fill - p.entry) for p in positions)
        fee_due = sum(abs(p.qty) * fill * self.x.liquidation_fee for p in positions)
        size_total = sum(abs(p.qty) for p in positions)
        if self.isolated:
            collateral = positions[0].margin
            untouched = self.wallet - collateral
        else:
            collateral, untouched = self.wallet, 0.0
        balance = collateral + pnl_total
        fee_total = min(fee_due, max(balance, 0.0))
        shortfall_total = max(-balance, 0.0)
        self.wallet = untouched + max(balance - fee_due, 0.0)
        for c in cols:
            p = self.pos.pop(c)
            share = abs(p.qty) / size_total
            pnl = p.qty * (fill - p.entry)
            fee, shortfall = fee_total * share, shortfall_total * share
            side = 1 if p.qty > 0 else -1
            self.rec.liquidations.append((c, i, side, abs(p.qty), fill, -pnl + fee - shortfall,
                                          fee, shortfall))
            p.fees += fee
            self._order(c, i, -side, abs(p.qty), fill, fee, 0, "liquidation")
            self._trade(c, p, i, fill, pnl + shortfall - p.fees - p.funding, shortfall,
                        "liquidation")
        for c in self.cols:
            self.stop_bar[c] = i

    def stop_level(self, value, price_level, ref, side, sign):
        """A stop ``value`` as a fraction of ``ref`` or an absolute level on the right side."""
        if value > 0:
            return ref * (1 + sign * side * value)
        if (sign * side > 0 and price_level > ref) or (sign * side < 0 and price_level < ref):
            return price_level
        return math.nan

    def open(self, c, s, i, side, ref):
        x = self.x
        size = x.size[s, c]
        if not size > 0:
            return
        leverage, fee_rate = x.leverage[c], x.fees[i, c]
        equity = self.equity(ref)
        used = sum(p.margin for d, p in self.pos.items() if d != c)
        available = equity - used
        sl = self.stop_level(x.sl_stop[s, c], x.sl_price[s, c], ref, side, -1)
        tp = self.stop_level(x.tp_stop[s, c], x.tp_price[s, c], ref, side, +1)
        affordable = max(available, 0.0) * leverage / (1 + leverage * fee_rate)
        notional = {
            "equity": lambda: size * affordable,
            "notional": lambda: size,
            "exposure": lambda: size * equity,
            "risk": lambda: size * equity / (abs(ref - sl) / ref),
            "target_vol": lambda: size * equity / x.vol[s],
        }[x.size_type]()
        capped = x.size_type in CAPPED
        reason = None
        allowed = [t for t in x.tiers if t.max_leverage >= leverage]
        largest = float(np.nextafter(allowed[-1].high, 0.0))  # strictly inside that bracket
        if math.isnan(notional):
            reason, notional = "size_unavailable", 0.0
        elif notional > largest:
            if capped:
                notional = largest
            elif bracket(x.tiers, notional).max_leverage < leverage:
                reason = "tier_leverage"
            else:
                reason = "exceeds_max_notional"
        if reason is None and notional > affordable * (1 + TOLERANCE):
            if capped:
                notional = affordable
            else:
                reason = "insufficient_margin"
        depth = math.nan if x.depth is None else x.depth[i]
        if reason is None and depth > 0 and notional > depth / 2:  # one side of the book
            if capped:
                notional = depth / 2
            else:
                reason = "exceeds_depth"
        if reason is None and notional < MIN_NOTIONAL:
            reason = "insufficient_margin" if affordable < MIN_NOTIONAL else "below_min_notional"
        fill = ref * (1 + side * x.slippage[i, c])
        fill *= 1 + side * self.impact(notional, i)
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

    def act(self, c, s, i, ref):
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
            self.open(c, s, i, side, ref)

    # ----- the path -------------------------------------------------------------------------

    def liquidation_candidates(self, p0, m0, m1):
        """(t, fill, columns) of liquidations on the segment: per position when isolated."""
        if self.isolated:
            groups = [([c], self.pos[c].margin) for c in self.cols if c in self.pos]
        else:
            held = [c for c in self.cols if c in self.pos]
            groups = [(held, self.wallet)] if held else []
        found = []
        for cols, collateral in groups:
            positions = [self.pos[c] for c in cols]
            if self.surplus(positions, collateral, m0) <= 0.0:  # already beyond: a gap
                level, slope = self.recovery_price(positions, collateral, m0)
                if level is None:
                    fill = p0
                else:
                    fill = min(level, p0) if slope > 0 else max(level, p0)
                found.append((0.0, fill, cols))
                continue
            crossing = self.first_crossing(positions, collateral, m0, m1)
            if crossing is not None:
                found.append((crossing[0], crossing[1], cols))
        return found

    def segment(self, i, p0, p1, m0, m1):
        while self.pos:
            events = []
            for rank_col, c in enumerate(self.cols):
                p = self.pos.get(c)
                if p is None:
                    continue
                long = p.qty > 0
                trail = math.nan
                if not math.isnan(p.trail):
                    trail = p.peak * (1 - p.trail) if long else p.peak * (1 + p.trail)
                for kind, level, falling in (("stop_loss", p.sl, long), ("take_profit", p.tp, not long),
                                             ("trailing_stop", trail, long)):
                    t = _crossing(p0, p1, level, falling)
                    if t is not None:
                        events.append((t, RANK[kind], rank_col, kind, level, [c]))
            for t, fill, cols in self.liquidation_candidates(p0, m0, m1):
                events.append((t, RANK["liquidation"], -1, "liquidation", fill, cols))
            if not events:
                break
            t, _, _, kind, level, cols = min(events, key=lambda e: e[:3])
            if kind == "liquidation":
                self.liquidate(cols, i, level)
            else:
                c = cols[0]
                self.close(c, i, p0 if t == 0.0 else level, kind, kind != "take_profit")
                self.stop_bar[c] = i
            p0, m0 = p0 + t * (p1 - p0), m0 + t * (m1 - m0)
        for p in self.pos.values():
            p.peak = max(p.peak, p1) if p.qty > 0 else min(p.peak, p1)

    def check_dead(self):
        if not self.dead and not self.pos and self.wallet <= WIPED * self.init_cash:
            self.dead = True

    def has_signal(self, c, s):
        x = self.x
        return bool(x.entries[s, c] or x.exits[s, c] or x.short_entries[s, c] or x.short_exits[s, c])

    def bar(self, i):
        x = self.x
        o, h, low, cl = x.ohlc[i]
        mark = x.mark[i] if x.mark is not None else np.full(4, np.nan)
        mo = o if math.isnan(mark[0]) else mark[0]
        rate = math.nan if x.funding is None else x.funding[i]
        if not math.isnan(rate) and rate != 0.0:
            for c in self.cols:
                p = self.pos.get(c)
                if p is not None:
                    payment = p.qty * mo * rate
                    self.wallet -= payment
                    if self.isolated:
                        p.margin -= payment
                    p.funding += payment
                    self.rec.funding.append((c, i, p.qty, mo, rate, payment))
        self.segment(i, o, o, mo, mo)
        self.check_dead()
        if x.timing == "next_open" and i > 0 and not self.dead:
            for c in self.cols:
                if self.has_signal(c, i - 1):
                    self.act(c, i - 1, i, o)
        net = sum(p.qty for p in self.pos.values())
        if x.intrabar == "auto":
            low_first = cl >= o
        elif x.intrabar == "pessimistic":
            low_first = net >= 0
        else:
            low_first = net < 0
        if any(math.isnan(v) for v in mark[1:]):
            ml, mh, mc = low, h, cl
        else:
            ml, mh, mc = mark[2], mark[1], mark[3]
        traded = (o, low, h, cl) if low_first else (o, h, low, cl)
        marks = (mo, ml, mh, mc) if low_first else (mo, mh, ml, mc)
        for k in range(3):
            self.segment(i, traded[k], traded[k + 1], marks[k], marks[k + 1])
        self.check_dead()
        if x.timing == "close" and not self.dead:
            for c in self.cols:
                if self.stop_bar[c] != i and self.has_signal(c, i):
                    self.act(c, i, i, cl)
            self.segment(i, cl, cl, mc, mc)
        return self.equity(cl)

    def finish(self):
        """Positions still open at the end, marked at the last close like the equity."""
        n = len(self.x.ohlc)
        price = self.x.ohlc[-1, 3]
        open_cols = [c for c in self.cols if c in self.pos]
        balance = self.wallet + sum(self.pos[c].qty * (price - self.pos[c].entry) for c in open_cols)
        size_total = sum(abs(self.pos[c].qty) for c in open_cols)
        for c in open_cols:
            p = self.pos.pop(c)
            pnl = p.qty * (price - p.entry)
            if self.isolated:
                shortfall = max(-(p.margin + pnl), 0.0)
            else:
                shortfall = max(-balance, 0.0) * abs(p.qty) / size_total
            self._trade(c, p, n - 1, price, pnl + shortfall - p.fees - p.funding, shortfall, "end")


def run(inputs: Inputs):
    """Equity (bars × accounts), wallet (bars × accounts), position (bars × columns), Records."""
    n = len(inputs.ohlc)
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
