"""The example notebooks execute from top to bottom, so they cannot rot; the committed files
carry their outputs (they read on GitHub) and match the script that writes them."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
_spec = importlib.util.spec_from_file_location("build_notebooks", NOTEBOOKS / "build_notebooks.py")
build_notebooks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build_notebooks)
NAMES = list(build_notebooks.NOTEBOOKS)


def _code_cells(notebook):
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def _text(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        parts.append(output.get("text", ""))
        parts.append(output.get("data", {}).get("text/plain", ""))
    return "".join(parts)


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """Each notebook executed once (lazily), from its committed file."""
    done = {}

    def run(name):
        if name not in done:
            notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
            for cell in _code_cells(notebook):
                cell.outputs, cell.execution_count = [], None
            done[name] = build_notebooks.execute(notebook, tmp_path_factory.mktemp("kernels"))
        return done[name]

    return run


@pytest.mark.parametrize("name", NAMES)
def test_notebook_executes(name, executed):
    errors = [o for c in _code_cells(executed(name)) for o in c.outputs
              if o.get("output_type") == "error"]
    assert errors == []


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebook_matches_its_script_and_carries_outputs(name):
    committed = nbformat.read(NOTEBOOKS / name, as_version=4)
    expected = build_notebooks.build(name)
    assert [c.source for c in committed.cells] == [c.source for c in expected.cells], \
        f"{name} differs from notebooks/build_notebooks.py: run the script"
    for cell in _code_cells(committed):
        assert cell.execution_count is not None, f"{name}: a cell was not executed"
    assert all(o.get("output_type") != "error" for c in _code_cells(committed) for o in c.outputs)
    assert (NOTEBOOKS / name).stat().st_size < 2_000_000  # no inlined plotly library


def test_quickstart_picks_the_highest_value_of_the_metric_it_names(executed):
    import backtest
    from strategies import TrendFollowing

    notebook = executed("quickstart.ipynb")
    line = next(_text(c) for c in _code_cells(notebook) if "best by sharpe" in _text(c))
    fast, slow = map(int, re.search(r"fast=(\d+), slow=(\d+)", line).groups())
    stats = TrendFollowing().run(backtest.load(backtest.sample_path("BTCUSDT")),
                                 fast=[12, 24, 48], slow=[120, 240]).stats()
    assert (fast, slow) == stats["sharpe"].idxmax()
    assert stats.loc[(fast, slow), "sharpe"] == stats["sharpe"].max()


@pytest.mark.parametrize("name", ["leverage_and_liquidation.ipynb", "cross_margin_cascade.ipynb",
                                  "which_leverage_survives.ipynb"])
def test_the_charts_appear(name, executed):
    images = [o for c in _code_cells(executed(name)) for o in c.outputs
              if "image/png" in o.get("data", {})]
    assert images, f"{name}: no chart in the outputs"
    last = _code_cells(executed(name))[-1] if name == "leverage_and_liquidation.ipynb" else None
    if last is not None:
        assert any("image/png" in o.get("data", {}) for o in last.outputs)
