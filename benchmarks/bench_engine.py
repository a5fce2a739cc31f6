"""Engine speed and memory against vectorbt, measured in one run.

    python benchmarks/bench_engine.py              # everything below (a few minutes on 2 cores)
    python benchmarks/bench_engine.py --quick      # smaller sizes, to try it

Every case runs in a fresh process (so peak memory is its own: ``ru_maxrss``) after one warm-up
call in that process (numba's cache is warm; the cold compile is measured separately). Both
tools are called as a user calls them: plain C-ordered numpy boolean signals of shape
(bars, columns), their default arguments, nothing added to either side.

- **sweep**: random entries and exits (1%), a 5% stop-loss and 0.1% fees. vectorbt's
  ``Portfolio.from_signals`` (it cannot do leverage: leverage 1, stop on OHLC); ours at leverage
  3, isolated, Binance BTCUSDT tiers and funding on (0.01% every 8 h), with its defaults (records
  and statistics kept, per-bar series on demand) and then ``.stats()``;
- **per-bar equity kept**: ours with ``per_bar="equity"`` reading ``.equity``; vectorbt with
  ``.value()``;
- **stats only**: ``per_bar=False``;
- **plain loop**: a minimal numba loop reproducing a long-only stop-loss strategy's equity, the
  floor any engine pays per column-bar (final equity only, and writing per-bar equity);
- **scaling**: columns at 10k bars, bars at 100 columns, statistics only;
- **portfolios**: 100 cross accounts each trading 1, 3 or 10 instruments (statistics only);
- **sweep of 1000 combinations × 1M bars**: ``Strategy.sweep`` (chunks, statistics only);
- **single run**: one column of 1M bars, warm; fresh process → first result; cold compile.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from numba import njit

REPO = Path(__file__).resolve().parents[1]
STOP, FEES, LEVERAGE, FUNDING, SIGNAL_P = 0.05, 0.001, 3.0, 0.0001, 0.01


def prices(n_bars: int, seed: int = 42) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.004, n_bars)))
    open_ = np.r_[close[0], close[:-1]]
    spread = np.abs(rng.normal(0.0, 0.002, n_bars)) * close
    index = pd.date_range("2015-01-01", periods=n_bars, freq="1h", tz="UTC")
    return pd.DataFrame({"open": open_, "high": np.maximum(open_, close) + spread,
                         "low": np.minimum(open_, close) - spread, "close": close}, index=index)


def signals(n_bars: int, n_cols: int, seed: int = 7, block: int = 100):
    """Boolean entries and exits (bars, columns), drawn a block of columns at a time so the
    random floats behind them never inflate either tool's peak memory."""
    rng = np.random.default_rng(seed)
    entries = np.empty((n_bars, n_cols), dtype=bool)
    exits = np.empty((n_bars, n_cols), dtype=bool)
    for start in range(0, n_cols, block):
        stop = min(start + block, n_cols)
        entries[:, start:stop] = rng.random((n_bars, stop - start)) < SIGNAL_P
        exits[:, start:stop] = rng.random((n_bars, stop - start)) < SIGNAL_P
    return entries, exits


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ----- cases (each runs in its own process) ------------------------------------------------------


def case_ours(n_bars, n_cols, per_bar):
    import backtest

    frame = prices(n_bars)
    market = backtest.Market(frame, symbol="BTCUSDT")
    entries, exits = signals(n_bars, n_cols)
    mode = {"default": None, "equity": "equity", "stats": False}[per_bar]
    small = backtest.Market(frame.iloc[:500], symbol="BTCUSDT")
    backtest.simulate(small, entries=entries[:500], exits=exits[:500], sl_stop=STOP).stats()
    start = time.perf_counter()
    result = backtest.simulate(market, entries=entries, exits=exits, sl_stop=STOP, fees=FEES,
                               leverage=LEVERAGE, funding=FUNDING, per_bar=mode)
    stats = result.stats()
    if per_bar == "equity":
        result.equity  # noqa: B018 - the per-bar equity, as a user reads it
    return time.perf_counter() - start, float(np.asarray(stats["final_equity"]).sum())


def case_vectorbt(n_bars, n_cols, per_bar):
    import vectorbt as vbt

    frame = prices(n_bars)
    entries, exits = signals(n_bars, n_cols)
    ohlc = {k: frame[k].to_numpy()[:, None] for k in ("open", "high", "low", "close")}
    vbt.Portfolio.from_signals(ohlc["close"][:500], entries[:500, :2], exits[:500, :2],
                               open=ohlc["open"][:500], high=ohlc["high"][:500],
                               low=ohlc["low"][:500], sl_stop=STOP, fees=FEES).value()
    start = time.perf_counter()
    portfolio = vbt.Portfolio.from_signals(ohlc["close"], entries, exits, open=ohlc["open"],
                                           high=ohlc["high"], low=ohlc["low"], sl_stop=STOP,
                                           fees=FEES)
    if per_bar == "equity":
        portfolio.value()
    return time.perf_counter() - start, float(np.asarray(portfolio.final_value()).sum())


@njit(cache=True)
def plain_loop(close, low, entries, exits, stop, fees, keep):
    """Long-only, all cash in, a stop under the entry, fees: the equity of each column."""
    n, m = entries.shape[1], entries.shape[0]
    out = np.empty((m, n if keep else 1))
    for c in range(m):
        cash, qty, level = 1.0, 0.0, 0.0
        for i in range(n):
            if qty > 0.0 and low[i] <= level:
                cash = qty * level * (1.0 - fees)
                qty = 0.0
            elif qty > 0.0 and exits[c, i]:
                cash = qty * close[i] * (1.0 - fees)
                qty = 0.0
            elif qty == 0.0 and entries[c, i]:
                qty = cash * (1.0 - fees) / close[i]
                level = close[i] * (1.0 - stop)
                cash = 0.0
            if keep:
                out[c, i] = cash + qty * close[i]
        if not keep:
            out[c, 0] = cash + qty * close[n - 1]
    return out


def case_plain(n_bars, n_cols, per_bar):
    plain = plain_loop
    frame = prices(n_bars)
    entries, exits = signals(n_bars, n_cols)
    close, low = frame["close"].to_numpy(), frame["low"].to_numpy()
    entries_t, exits_t = np.ascontiguousarray(entries.T), np.ascontiguousarray(exits.T)
    keep = per_bar == "equity"
    small = [np.ascontiguousarray(a[:2, :100]) for a in (entries_t, exits_t)]
    plain(close[:100], low[:100], *small, STOP, FEES, keep)  # compiles for these layouts
    start = time.perf_counter()
    out = plain(close, low, entries_t, exits_t, STOP, FEES, keep)
    return time.perf_counter() - start, float(out[:, -1].sum())


def case_sweep(n_bars, n_combos, _):
    import backtest
    from backtest import Param, Strategy

    class RandomSignals(Strategy):
        seed = Param(0, ge=0)
        leverage = LEVERAGE
        fees = FEES
        funding = FUNDING

        def signals(self, market):
            rng = np.random.default_rng(self.seed)
            return {"entries": rng.random(len(market)) < SIGNAL_P,
                    "exits": rng.random(len(market)) < SIGNAL_P}

        def stops(self, market):
            return {"sl_stop": STOP}

    market = backtest.Market(prices(n_bars), symbol="BTCUSDT")
    RandomSignals().sweep(market[:500], seed=[0, 1])
    start = time.perf_counter()
    table = RandomSignals().sweep(market, seed=list(range(n_combos))).stats()
    return time.perf_counter() - start, float(table["final_equity"].astype(float).sum())


def case_single(n_bars, _, __):
    import backtest

    market = backtest.Market(prices(n_bars), symbol="BTCUSDT")
    entries, exits = signals(n_bars, 1)
    backtest.simulate(market, entries=entries[:, 0], exits=exits[:, 0], sl_stop=STOP)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        backtest.simulate(market, entries=entries[:, 0], exits=exits[:, 0], sl_stop=STOP, fees=FEES,
                          leverage=LEVERAGE, funding=FUNDING).stats()
        times.append(time.perf_counter() - start)
    return min(times), 0.0


def case_portfolio(n_bars, n_accounts, n_instruments):
    """``n_accounts`` cross accounts, each trading every one of ``n_instruments`` instruments."""
    import backtest

    n_instruments = int(n_instruments)
    symbols = [f"I{k}" for k in range(n_instruments)]
    markets = backtest.Markets([backtest.Market(prices(n_bars, seed=k), symbol=symbol)
                                for k, symbol in enumerate(symbols)])
    n_cols = n_accounts * n_instruments
    entries, exits = signals(n_bars, n_cols)
    columns = pd.MultiIndex.from_product([range(n_accounts), symbols], names=["account", "symbol"])
    kwargs = dict(sl_stop=STOP, fees=FEES, leverage=LEVERAGE, funding=FUNDING, margin_mode="cross",
                  group_by=["account"], columns=columns, per_bar=False)
    backtest.simulate(markets[:500], entries=entries[:500], exits=exits[:500], **kwargs)
    start = time.perf_counter()
    result = backtest.simulate(markets, entries=entries, exits=exits, **kwargs)
    final = float(np.asarray(result.stats()["final_equity"], dtype=float).sum())
    return time.perf_counter() - start, final


CASES = {"ours": case_ours, "vectorbt": case_vectorbt, "plain": case_plain, "sweep": case_sweep,
         "single": case_single, "portfolio": case_portfolio}


def run_case(case, bars, cols, per_bar, env=None) -> dict:
    command = [sys.executable, __file__, "--case", case, "--bars", str(bars), "--columns", str(cols),
               "--per-bar", per_bar]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO)
    if done.returncode != 0:
        raise RuntimeError(f"{case} failed:\n{done.stderr[-3000:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    out["wall"] = time.perf_counter() - started
    return out


def first_result(cold: bool) -> float:
    """Seconds from a fresh process to a first result (cold: an empty numba cache)."""
    env = dict(os.environ)
    if cold:
        env["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="numba-cold-")
    code = ("import numpy as np, backtest; m = backtest.load(backtest.sample_path('BTCUSDT'))[:500]; "
            "e = np.zeros(500, bool); e[10] = True; backtest.simulate(m, entries=e).stats()")
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=REPO, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", choices=list(CASES))
    parser.add_argument("--bars", type=int, default=100_000)
    parser.add_argument("--columns", type=int, default=1000)
    parser.add_argument("--per-bar", default="default")
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    args = parser.parse_args()
    if args.case:
        seconds, check = CASES[args.case](args.bars, args.columns, args.per_bar)
        print(json.dumps({"seconds": seconds, "peak_mib": peak_mib(), "check": check}))
        return

    bars, cols = (20_000, 200) if args.quick else (100_000, 1000)
    print(f"machine: {os.cpu_count()} cores; sizes: {cols} columns × {bars:,} bars\n")

    def line(name, out, ratio=None):
        extra = f"   {ratio:6.1f}× vectorbt" if ratio else ""
        per = out["seconds"] / (bars * cols) * 1e9 if "cb" not in out else out["cb"]
        print(f"{name:44s} {out['seconds']:8.2f} s  {per:7.1f} ns/col-bar  peak {out['peak_mib']:7.0f} MiB{extra}")

    vbt_sweep = run_case("vectorbt", bars, cols, "default")
    vbt_value = run_case("vectorbt", bars, cols, "equity")
    line("vectorbt from_signals", vbt_sweep)
    line("vectorbt from_signals + value()", vbt_value)
    ours = run_case("ours", bars, cols, "default")
    line("ours, defaults (records, stats)", ours, vbt_sweep["seconds"] / ours["seconds"])
    stats_only = run_case("ours", bars, cols, "stats")
    line("ours, statistics only (per_bar=False)", stats_only, vbt_sweep["seconds"] / stats_only["seconds"])
    equity = run_case("ours", bars, cols, "equity")
    line("ours, per-bar equity kept", equity, vbt_value["seconds"] / equity["seconds"])
    plain = run_case("plain", bars, cols, "final")
    plain_kept = run_case("plain", bars, cols, "equity")
    line("plain numba loop, final equity", plain)
    line("plain numba loop, per-bar equity", plain_kept)
    print(f"ours / plain loop per column-bar: {ours['seconds'] / plain['seconds']:.1f}× (final), "
          f"{equity['seconds'] / plain_kept['seconds']:.1f}× (per-bar equity)\n")

    print("scaling, statistics only (time, peak memory):")
    column_sizes = [10, 100, 1000] + ([] if args.quick else [10_000])
    for n_cols in column_sizes:
        out = run_case("ours", 10_000, n_cols, "stats")
        print(f"  {n_cols:>6} columns × 10,000 bars   {out['seconds']:7.3f} s  "
              f"{out['seconds'] / (10_000 * n_cols) * 1e9:6.1f} ns/col-bar  {out['peak_mib']:6.0f} MiB")
    bar_sizes = [10_000, 100_000] + ([] if args.quick else [1_000_000])
    for n_bars in bar_sizes:
        out = run_case("ours", n_bars, 100, "stats")
        print(f"  100 columns × {n_bars:>9,} bars   {out['seconds']:7.3f} s  "
              f"{out['seconds'] / (100 * n_bars) * 1e9:6.1f} ns/col-bar  {out['peak_mib']:6.0f} MiB")
    print("\nportfolios, statistics only: 100 cross accounts, each trading every instrument:")
    for n_instruments in (1, 3, 10):
        out = run_case("portfolio", bars, 100, str(n_instruments))
        leg_bars = bars * 100 * n_instruments
        print(f"  {n_instruments:>2} instrument(s) per account   {out['seconds']:7.3f} s  "
              f"{out['seconds'] / leg_bars * 1e9:6.1f} ns/leg-bar  {out['peak_mib']:6.0f} MiB")
    combos, sweep_bars = (100, 100_000) if args.quick else (1000, 1_000_000)
    sweep = run_case("sweep", sweep_bars, combos, "stats")
    print(f"\nStrategy.sweep, {combos} combinations × {sweep_bars:,} bars (hooks included): "
          f"{sweep['seconds']:.1f} s, peak {sweep['peak_mib']:.0f} MiB")
    single = run_case("single", 1_000_000 if not args.quick else 100_000, 1, "default")
    print(f"single run, {1_000_000 if not args.quick else 100_000:,} bars, warm: "
          f"{single['seconds'] * 1000:.0f} ms (incl. stats)")
    print(f"fresh process → first result: warm numba cache {first_result(False):.1f} s, "
          f"cold (compiling) {first_result(True):.1f} s")


if __name__ == "__main__":
    main()
