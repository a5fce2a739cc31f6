"""HTML report speed, memory and file size, measured in one run.

    python benchmarks/bench_report.py            # the sample and 5,000,000 one-minute bars
    python benchmarks/bench_report.py --quick    # the sample and 500,000 bars, to try it

Every case runs in a fresh process (so its peak memory is its own: ``ru_maxrss``), builds its
result first, then times ``write_report`` alone (the first call in the process: reading
plotly.js and rendering the template included, no warm-up):

- **sample**: ``TrendFollowing`` on the 2-year hourly ETHUSDT sample (17,544 bars), the
  interactive report and then the static one (``interactive=False``, matplotlib);
- **long**: a random walk of one-minute bars (fat-tailed returns with a few crash wicks) traded
  by a moving-average crossover at 10x, so there are many trades and liquidations; the
  interactive report.

Printed per case: bars, trades, liquidations, the result's time, the report's time, its file
size, the process's peak memory before the report and at the end, and whether vectorbt got
imported (it costs ~4 s per process; the report does not need it).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
LONG_BARS, QUICK_BARS = 5_000_000, 500_000


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def minute_market(n_bars: int, seed: int = 3):
    """One-minute bars of a fat-tailed random walk with a crash wick every ~100k bars."""
    import backtest

    rng = np.random.default_rng(seed)
    returns = rng.standard_t(4, n_bars) * 0.0006
    close = 2000.0 * np.exp(np.cumsum(returns))
    open_ = np.r_[close[0], close[:-1]]
    wick = np.abs(rng.normal(0.0, 0.0004, n_bars))
    wick[rng.random(n_bars) < 1e-5] = 0.15  # a liquidation cascade's wick
    index = pd.date_range("2016-01-01", periods=n_bars, freq="1min", tz="UTC")
    frame = pd.DataFrame({"open": open_, "high": np.maximum(open_, close) * (1 + wick / 4),
                          "low": np.minimum(open_, close) * (1 - wick),
                          "close": close, "volume": 1.0}, index=index)
    return backtest.Market(frame, symbol="SYNTHUSDT")


def crossover_result(market):
    """A 60/600-bar moving-average crossover, long and short, 10x isolated."""
    import backtest
    from backtest import indicators

    fast, slow = indicators.ma(market.close, 60), indicators.ma(market.close, 600)
    up, down = fast > slow, fast < slow
    cross_up, cross_down = up & ~up.shift(1, fill_value=False), down & ~down.shift(1, fill_value=False)
    return backtest.simulate(market, entries=cross_up, exits=cross_down, short_entries=cross_down,
                             short_exits=cross_up, leverage=10.0, size=1.0, size_type="exposure",
                             fees=0.0004)


def _measure(result, path: Path, interactive: bool, built: float) -> dict:
    from backtest.report import write_report

    before = peak_mib()
    start = time.perf_counter()
    write_report(result, path, interactive=interactive)
    seconds = time.perf_counter() - start
    stats = result.stats()
    return {"bars": len(result.index), "trades": int(stats["trades"]),
            "liquidations": int(stats["liquidations"]), "result_s": built, "report_s": seconds,
            "mb": path.stat().st_size / 1e6, "peak_before_mib": before, "peak_mib": peak_mib(),
            "vectorbt": "vectorbt" in sys.modules}


def case_sample(interactive: bool, out: Path) -> dict:
    import backtest
    from strategies import TrendFollowing

    start = time.perf_counter()
    result = TrendFollowing().run(backtest.load(backtest.sample_path("ETHUSDT")))
    return _measure(result, out, interactive, time.perf_counter() - start)


def case_long(n_bars: int, out: Path) -> dict:
    start = time.perf_counter()
    result = crossover_result(minute_market(n_bars))
    return _measure(result, out, True, time.perf_counter() - start)


def run_case(*args: str) -> dict:
    command = [sys.executable, __file__, "--case", *args]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    if done.returncode != 0:
        raise RuntimeError(f"case {args} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_BARS:,} bars instead of {LONG_BARS:,}")
    parser.add_argument("--case", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:  # inside the fresh process of one case
        sys.path.insert(0, str(REPO))
        kind, out = args.case[0], Path(args.case[-1])
        if kind == "long":
            row = case_long(int(args.case[1]), out)
        else:
            row = case_sample(kind == "sample", out)
        print(json.dumps(row))
        return
    n_bars = QUICK_BARS if args.quick else LONG_BARS
    print(f"{'case':<34}{'bars':>11}{'trades':>8}{'liqs':>6}{'result':>9}{'report':>9}{'size':>10}"
          f"{'peak before':>13}{'peak':>10}  vectorbt")
    with tempfile.TemporaryDirectory() as folder:
        cases = [("sample, interactive", ("sample",)), ("sample, static", ("sample-static",)),
                 (f"{n_bars:,} 1-min bars, interactive", ("long", str(n_bars)))]
        for name, case in cases:
            row = run_case(*case, str(Path(folder) / "report.html"))
            print(f"{name:<34}{row['bars']:>11,}{row['trades']:>8,}{row['liquidations']:>6,}"
                  f"{row['result_s']:>8.2f}s{row['report_s']:>8.2f}s{row['mb']:>7.2f} MB"
                  f"{row['peak_before_mib']:>9.0f} MiB{row['peak_mib']:>6.0f} MiB  "
                  f"{'imported' if row['vectorbt'] else 'no'}")


if __name__ == "__main__":
    main()
