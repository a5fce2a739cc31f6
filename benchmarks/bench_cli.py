"""What a user feels at the terminal: ``backtest run`` on the sample, cold and warm.

    python benchmarks/bench_cli.py           # warm runs (3 repeats) and the import time
    python benchmarks/bench_cli.py --cold    # also a cold numba cache (about a minute)

Each run is a fresh process, exactly the README's main command (the flagship on the 2-year
hourly BTCUSDT sample, its interactive HTML report written), timed from process start to exit;
its peak memory is the child's ``ru_maxrss``. The cold run points numba at an empty cache
folder (``NUMBA_CACHE_DIR``) so it compiles everything, as a fresh install does, and checks
that it says so ("compiling the engine, once").
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BACKTEST = [sys.executable, "-m", "backtest.cli"]
WARM_REPEATS = 3


def timed(argv: list[str], env: dict | None = None) -> tuple[float, float, str]:
    """(seconds, peak MiB of the child, stderr) of one process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stderr}")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return elapsed, max(peak, before) / 1024, done.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cold", action="store_true", help="also time a cold numba cache")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "report.html"
        run = [*BACKTEST, "run", "--report", str(report), "--force"]
        timed(run)  # warm the cache for this source
        warm = [timed(run)[0] for _ in range(WARM_REPEATS)]
        _, peak, _ = timed(run)
        size = report.stat().st_size / 1e6
        imported, _, _ = timed([sys.executable, "-c", "import backtest"])
        print(f"backtest run (sample, report {size:.1f} MB), warm: median {statistics.median(warm):.2f} s "
              f"over {WARM_REPEATS} runs (min {min(warm):.2f} s), peak {peak:.0f} MiB")
        print(f"python -c 'import backtest': {imported:.2f} s")
        if args.cold:
            cache = Path(folder) / "numba-cache"
            cache.mkdir()
            env = {**os.environ, "NUMBA_CACHE_DIR": str(cache)}
            seconds, peak, err = timed(run, env)
            said = "compiling the engine, once" in err
            print(f"backtest run, cold numba cache: {seconds:.1f} s, peak {peak:.0f} MiB; "
                  f"told the user it compiles: {'yes' if said else 'NO'}")
            shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main()
