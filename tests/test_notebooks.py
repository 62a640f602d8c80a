"""Every notebook in notebooks/ runs top to bottom on its smoke settings, so a broken one fails CI
by name.

The notebooks are jupytext percent files (`notebooks/NN_name.py`). Each is converted to a notebook
in a temporary folder, its `out_dir` parameter pointed at that folder (a cell added after the
one tagged "parameters", as papermill does), and executed by nbclient in a kernel that runs this
interpreter (`sys.executable`), with the repository root as working directory and MPLBACKEND=Agg,
TQDM_DISABLE=1. The executed notebook is kept beside the outputs, for reading a failure.
"""

from __future__ import annotations

import ast
import json
import os
import sys
import time
from pathlib import Path

import jupytext
import nbformat
import numpy as np
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

from linattn import reference
from linattn.config import ModelConfig
from linattn.weights import init_params
from replication import forms, roofline, speed
from replication.claims import scaling

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


# What only the library does: clocks, frameworks (backends come through linattn.backends.get_backend),
# and the calls that time or step a model.
NOT_IN_NOTEBOOKS_MODULES = ("time", "timeit", "torch", "jax")
BACKEND_MODULES = {"torch_backend", "jax_backend", "julia_backend"}
NOT_IN_NOTEBOOKS_CALLS = {"perf_counter", "time_ns", "time_window", "time_attention", "uncached_step", "timed_generate",
                          "forward_step", "step"}


def forbidden(source: str) -> tuple[list, list]:
    """The modules (or `from` imports) and the calls of `source` that a notebook must leave to the library."""
    tree = ast.parse(source)
    modules = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    modules |= {f"{n.module}.{a.name}" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
    called = {n.func.attr if isinstance(n.func, ast.Attribute) else getattr(n.func, "id", None)
              for n in ast.walk(tree) if isinstance(n, ast.Call)}
    return (sorted(m for m in modules if m.split(".")[0] in NOT_IN_NOTEBOOKS_MODULES or BACKEND_MODULES & set(m.split("."))),
            sorted(called & NOT_IN_NOTEBOOKS_CALLS))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebooks_import_and_call(path):
    """A notebook defines no measurement loop of its own: it imports no clock and no framework and
    calls nothing that times or steps a model; `replication` and `linattn` do (notebook 01's forms
    and cost per step, notebook 04's in-process scaling run)."""
    modules, calls = forbidden(path.read_text())
    assert not modules, f"{path.name} imports {modules}"
    assert not calls, f"{path.name} calls {calls}"


def test_the_notebook_rule_sees_what_it_forbids():
    source = ("import time\nfrom linattn import torch_backend as tb\nfrom linattn.backends import get_backend\n"
              "t = time.perf_counter()\ntb.time_window(m)\nget_backend('torch').generate(m)\n")
    assert forbidden(source) == (["linattn.torch_backend", "time"], ["perf_counter", "time_window"])


# --- what the notebooks call, at toy sizes (the notebooks themselves run below, marked slow) -----------


def test_the_attention_forms_agree_and_a_wrong_one_shows():
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((2, 11, 2, 4)) for _ in range(3))
    outs = forms.attention_forms(q, k, v, chunk_size=4)
    assert {"softmax: reference KV cache", "linear: reference recurrent", "softmax: torch softmax",
            "softmax: torch softmax-fused", "softmax: torch softmax-chunked", "softmax: torch softmax, recurrent twin",
            "linear: torch linear", "linear: torch linear, recurrent twin", "linear: torch linear in chunks of 4",
            "linear-favor: reference recurrent", "linear-favor: torch linear-favor",
            "linear-favor: torch linear-favor, recurrent twin"} <= set(outs)
    assert not any(n.startswith("softmax: torch softmax-fused, recurrent") for n in outs)  # one twin for all softmax kinds
    rows = forms.differences(outs)
    assert [r["form"] for r in rows] == list(outs)
    assert max(r["max_abs_difference"] for r in rows) < 1e-10
    wrong = {**outs, "linear: torch linear": outs["linear: torch linear"] + 1e-3}
    assert {r["form"]: r["max_abs_difference"] for r in forms.differences(wrong)}["linear: torch linear"] > 9e-4


@pytest.mark.parametrize("attention", ["softmax", "linear"])
def test_step_by_step_difference_of_the_reference_model(attention):
    config = ModelConfig(attention=attention, n_layers=1, n_heads=2, d_model=8, image_shape=(3, 2, 1), dropout=0.0)
    tokens = reference.input_tokens(np.random.default_rng(1).integers(0, 256, (2, config.seq_len)))
    assert forms.step_by_step_difference(init_params(config, 0), config, tokens) < 1e-10


def test_state_bytes_per_image():
    config = ModelConfig(n_layers=2, n_heads=2, d_model=8)  # head size 4
    t = np.arange(3)
    np.testing.assert_array_equal(roofline.state_bytes(config, "softmax-cached", t), 2 * 2 * (t + 1) * 8 * 4)  # K, V
    np.testing.assert_array_equal(roofline.state_bytes(config, "linear-recurrent", t), [2 * 2 * (4 * 4 + 4) * 4] * 3)
    np.testing.assert_array_equal(roofline.state_bytes(config, "softmax-uncached", t), [0, 0, 0])


@pytest.mark.parametrize("mode", ["linear-recurrent", "softmax-uncached"])
def test_cost_per_step(mode):
    machine = {"bandwidth_GBps": 10.0, "gemm_GFLOPs": 100.0}
    c = speed.cost_per_step("torch", "mnist", mode, batch=1, positions=2, steps=2, repeats=1, machine=machine)
    assert c["T"] == 784 and c["positions"] == [0, 782]
    assert len(c["seconds_per_step"]) == 2 and all(s > 0 for s in c["seconds_per_step"])
    floor = c["roofline_seconds_per_step"]
    assert len(floor) == 784 and all(f > 0 for f in floor)
    np.testing.assert_allclose(sum(floor), roofline.roofline_seconds_per_image(ModelConfig.from_dict(c["config"]), mode, 1,
                                                                               machine)["roofline_seconds_per_image"])


def test_scaling_measured_in_process_gives_the_summary_rows():
    rows = scaling.measure_in_process("torch", ["softmax", "linear"], [16, 32], n_heads=2, d_head=4, tokens_per_batch=32,
                                      repeats=1, threads=1)
    assert [(r["attention"], r["T"], r["batch"]) for r in rows] == [("softmax", 16, 2), ("softmax", 32, 1),
                                                                    ("linear", 16, 2), ("linear", 32, 1)]
    for r in rows:
        assert r["status"] == "ok" and r["seconds_per_sequence"] == r["seconds"] / r["batch"] > 0
        assert r["peak_memory_bytes"] is None and r["estimated_memory_bytes"] > 0 and len(r["repeats"]) == 1
    assert {(f["backend"], f["attention"]) for f in scaling.fit(rows)} == {("torch", "softmax"), ("torch", "linear")}


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


@pytest.mark.slow
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
