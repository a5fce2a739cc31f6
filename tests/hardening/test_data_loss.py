"""Nothing a user owns is lost: outputs never replace inputs or existing files unasked, two
outputs never share a path, names are claimed before the run, and writes are atomic."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from backtest.outputs import OutputError, check_output, claim_output, write_atomic

from .conftest import assert_bad_input

QUICK = ("--param", "slow=48")


# ----- 1. every output follows the report's rule; an input is never an output ---------------------


def test_json_never_replaces_an_existing_file_without_force(small_data, in_tmp, cli):
    mine = in_tmp / "mydata.csv"
    mine.write_text("a,b\n1,2\n")
    code, _, err = cli("run", "--data", small_data, *QUICK, "--json", "mydata.csv")
    assert_bad_input(code, err, "--json mydata.csv exists", "--force")
    assert mine.read_text() == "a,b\n1,2\n"
    assert not any((in_tmp / "reports").glob("*.html"))  # refused before the run, nothing written


def test_json_replaces_an_existing_file_with_force(small_data, in_tmp, cli):
    old = in_tmp / "stats.json"
    old.write_text("{}")
    code, _, _ = cli("run", "--data", small_data, *QUICK, "--json", old, "--force")
    assert code == 0
    assert "max_drawdown" in old.read_text()


@pytest.mark.parametrize("flag", ["--json", "--report"])
def test_an_output_equal_to_the_data_is_refused_even_with_force(small_data, in_tmp, cli, flag):
    copy = in_tmp / "BTCUSDT-1h.parquet"
    copy.write_bytes(small_data.read_bytes())
    before = copy.read_bytes()
    code, _, err = cli("run", "--data", copy, *QUICK, flag, copy, "--force")
    assert_bad_input(code, err, "is the --data input", "even with --force")
    assert copy.read_bytes() == before


@pytest.mark.parametrize("flag", ["--funding", "--mark"])
def test_an_output_equal_to_funding_or_mark_input_is_refused(small_data, in_tmp, cli, flag):
    side = in_tmp / "side.csv"
    side.write_text("timestamp,rate\n")
    code, _, err = cli("run", "--data", small_data, flag, side, "--json", side, "--force")
    assert_bad_input(code, err, f"is the {flag} input")
    assert side.read_text() == "timestamp,rate\n"


def test_the_strategy_file_is_never_an_output(small_data, in_tmp, cli):
    source = ("from strategies import TrendFollowing\n"
              "class Mine(TrendFollowing):\n    pass\n")
    (in_tmp / "mine.py").write_text(source)
    code, _, err = cli("run", "mine.py:Mine", "--data", small_data, "--report", "mine.py", "--force")
    assert_bad_input(code, err, "is the strategy input")
    assert (in_tmp / "mine.py").read_text() == source


# ----- 2. two outputs on one path ------------------------------------------------------------------


def test_report_and_json_on_one_path_are_refused(small_data, in_tmp, cli):
    code, _, err = cli("run", "--data", small_data, *QUICK, "--report", "r.html", "--json", "r.html")
    assert_bad_input(code, err, "--json and --report are both r.html")
    assert not (in_tmp / "r.html").exists()


# ----- 3. names are claimed before the run, atomically ---------------------------------------------


def test_claiming_a_taken_name_moves_on_to_the_next_number(tmp_path):
    first = claim_output(tmp_path / "r.html", what="report", numbered=True)
    second = claim_output(tmp_path / "r.html", what="report", numbered=True)
    assert (first.path.name, second.path.name) == ("r.html", "r-1.html")
    with pytest.raises(OutputError, match="exists"):
        claim_output(tmp_path / "r.html", what="--report")


def test_two_runs_started_together_write_two_reports(small_data, in_tmp):
    command = [sys.executable, "-m", "backtest.cli", "run", "--data", str(small_data), *QUICK]
    runs = [subprocess.Popen(command, cwd=in_tmp, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=600) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    paths = [line.split("report: ", 1)[1] for out, _ in outputs for line in out.splitlines()
             if line.startswith("report: ")]
    assert len(set(paths)) == 2
    for path in paths:
        assert (in_tmp / path).stat().st_size > 10_000


def test_a_failed_run_gives_its_claimed_name_back(small_data, in_tmp, cli):
    (in_tmp / "broken.py").write_text(
        "from backtest import Strategy\n"
        "class Broken(Strategy):\n"
        "    def signals(self, market):\n"
        "        raise KeyError('close2')\n")
    code, _, err = cli("run", "broken.py:Broken", "--data", small_data, "--report", "out.html",
                       "--json", "out.json")
    assert_bad_input(code, err, "Broken.signals() raised KeyError")
    assert not (in_tmp / "out.html").exists() and not (in_tmp / "out.json").exists()


# ----- 4. atomic writes ----------------------------------------------------------------------------


def test_an_interrupted_write_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    target = tmp_path / "report.html"
    target.write_text("old report")

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, "x" * 1_000_000)
    assert target.read_text() == "old report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]


def test_an_interrupted_run_leaves_no_report(small_data, in_tmp, cli, monkeypatch):
    import backtest.report

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(backtest.report, "render_report", interrupted)
    code, _, err = cli("run", "--data", small_data, *QUICK, "--report", "r.html")
    assert code == 130 and "interrupted" in err
    assert list(in_tmp.iterdir()) == []


def test_the_python_api_writes_reports_atomically(small_data, tmp_path, monkeypatch):
    import backtest
    from strategies import TrendFollowing

    result = TrendFollowing(slow=48).run(backtest.load(small_data))
    target = tmp_path / "r.html"
    target.write_text("previous")
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        result.report(target, force=True)
    assert target.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["r.html"]


def test_check_output_refuses_the_same_file_under_another_name(tmp_path):
    data = tmp_path / "data.csv"
    data.write_text("x")
    link = tmp_path / "link.csv"
    link.symlink_to(data)
    with pytest.raises(OutputError, match="is the --data input"):
        check_output(link, what="--json", inputs=[("--data", data)])
    assert Path(data).read_text() == "x"
