"""One-line errors instead of tracebacks (exit 2), checked before the run where they can be."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

import backtest
from backtest.cli import check_memory, main

from .conftest import assert_bad_input

MARKER = "hooks-were-called"
TOUCHING = ("from pathlib import Path\n"
            "from strategies import TrendFollowing\n"
            "class Touch(TrendFollowing):\n"
            "    def signals(self, market):\n"
            f"        Path('{MARKER}').write_text('x')\n"
            "        return super().signals(market)\n")


# ----- 12. strategy files that cannot be used ------------------------------------------------------


@pytest.mark.parametrize(("source", "fragments"), [
    ("raise RuntimeError('boom')\n", ["strategy file bad.py raised RuntimeError while being imported: boom"]),
    ("def broken(:\n", ["strategy file bad.py: syntax error at line 1"]),
    ("import not_a_real_package_xyz\n", ["strategy file bad.py cannot be imported",
                                         "is 'not_a_real_package_xyz' installed?"]),
    ("import sys\nsys.exit(3)\n", ["strategy file bad.py called sys.exit(3) while being imported"]),
    ("Thing = 42\n", ["'Thing' is not a Strategy subclass in bad.py"]),
    ("from backtest import Strategy\nclass Thing(Strategy):\n    pass\n",
     ["Thing does not define signals(market)"]),
])
def test_a_strategy_file_that_cannot_be_used_is_one_line(in_tmp, cli, source, fragments):
    (in_tmp / "bad.py").write_text(source)
    code, _, err = cli("run", "bad.py:Thing")
    assert_bad_input(code, err, *fragments)


def test_a_strategy_whose_constructor_fails_is_one_line(in_tmp, cli):
    (in_tmp / "bad.py").write_text("from backtest import Strategy\n"
                                   "class Thing(Strategy):\n"
                                   "    def __init__(self, **kw):\n"
                                   "        raise TypeError('needs a config')\n"
                                   "    def signals(self, market):\n"
                                   "        return {}\n")
    code, _, err = cli("run", "bad.py:Thing")
    assert_bad_input(code, err, "Thing(...) cannot be created: TypeError: needs a config")


# ----- 13. outputs and gates checked before the run -------------------------------------------------


@pytest.mark.parametrize(("flag", "path", "fragment"), [
    ("--report", "a_folder", "--report a_folder is a directory"),
    ("--json", "no/such/dir/s.json", "the directory no/such/dir does not exist"),
    ("--report", "no/such/r.html", "the directory no/such does not exist"),
])
def test_unwritable_outputs_are_refused_before_the_run(small_data, in_tmp, cli, flag, path, fragment):
    (in_tmp / "a_folder").mkdir()
    (in_tmp / "touch.py").write_text(TOUCHING)
    code, _, err = cli("run", "touch.py:Touch", "--data", small_data, flag, path)
    assert_bad_input(code, err, fragment)
    assert not (in_tmp / MARKER).exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write to read-only directories")
def test_a_read_only_directory_is_refused_before_the_run(small_data, in_tmp, cli):
    locked = in_tmp / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code, _, err = cli("run", "--data", small_data, "--json", locked / "s.json")
        assert_bad_input(code, err, "is not writable")
    finally:
        locked.chmod(0o700)


def test_a_directory_the_user_cannot_write_is_refused_before_the_run(small_data, in_tmp, cli,
                                                                      monkeypatch):
    """The same check as above, where the tests run as root (who may write anywhere)."""
    (in_tmp / "locked").mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if str(path).endswith("locked")
                        else real_access(path, mode))
    code, _, err = cli("run", "--data", small_data, "--json", "locked/s.json")
    assert_bad_input(code, err, "the directory locked is not writable")


@pytest.mark.parametrize(("gate", "fragment"), [
    ("start>0", "start is a date, not a number"),
    ("max_drawdown_duration>5", "max_drawdown_duration is a duration, not a number"),
    ("sharp>1", "unknown metric 'sharp'; did you mean 'sharpe'?"),
    ("sharpe>1.2.3", "'1.2.3' is not a number"),
    ("sharpe>nan", "the limit is NaN"),
])
def test_bad_gates_are_refused_before_the_run(small_data, in_tmp, cli, gate, fragment):
    (in_tmp / "touch.py").write_text(TOUCHING)
    code, _, err = cli("run", "touch.py:Touch", "--data", small_data, "--fail-on", gate)
    assert_bad_input(code, err, "--fail-on", fragment)
    assert not (in_tmp / MARKER).exists()


# ----- 14. bad input of every other kind ------------------------------------------------------------


def _csv(path, text):
    path.write_text(text)
    return path


HEADER = "timestamp,open,high,low,close\n"
ROW = "2025-01-01T{h:02d}:00Z,1,2,0.5,1.5\n"


@pytest.mark.parametrize(("text", "fragments"), [
    ("timestamp,open,high,low,close,Close\n" + "2025-01-01T00:00Z,1,2,0.5,1.5,1.5\n" * 2,
     ["columns 'close' and 'Close' both mean 'close'"]),
    (HEADER + ROW.format(h=0), ["only 1 bar: a backtest needs at least 2"]),
    (HEADER, ["the file has no data rows"]),
    (HEADER + "99999-01-01T00:00Z,1,2,0.5,1.5\n" + ROW.format(h=1),
     ["column timestamp, row 1 (line 2 of the file)", "unparseable timestamp"]),
])
def test_bad_files_are_named_with_column_and_row(in_tmp, cli, text, fragments):
    _csv(in_tmp / "bad.csv", text)
    for command in (["data", "validate", "bad.csv"], ["run", "--data", "bad.csv"]):
        code, _, err = cli(*command)
        assert_bad_input(code, err, "bad.csv", *fragments)


def test_a_trailing_empty_csv_row_is_ignored(in_tmp, cli):
    _csv(in_tmp / "ok.csv", HEADER + "".join(ROW.format(h=h) for h in range(3)) + ",,,,\n")
    code, out, _ = cli("data", "validate", "ok.csv")
    assert code == 0 and "OK, 3 bars" in out


def test_a_parquet_with_a_datetime_index_loads(in_tmp):
    index = pd.date_range("2025-01-01", periods=5, freq="1h", tz="UTC")
    frame = pd.DataFrame({"open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5}, index=index)
    frame.to_parquet(in_tmp / "indexed.parquet")
    market = backtest.load(in_tmp / "indexed.parquet")
    assert market.index.equals(index.rename("timestamp"))


def test_a_missing_timestamp_names_its_own_row(in_tmp, cli):
    times = pd.to_datetime(["2025-01-01 00:00", "2025-01-01 01:00", None, "2025-01-01 03:00"], utc=True)
    frame = pd.DataFrame({"timestamp": times, "open": 1.0, "high": 2.0, "low": 0.5, "close": 1.5})
    frame.to_parquet(in_tmp / "nat.parquet")
    code, _, err = cli("data", "validate", "nat.parquet")
    assert_bad_input(code, err, "column timestamp, row 3", "missing timestamp (NaT)")


def test_a_folder_without_data_files_as_data_is_named(in_tmp, cli):
    (in_tmp / "folder").mkdir()
    code, _, err = cli("run", "--data", "folder")
    assert_bad_input(code, err, "folder: a folder with no data files")
    code, _, err = cli("data", "validate", "folder")
    assert_bad_input(code, err, "folder: is a directory, not a data file")


@pytest.mark.parametrize(("argv", "fragments"), [
    (["--param", "fast=none"], ["--param", "parameter 'fast' must be an int, got None"]),
    (["--param", "fast=1e"], ["--param", "parameter 'fast' must be an int, got '1e'"]),
    (["--grid", "fast=12,24", "--grid", "fast=6"], ["--grid names 'fast' twice"]),
    (["--param", "fast=12", "--grid", "fast=6,8"], ["'fast' is given by --param and --grid"]),
    (["--grid", "fast=12,,24"], ["--grid 'fast=12,,24': an empty value in the list"]),
])
def test_bad_parameters_name_the_flag(small_data, in_tmp, cli, argv, fragments):
    code, _, err = cli("run", "--data", small_data, *argv)
    assert_bad_input(code, err, *fragments)


def test_a_hook_returning_a_list_is_one_line(small_data, in_tmp, cli):
    (in_tmp / "listy.py").write_text("from backtest import Strategy\n"
                                     "class Listy(Strategy):\n"
                                     "    def signals(self, market):\n"
                                     "        return [market.close > market.open]\n")
    code, _, err = cli("run", "listy.py:Listy", "--data", small_data)
    assert_bad_input(code, err, "Listy.signals() returned a list; it must return a dict")


def test_a_top_level_debug_shows_the_traceback(in_tmp):
    with pytest.raises(FileNotFoundError):
        main(["--debug", "run", "--data", "missing.csv"])
    with pytest.raises(FileNotFoundError):
        main(["run", "--data", "missing.csv", "--debug"])


def test_an_unexpected_error_is_still_one_line(small_data, in_tmp, cli, monkeypatch):
    import backtest.result

    def crash(self, *args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(backtest.result.Result, "stats", crash)
    code, _, err = cli("run", "--data", small_data, "--param", "slow=48")
    assert_bad_input(code, err, "ZeroDivisionError: division by zero", "--debug shows the traceback")


# ----- 15. runs that cannot fit in memory ------------------------------------------------------------


def test_a_grid_that_cannot_fit_is_refused_at_once_with_the_estimate():
    with pytest.raises(Exception, match=r"this run needs about 19.6 GiB \(10,000 column\(s\) × "
                                        r"17,520 bars\) and 16.0 GiB are available"):
        check_memory(10_000, 17_520, available=16 * 2**30)
    check_memory(100, 17_520, available=16 * 2**30)  # 0.2 GiB: fine


def test_the_command_refuses_a_run_too_big_for_one_combination_before_running(
        small_data, in_tmp, cli, monkeypatch):
    import backtest.cli

    monkeypatch.setattr(backtest.cli, "_available_memory", lambda: 2**16)  # < one column's 112 KiB
    (in_tmp / "touch.py").write_text(TOUCHING)
    code, _, err = cli("run", "touch.py:Touch", "--data", small_data, "--grid", "fast=6,12",
                       "--param", "slow=48")
    assert_bad_input(code, err, "this run needs about", "a shorter --data range")
    assert not (in_tmp / MARKER).exists()


def test_a_grid_too_big_for_one_run_switches_to_the_chunked_sweep(small_data, in_tmp, cli,
                                                                   monkeypatch):
    import json

    import backtest.cli

    grid = ",".join(str(v) for v in np.arange(6, 40))  # 34 combinations
    args = ["run", "--data", small_data, "--grid", f"fast={grid}", "--param", "slow=48"]
    code, out, err = cli(*args, "--json", "full.json", "--report", "full.html")
    assert code == 0 and "statistics only" not in err
    monkeypatch.setattr(backtest.cli, "_available_memory", lambda: 2**20)  # fits 7 columns, not 34
    code, out, err = cli(*args, "--json", "swept.json", "--report", "swept.html",
                         "--fail-on", "liquidations>0")
    assert code == 0, err
    assert "do not fit in memory as one run: statistics only, in chunks" in err
    def by_fast(path):
        rows = json.loads((in_tmp / path).read_text())["combinations"]
        return {row["params"]["fast"]: row["stats"] for row in rows}

    full, swept = by_fast("full.json"), by_fast("swept.json")
    assert set(swept) == set(full) and len(full) == 34
    for metric in ("final_equity", "sharpe", "max_drawdown", "trades", "funding_paid"):
        for fast, values in full.items():
            assert swept[fast][metric] == pytest.approx(values[metric], rel=1e-9, abs=1e-9), (metric, fast)
    best = max(full, key=lambda fast: full[fast]["sharpe"])
    html = (in_tmp / "swept.html").read_text()
    assert "Parameter grid: 34 columns" in html and f'data-best-label="{best}"' in html
    assert html.count('data-metric="sharpe"') >= 34
