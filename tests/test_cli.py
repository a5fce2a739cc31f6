"""The backtest command end to end: exit codes 0, 1 (gate) and 2 (bad input)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from backtest.cli import main, parse_value


def test_run_writes_report_and_json_and_exits_0(small_data, in_tmp, capsys):
    code = main(["run", "--data", str(small_data), "--param", "fast=12", "--param", "slow=48",
                 "--json", "stats.json"])
    assert code == 0
    out = capsys.readouterr().out
    assert "report: reports/TrendFollowing-BTCUSDT.html" in out
    assert (in_tmp / "reports" / "TrendFollowing-BTCUSDT.html").is_file()
    stats = json.loads((in_tmp / "stats.json").read_text())
    assert "max_drawdown" in stats


def test_gate_that_trips_exits_1(small_data, in_tmp, capsys):
    code = main(["run", "--data", str(small_data), "--param", "slow=48", "--fail-on", "trades>=0"])
    assert code == 1
    assert "gate tripped: trades=" in capsys.readouterr().err


def test_gate_that_holds_exits_0(small_data, in_tmp):
    assert main(["run", "--data", str(small_data), "--param", "slow=48", "--fail-on", "liquidations>1000"]) == 0


@pytest.mark.parametrize("argv, message", [
    (["run", "nosuchmodule:Thing"], "cannot be imported"),
    (["run", "strategies:NotThere"], "is not a Strategy subclass"),
    (["run", "--param", "fast"], "expected key=value"),
    (["run", "--param", "fsat=3"], "did you mean 'fast'"),
    (["run", "--param", "fast=-4"], "parameter 'fast' must be >= 2"),
    (["run", "--fail-on", "drawdown!!3"], "expected METRIC OP NUMBER"),
    (["run", "--data", "missing.csv"], "missing.csv"),
    (["data", "validate", "missing.csv"], "missing.csv"),
])
def test_bad_input_exits_2_with_one_line(argv, message, in_tmp, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and message in err[0]


def test_bad_data_row_is_named(in_tmp, capsys):
    (in_tmp / "bad.csv").write_text("timestamp,open,high,low,close\n"
                                    "2025-01-01T00:00Z,1,2,0.5,1.5\n2025-01-01T01:00Z,1,0.9,0.5,1.5\n")
    assert main(["data", "validate", "bad.csv"]) == 2
    err = capsys.readouterr().err
    assert "bad.csv: column high, row 2 (line 3 of the file)" in err


def test_unknown_gate_metric_exits_2(small_data, in_tmp, capsys):
    assert main(["run", "--data", str(small_data), "--param", "slow=48", "--fail-on", "sharp>1"]) == 2
    assert "unknown metric 'sharp'" in capsys.readouterr().err


def test_existing_report_is_never_silently_overwritten(small_data, in_tmp, capsys):
    args = ["run", "--data", str(small_data), "--param", "slow=48"]
    assert main(args) == 0
    first = in_tmp / "reports" / "TrendFollowing-BTCUSDT.html"
    first.write_text("mine")
    assert main(args) == 0
    assert first.read_text() == "mine"
    assert (in_tmp / "reports" / "TrendFollowing-BTCUSDT-1.html").is_file()
    assert main([*args, "--report", str(first)]) == 2
    assert first.read_text() == "mine"
    assert main([*args, "--report", str(first), "--force"]) == 0
    assert first.read_text() != "mine"


def test_strategy_from_a_file(small_data, in_tmp):
    (in_tmp / "mine.py").write_text(
        "from backtest import Strategy\n"
        "class Breakout(Strategy):\n"
        "    window: int = 24\n"
        "    def signals(self, market):\n"
        "        upper = market.high.rolling(self.window).max().shift(1)\n"
        "        return {'entries': market.close > upper, 'exits': market.close < upper * 0.97}\n")
    assert main(["run", "mine.py:Breakout", "--data", str(small_data), "--grid", "window=12,24"]) == 0


def test_values_are_parsed_to_types():
    assert [parse_value(v) for v in ("3", "0.5", "true", "abc")] == [3, 0.5, True, "abc"]


def test_console_script_runs_in_a_subprocess(small_data, in_tmp):
    script = shutil.which("backtest") or str(__import__("pathlib").Path(sys.executable).with_name("backtest"))
    done = subprocess.run([script, "run", "--data", str(small_data), "--param", "slow=48",
                           "--fail-on", "trades>=0"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    bad = subprocess.run([script, "run", "--param", "nonsense"], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
