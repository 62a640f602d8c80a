"""Every notebook in notebooks/ runs top to bottom on its smoke settings, so a broken one fails CI
by name.

The notebooks are jupytext percent files (`notebooks/NN_name.py`). Each is converted to a notebook
in a temporary folder, its `out_dir` parameter pointed at that folder (a cell added after the
one tagged "parameters", as papermill does), and executed by nbclient in a kernel that runs this
interpreter (`sys.executable`), with the repository root as working directory and MPLBACKEND=Agg,
TQDM_DISABLE=1. The executed notebook is kept beside the outputs, for reading a failure.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import jupytext
import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
KERNEL = "linattn-notebooks"
CELL_TIMEOUT = 300  # seconds per cell; a smoke notebook takes seconds in all


def test_notebooks_exist():
    assert len(NOTEBOOKS) >= 6, f"expected the six study notebooks in {ROOT / 'notebooks'}, found {NOTEBOOKS}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_one_parameters_cell_with_smoke_switch(path):
    nb = jupytext.read(path)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: {len(tagged)} cells tagged parameters, want exactly 1"
    source = tagged[0].source
    assert "smoke = True" in source, f"{path.name}: the parameters cell must set `smoke = True`"
    assert "out_dir = " in source, f"{path.name}: the parameters cell must define `out_dir`"


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    """A kernel spec that starts this interpreter, first on JUPYTER_PATH; plus the notebooks' env."""
    home = tmp_path_factory.mktemp("jupyter")
    spec = home / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"Python ({sys.executable})", "language": "python",
    }))
    env = {"JUPYTER_PATH": os.pathsep.join([str(home), os.environ.get("JUPYTER_PATH", "")]).rstrip(os.pathsep),
           "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "IPYTHONDIR": str(home / "ipython"),
           "MPLBACKEND": "Agg", "TQDM_DISABLE": "1"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        argv = KernelSpecManager().get_kernel_spec(KERNEL).argv
        assert argv[0] == sys.executable, f"kernel {KERNEL} resolves to {argv[0]}, not {sys.executable}"
        yield KERNEL
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, kernel, tmp_path):
    nb = jupytext.read(path)
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    injected = nbformat.v4.new_code_cell(f"smoke = True\nout_dir = {str(tmp_path / 'out')!r}",
                                         metadata={"tags": ["injected-parameters"]})
    nb.cells.insert(at + 1, injected)
    client = NotebookClient(nb, timeout=CELL_TIMEOUT, startup_timeout=120, kernel_name=kernel,
                            resources={"metadata": {"path": str(ROOT)}})
    t = time.perf_counter()
    try:
        client.execute()
    except CellExecutionError as e:
        pytest.fail(f"{path.name} failed (executed copy: {tmp_path / path.with_suffix('.ipynb').name}):\n{e}",
                    pytrace=False)
    finally:
        nbformat.write(nb, tmp_path / path.with_suffix(".ipynb").name)
    seconds = time.perf_counter() - t
    print(f"{path.name}: {seconds:.1f} s")
    assert any((tmp_path / "out").rglob("*.json")), f"{path.name} wrote no results into out_dir"
