"""The numba kernel agrees with an independent plain-Python model of the account (``reference.py``).

Seeded random scenarios — random-walk OHLC with wicks, gaps and jumps; leverage 1–50; both sides;
isolated and cross; flat, custom and BTCUSDT tiers; all five size types; stops (fractions and
price levels), take-profits and trailing stops; fees, slippage and depth impact; both timings and
the three intrabar orders; funding as a series or a constant; mark prices that diverge from the
traded ones (and rows they do not cover); grouped cross accounts of 2–3 columns — compared
field by field: every order, trade, liquidation and funding payment, and equity, wallet and
position at every bar, to 1e-9.

CI runs a few dozen scenarios of each kind; ``pytest -m slow`` runs thousands. A failure names
the seed: ``scenario(seed, kind)`` rebuilds it.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import backtest

from . import reference

RTOL = 1e-9
KINDS = ("single", "mark", "grouped", "portfolio")
CI_SEEDS = range(20)
SLOW_SEEDS = {"single": range(1000, 3000), "mark": range(3000, 4000), "grouped": range(4000, 5000),
              "portfolio": range(5000, 6000)}
CUSTOM_BOUNDS = [0.0, 2_000.0, 10_000.0, 50_000.0, 250_000.0, 1e12]
CUSTOM_MMR = [0.005, 0.01, 0.02, 0.05, 0.1]
CUSTOM_LEVERAGE = [50.0, 40.0, 20.0, 10.0, 5.0]
LEVERAGES = np.array([1.0, 2.0, 3.0, 5.0, 10.0, 20.0, 25.0, 50.0])
SIZE_TYPES = ("equity", "notional", "exposure", "risk", "target_vol")


def custom_tiers(scale: float) -> pd.DataFrame:
    low, high = np.array(CUSTOM_BOUNDS[:-1]) * scale, np.array(CUSTOM_BOUNDS[1:]) * scale
    cum = [0.0]
    for k in range(1, len(CUSTOM_MMR)):
        cum.append(cum[-1] + low[k] * (CUSTOM_MMR[k] - CUSTOM_MMR[k - 1]))
    return pd.DataFrame({"min_notional": low, "max_notional": high, "mmr": CUSTOM_MMR,
                         "maintenance_amount": cum, "max_leverage": CUSTOM_LEVERAGE})


def _prices(rng, n):
    vol = rng.choice([0.004, 0.01, 0.02, 0.04])
    drift = rng.choice([0.0, 0.0, vol / 3, -vol / 3])  # trends build one leg's profit
    returns = rng.normal(drift, vol, n)
    jumps = rng.random(n) < 0.03
    returns[jumps] += rng.choice([-1, 1], jumps.sum()) * rng.uniform(0.05, 0.3, jumps.sum())
    close = 100.0 * np.exp(np.cumsum(returns))
    open_ = np.r_[100.0, close[:-1]]
    if rng.random() < 0.6:
        open_ = open_ * np.exp(rng.normal(0.0, vol / 2, n) + np.where(rng.random(n) < 0.03,
                                                                        rng.normal(0, 0.1, n), 0.0))
    wick = rng.uniform(0.2, 1.5)
    high = np.maximum(open_, close) * np.exp(np.abs(rng.normal(0.0, vol * wick, n)))
    low = np.minimum(open_, close) * np.exp(-np.abs(rng.normal(0.0, vol * wick, n)))
    return np.column_stack([open_, high, low, close]), vol


def _mark(rng, ohlc, vol):
    n = len(ohlc)
    premium = np.cumsum(rng.normal(0.0, rng.choice([0.001, 0.005, 0.02]), n)) * 0.3
    premium += rng.normal(0.0, rng.choice([0.0, 0.01, 0.04]), n)  # traded wicks the mark ignores
    mo = ohlc[:, 0] * np.exp(premium + rng.normal(0, vol / 4, n))
    mc = ohlc[:, 3] * np.exp(premium)
    wick = rng.uniform(0.1, 1.5)
    mh = np.maximum(mo, mc) * np.exp(np.abs(rng.normal(0.0, vol * wick, n)))
    ml = np.minimum(mo, mc) * np.exp(-np.abs(rng.normal(0.0, vol * wick, n)))
    mark = np.column_stack([mo, mh, ml, mc])
    mark[rng.random(n) < 0.05] = np.nan  # bars the mark series does not cover
    return mark


def _param(rng, n, n_cols, low, high, p_none=0.4, p_bars=0.2):
    """A parameter as None, a scalar, one value per column or one per bar and column."""
    draw = rng.random()
    if draw < p_none:
        return None
    if draw < p_none + p_bars:
        values = rng.uniform(low, high, (n, n_cols))
        values[rng.random((n, n_cols)) < 0.1] = np.nan
        return values
    if n_cols > 1 and rng.random() < 0.5:
        return rng.uniform(low, high, (1, n_cols))
    return float(rng.uniform(low, high))


FLAT = {"min_notional": [0.0], "max_notional": [np.inf], "maintenance_amount": [0.0],
        "max_leverage": [125.0]}
SYMBOLS = ("AAAUSDT", "BBBUSDT", "CCCUSDT")  # no shipped tier table: the scenario picks one


def _instrument_tiers(rng, kind, k):
    """(simulate's tiers argument for the instrument, its table) — one per instrument."""
    if kind == "flat":
        mmr = float(rng.choice([0.004, 0.005, 0.01, 0.02]))
        table = pd.DataFrame({**FLAT, "mmr": [mmr]})[list(backtest.engine.margin.TIER_COLUMNS)]
        return table, table
    if kind == "custom":
        table = custom_tiers(float(rng.choice([0.3, 1.0, 3.0])))
        return table, table
    if kind == "btc":
        return "BTCUSDT", backtest.load_tiers("BTCUSDT")
    table = pd.DataFrame({**FLAT, "mmr": [0.005]})[list(backtest.engine.margin.TIER_COLUMNS)]
    return None, table


def scenario(seed: int, kind: str):
    """(Market or Markets, simulate kwargs, reference.Inputs) of one random scenario.

    ``kind``: "single" (one instrument, mostly one column), "mark" (with a diverging mark
    series), "grouped" (2-3 columns in cross accounts), "portfolio" (2-3 instruments listed at
    different times, accounts of legs across them, cross or isolated).
    """
    rng = np.random.default_rng(seed)
    n = int(rng.integers(30, 140))
    times = pd.date_range("2025-01-01", periods=n, freq="1h", tz="UTC")
    portfolio = kind == "portfolio"
    n_inst = int(rng.integers(2, 4)) if portfolio else 1
    grouped = kind == "grouped"
    if portfolio:
        n_cols = int(rng.integers(2, 5))
        col_instrument = np.r_[np.arange(n_inst), rng.integers(0, n_inst, n_cols)][:max(n_cols, n_inst)]
        n_cols = len(col_instrument)
    else:
        n_cols = int(rng.integers(2, 4)) if grouped else int(rng.choice([1, 1, 1, 2]))
        col_instrument = np.zeros(n_cols, dtype=np.int64)

    # instruments: prices, listing, mark, tiers
    init_cash = 10_000.0
    ohlc = np.full((n_inst, n, 4), np.nan)
    mark = np.full((n_inst, n, 4), np.nan)
    has_mark, first_bar, last_bar, tier_args, tables = [], [], [], {}, []
    tier_kind = str(rng.choice(["flat", "custom", "btc", "default"]))
    for k in range(n_inst):
        first = int(rng.integers(0, n // 3)) if portfolio and k > 0 and rng.random() < 0.6 else 0
        last = int(rng.integers(2 * n // 3, n)) if portfolio and k > 0 and rng.random() < 0.3 else n - 1
        rows, vol = _prices(rng, last - first + 1)
        ohlc[k, first:last + 1] = rows
        ohlc[k, last + 1:] = rows[-1, 3]  # flat at the last close after delisting
        first_bar.append(first)
        last_bar.append(last)
        with_mark = kind == "mark" or rng.random() < (0.4 if portfolio else 0.15)
        if with_mark:
            mark[k, first:last + 1] = _mark(rng, rows, vol)
        has_mark.append(with_mark)
        if portfolio:
            tier_kind = str(rng.choice(["flat", "custom", "btc", "default"]))
        argument, table = _instrument_tiers(rng, tier_kind, k)
        if tier_kind == "btc":
            init_cash = float(rng.choice([10_000.0, 200_000.0, 2_000_000.0])) if not portfolio else 200_000.0
        tier_args[SYMBOLS[k]] = argument
        tables.append(table)
    tiers = [reference.tiers_from_frame(table) for table in tables]
    leverage = np.empty(n_cols)
    for c in range(n_cols):
        t0 = tiers[col_instrument[c]][0]
        allowed = LEVERAGES[(LEVERAGES <= t0.max_leverage) & (LEVERAGES * t0.mmr < 1.0)]
        leverage[c] = rng.choice(allowed)
    if grouped and rng.random() < 0.5:  # a steady low-leverage leg beside high-leverage traders
        leverage[0] = leverage.min()

    # signals
    probability = float(rng.choice([0.02, 0.05, 0.15, 0.3]))
    signals = {name: rng.random((n, n_cols)) < probability
               for name in ("entries", "exits", "short_entries", "short_exits")}
    if rng.random() < 0.25:
        signals["short_entries"][:] = signals["short_exits"][:] = False

    # sizes and stops
    size_type = str(rng.choice(SIZE_TYPES))
    size = {"equity": lambda: float(rng.uniform(0.1, 1.0)),
            "notional": lambda: float(init_cash * rng.uniform(0.2, 2.0) * leverage.max() * 0.5),
            "exposure": lambda: float(rng.uniform(0.5, 1.2 * leverage.max())),
            "risk": lambda: float(rng.uniform(0.005, 0.05)),
            "target_vol": lambda: float(rng.uniform(0.2, 3.0))}[size_type]()
    if rng.random() < 0.2:
        size = np.where(rng.random((n, n_cols)) < 0.1, 0.0, size * rng.uniform(0.5, 1.5, (n, n_cols)))
    sl_stop = _param(rng, n, n_cols, 0.01, 0.1)
    tp_stop = _param(rng, n, n_cols, 0.01, 0.15)
    trail_stop = _param(rng, n, n_cols, 0.01, 0.08, p_none=0.6)
    col_close = np.nan_to_num(ohlc[col_instrument, :, 3].T, nan=100.0)  # (n, C)
    sl_price = tp_price = None
    if rng.random() < 0.3:
        side = rng.choice([-1.0, 1.0], (n, n_cols))
        sl_price = col_close * (1 - side * rng.uniform(0.005, 0.08, (n, n_cols)))
        sl_price[rng.random((n, n_cols)) < 0.1] = np.nan
    if rng.random() < 0.2:
        side = rng.choice([-1.0, 1.0], (n, n_cols))
        tp_price = col_close * (1 + side * rng.uniform(0.005, 0.1, (n, n_cols)))
    if size_type == "risk" and sl_stop is None and sl_price is None:
        sl_stop = float(rng.uniform(0.01, 0.08))
    vol_window = int(rng.integers(3, 15))

    # costs, funding, depth
    fees = float(rng.choice([0.0, 0.0002, 0.0005, 0.001]))
    slippage = float(rng.choice([0.0, 0.0005, 0.002]))
    if n_cols > 1 and rng.random() < 0.3:
        fees = rng.choice([0.0, 0.0004, 0.001], (1, n_cols))
    liquidation_fee = float(rng.choice([0.0, 0.005, 0.0125, 0.02]))
    funding_kind = rng.choice(["off", "constant", "series"])
    funding_rates = np.full((n_inst, n), np.nan)
    funding_series = [None] * n_inst
    if funding_kind == "constant":
        funding = float(rng.choice([0.0001, -0.0005, 0.002, 0.01]))
        funding_rates[:] = reference.constant_funding(times, funding)
    elif funding_kind == "series":
        funding = True
        for k in range(n_inst):
            rates = np.where(times.hour % 8 == 0, np.clip(rng.normal(0.0001, 0.002, n), -0.04, 0.04), np.nan)
            rates[: first_bar[k]] = rates[last_bar[k] + 1:] = np.nan
            funding_rates[k] = rates
            funding_series[k] = pd.Series(rates, index=times).dropna()
    else:
        funding = False
    depth = np.full((n_inst, n), np.nan)
    for k in range(n_inst):
        if rng.random() < 0.4:
            row = init_cash * leverage.max() * np.exp(rng.uniform(np.log(0.5), np.log(400.0), n))
            row[rng.random(n) < 0.1] = np.nan
            row[: first_bar[k]] = row[last_bar[k] + 1:] = np.nan
            depth[k] = row

    margin_mode = "cross" if grouped else str(rng.choice(["isolated", "cross"]))
    if grouped or (portfolio and rng.random() < 0.8):
        labels = np.array([0] * n_cols) if rng.random() < 0.5 else rng.integers(0, 2, n_cols)
        group_by = True if (labels == labels[0]).all() else labels
        codes, _ = pd.factorize(labels)
        groups = [[c for c in range(n_cols) if codes[c] == g] for g in range(codes.max() + 1)]
    else:
        group_by = None
        groups = [[c] for c in range(n_cols)]

    markets = {}
    with warnings.catch_warnings():  # partial mark and depth coverage is intended here
        warnings.simplefilter("ignore", backtest.DataWarning)
        for k in range(n_inst):
            bars = slice(first_bar[k], last_bar[k] + 1)
            frame = pd.DataFrame(ohlc[k, bars], index=times[bars], columns=["open", "high", "low", "close"])
            mark_frame = pd.DataFrame(mark[k, bars], index=times[bars],
                                      columns=["open", "high", "low", "close"]) if has_mark[k] else None
            depth_series = pd.Series(depth[k, bars], index=times[bars]) if not np.isnan(depth[k]).all() else None
            markets[SYMBOLS[k]] = backtest.Market(frame, mark=mark_frame, funding=funding_series[k],
                                                  depth=depth_series, symbol=SYMBOLS[k])
    market = markets[SYMBOLS[0]] if not portfolio else backtest.Markets(markets)
    if portfolio:
        kwargs = {"instruments": [SYMBOLS[k] for k in col_instrument], "tiers": tier_args}
    else:
        argument = tier_args[SYMBOLS[0]]
        kwargs = {"mmr": float(tables[0]["mmr"].iloc[0])} if tier_kind == "flat" else (
            {"tiers": argument} if argument is not None else {})
    kwargs.update(signals)
    kwargs.update(size=size, size_type=size_type, leverage=leverage, margin_mode=margin_mode,
                  sl_stop=sl_stop, tp_stop=tp_stop, trail_stop=trail_stop, sl_price=sl_price,
                  tp_price=tp_price, fees=fees, slippage=slippage,
                  timing=str(rng.choice(["next_open", "close"])),
                  intrabar=str(rng.choice(["auto", "pessimistic", "optimistic"])),
                  init_cash=init_cash, liquidation_fee=liquidation_fee, funding=funding,
                  group_by=group_by, vol_window=vol_window)

    def grid(value, fill):
        if value is None:
            value = fill
        return np.broadcast_to(np.asarray(value, dtype=float), (n, n_cols))

    vol = None
    if size_type == "target_vol":
        vol = np.vstack([reference.realized_vol(ohlc[k, :, 3], vol_window, 365 * 24) for k in range(n_inst)])
    inputs = reference.Inputs(
        ohlc=ohlc, times=times, mark=mark if any(has_mark) else None, has_mark=has_mark,
        funding=funding_rates if funding is not False else None,
        depth=depth if not np.isnan(depth).all() else None, vol=vol,
        first_bar=first_bar, last_bar=last_bar, col_instrument=list(col_instrument),
        size=grid(size, np.nan), sl_stop=grid(sl_stop, np.nan), tp_stop=grid(tp_stop, np.nan),
        trail_stop=grid(trail_stop, np.nan), sl_price=grid(sl_price, np.nan),
        tp_price=grid(tp_price, np.nan), fees=grid(fees, 0.0), slippage=grid(slippage, 0.0),
        leverage=leverage.astype(float), size_type=size_type, margin_mode=margin_mode,
        timing=kwargs["timing"], intrabar=kwargs["intrabar"], liquidation_fee=liquidation_fee,
        tiers=tiers, init_cash=np.full(len(groups), init_cash), groups=groups, **signals)
    return market, kwargs, inputs


ORDER_FIELDS = ("col", "bar", "side", "qty", "price", "fee", "status", "reason")
TRADE_FIELDS = ("col", "entry_bar", "exit_bar", "side", "qty", "entry_price", "exit_price", "pnl",
                "fees", "funding", "margin", "shortfall", "exit_reason")
LIQUIDATION_FIELDS = ("col", "bar", "side", "qty", "price", "loss", "fee", "shortfall")
FUNDING_FIELDS = ("col", "bar", "qty", "price", "rate", "payment")


def _same_records(name, ours, theirs, fields, scale):
    assert len(ours) == len(theirs), f"{name}: {len(ours)} records, the reference has {len(theirs)}"
    if not len(theirs):
        return
    expected = list(zip(*theirs, strict=True))
    for k, field in enumerate(fields):
        got, want = ours[field], np.asarray(expected[k])
        if ours.dtype[field].kind in "iu":
            mismatch = np.flatnonzero(got != want)
            assert not len(mismatch), f"{name}.{field} differs at record {mismatch[0]}: " \
                f"{got[mismatch[0]]} vs {want[mismatch[0]]}"
        else:
            np.testing.assert_allclose(got, want.astype(float), rtol=RTOL, atol=RTOL * scale,
                                       err_msg=f"{name}.{field}")


def check(seed: int, kind: str):
    market, kwargs, inputs = scenario(seed, kind)
    ours = backtest.simulate(market, **kwargs)
    equity, wallet, position, rec = reference.run(inputs)
    scale = float(inputs.init_cash.max())
    records = ours.records()
    _same_records("orders", records.orders, rec.orders, ORDER_FIELDS, scale)
    _same_records("funding", records.funding, rec.funding, FUNDING_FIELDS, scale)
    _same_records("liquidations", records.liquidations, rec.liquidations, LIQUIDATION_FIELDS, scale)
    _same_records("trades", records.trades, rec.trades, TRADE_FIELDS, scale)
    np.testing.assert_allclose(ours.per_bar("equity"), equity, rtol=RTOL, atol=RTOL * scale,
                               err_msg="equity")
    np.testing.assert_allclose(ours.per_bar("wallet"), wallet, rtol=RTOL, atol=RTOL * scale,
                               err_msg="wallet")
    np.testing.assert_allclose(ours.per_bar("position"), position, rtol=RTOL, atol=RTOL * scale,
                               err_msg="position")
    # the accounting identity, exact to rounding: final equity = init + Σ trade pnl per account
    trades = records.trades
    for g, cols in enumerate(inputs.groups):
        pnl = trades["pnl"][np.isin(trades["col"], cols)].sum()
        assert ours.per_bar("equity")[-1, g] == pytest.approx(inputs.init_cash[g] + pnl, rel=1e-9, abs=1e-6)
    return ours, rec


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("seed", CI_SEEDS)
def test_kernel_matches_the_reference_model(seed, kind):
    check(seed, kind)


# Scenarios that once disagreed, kept: a trailing peak not moved to a quiet open (12), an
# emptied slot still counted as held after a cross liquidation (5215), isolated legs margined
# from other legs' unrealized profit (5306, 5778, 5858), legs netting to zero skipping funding
# (5791).
REGRESSIONS = [("portfolio", 12), ("portfolio", 5215), ("portfolio", 5306), ("portfolio", 5778),
               ("portfolio", 5791), ("portfolio", 5858)]


@pytest.mark.parametrize(("kind", "seed"), REGRESSIONS)
def test_scenarios_that_once_disagreed(kind, seed):
    check(seed, kind)


def test_the_ci_scenarios_exercise_what_they_claim():
    """Across the CI seeds: liquidations (with and without shortfall), every exit reason,
    rejections of every kind, funding both ways, grouped accounts with several positions."""
    reasons, rejections, shortfalls, liquidations, payments = set(), set(), 0, 0, []
    for kind in KINDS:
        for seed in CI_SEEDS:
            ours, _ = check(seed, kind)
            records = ours.records()
            reasons |= set(records.trades["exit_reason"].tolist())
            rejected = records.orders[records.orders["status"] == 1]
            rejections |= set(rejected["reason"].tolist())
            shortfalls += int((records.trades["shortfall"] > 0).sum())
            liquidations += len(records.liquidations)
            payments.extend(records.funding["payment"].tolist())
    names = reference.REASONS
    assert {names.index(r) for r in ("signal", "stop_loss", "take_profit", "trailing_stop",
                                     "liquidation", "end")} <= reasons
    assert {names.index(r) for r in ("insufficient_margin", "tier_leverage", "size_unavailable",
                                     "exceeds_depth")} <= rejections
    assert liquidations >= 20 and shortfalls >= 1
    assert min(payments) < 0 < max(payments)


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_kernel_matches_the_reference_model_on_thousands_of_scenarios(kind):
    failures = []
    for seed in SLOW_SEEDS[kind]:
        try:
            check(seed, kind)
        except AssertionError as exc:
            failures.append(f"seed {seed}: {str(exc).splitlines()[0]}")
    assert not failures, f"{len(failures)} of {len(SLOW_SEEDS[kind])} {kind} scenarios differ:\n" + \
        "\n".join(failures[:20])
