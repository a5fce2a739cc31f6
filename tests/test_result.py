"""Result statistics stand on their own: no strategy or indicator needs to have imported vectorbt."""

from __future__ import annotations

import subprocess
import sys


def test_stats_work_in_a_fresh_process_without_indicators():
    code = (
        "import numpy as np, pandas as pd, backtest\n"
        "idx = pd.date_range('2024', periods=200, freq='h', tz='UTC')\n"
        "close = 100 + np.sin(np.arange(200) / 5)\n"
        "m = backtest.Market(pd.DataFrame({'open': close, 'high': close + 1, 'low': close - 1,"
        " 'close': close}, index=idx))\n"
        "e = np.zeros(200, bool); e[5] = True\n"
        "r = backtest.simulate(m, entries=e)\n"
        "s = r.stats(); d = r.drawdowns()\n"
        "print(s['trades'], len(d) >= 1)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["0", "True"]
