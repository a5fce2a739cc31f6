"""The example notebooks execute from top to bottom, so they cannot rot."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


@pytest.mark.parametrize("name", ["quickstart.ipynb", "leverage_and_liquidation.ipynb",
                                  "cross_margin_cascade.ipynb", "which_leverage_survives.ipynb"])
def test_notebook_executes(name, tmp_path):
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    # a kernel spec for *this* interpreter, so the notebook sees the installed package
    spec_dir = tmp_path / "kernels" / "backtest-test"
    spec_dir.mkdir(parents=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "backtest", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    manager = KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")])
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    kernel = KernelManager(kernel_name="backtest-test", kernel_spec_manager=manager)
    client = NotebookClient(notebook, km=kernel, timeout=300,
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs
              if o.get("output_type") == "error"]
    assert errors == []
