"""Engine speed against vectorbt, measured in one run.

    python benchmarks/bench_engine.py                       # 1000 columns × 100k bars (the issue's size)
    python benchmarks/bench_engine.py --columns 100 --bars 10000

Both engines get the same random prices and signals, a 5% stop-loss checked on OHLC and fees.
Ours also models margin, maintenance tiers, liquidation and funding (a constant 0.01% every 8 h),
and keeps only equity per bar (``per_bar=False``, the other per-bar arrays cost memory, not
time); vectorbt's ``from_signals`` returns order records and computes value on demand, so its
timing includes ``.value()`` to produce the same output. Each is run once to compile and then
timed (best of ``--repeat``). Prints a ratio > 1 when ours is faster.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd

STOP_LOSS = 0.05
FEES = 0.0005
SIGNAL_PROBABILITY = 0.01


def make_inputs(n_bars: int, n_cols: int, seed: int = 42):
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.004, n_bars)))
    open_ = np.r_[close[0], close[:-1]]
    spread = np.abs(rng.normal(0.0, 0.002, n_bars)) * close
    index = pd.date_range("2015-01-01", periods=n_bars, freq="1h", tz="UTC")
    ohlc = pd.DataFrame({"open": open_, "high": np.maximum(open_, close) + spread,
                         "low": np.minimum(open_, close) - spread, "close": close}, index=index)
    # column-major signal arrays (bars × columns): each column's bars are contiguous
    entries = np.asfortranarray(rng.random((n_bars, n_cols)) < SIGNAL_PROBABILITY)
    exits = np.asfortranarray(rng.random((n_bars, n_cols)) < SIGNAL_PROBABILITY)
    return ohlc, entries, exits


def best_time(function, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def run_ours(market, entries, exits):
    import backtest

    return backtest.simulate(market, entries=entries, exits=exits, sl_stop=STOP_LOSS, fees=FEES,
                             timing="close", leverage=3.0, funding=0.0001, per_bar=False).equity


def run_vectorbt(ohlc, entries, exits):
    import vectorbt as vbt

    pf = vbt.Portfolio.from_signals(ohlc["close"], entries, exits, open=ohlc["open"],
                                    high=ohlc["high"], low=ohlc["low"], sl_stop=STOP_LOSS,
                                    fees=FEES, freq="1h")
    return pf.value()


def first_result_seconds() -> float:
    """A fresh interpreter: import, load a small market, simulate (numba cache warm)."""
    code = textwrap.dedent("""
        import time; start = time.perf_counter()
        import numpy as np, pandas as pd, backtest
        idx = pd.date_range("2024", periods=1000, freq="h", tz="UTC")
        close = 100 + np.sin(np.arange(1000) / 10)
        m = backtest.Market(pd.DataFrame({"open": close, "high": close + 1, "low": close - 1,
                                          "close": close}, index=idx))
        e = np.zeros(1000, bool); e[10] = True
        backtest.simulate(m, entries=e, sl_stop=0.05, leverage=3).equity.iloc[-1]
        print(time.perf_counter() - start)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--columns", type=int, default=1000)
    parser.add_argument("--bars", type=int, default=100_000)
    parser.add_argument("--single-bars", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-vectorbt", action="store_true")
    args = parser.parse_args(argv)

    import backtest

    ohlc, entries, exits = make_inputs(args.bars, args.columns)
    market = backtest.Market(ohlc, validate=False)
    run_ours(market[:500], entries[:500, :2], exits[:500, :2])  # compile / load the cache
    ours = best_time(lambda: run_ours(market, entries, exits), args.repeat)
    print(f"sweep {args.columns} columns × {args.bars} bars (5% stop-loss, fees)")
    print(f"  ours (margin, tiers, liquidation, funding): {ours:8.3f} s")
    if not args.skip_vectorbt:
        run_vectorbt(ohlc.iloc[:500], entries[:500, :2], exits[:500, :2])
        theirs = best_time(lambda: run_vectorbt(ohlc, entries, exits), args.repeat)
        print(f"  vectorbt from_signals + value():           {theirs:8.3f} s")
        print(f"  ratio vectorbt / ours:                     {theirs / ours:8.2f}x")

    single_ohlc, single_entries, single_exits = make_inputs(args.single_bars, 1, seed=7)
    single_market = backtest.Market(single_ohlc, validate=False)
    run_ours(single_market, single_entries, single_exits)
    single = best_time(lambda: run_ours(single_market, single_entries, single_exits), args.repeat)
    print(f"single backtest, {args.single_bars} bars, warm: {single * 1000:8.1f} ms")
    print(f"fresh process to first result (warm numba cache): {first_result_seconds():.2f} s")


if __name__ == "__main__":
    main()
