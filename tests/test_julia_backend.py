"""The Julia backend (`linattn.julia_backend`) against the committed fixtures and against PyTorch.

Julia runs only in worker processes: juliacall must never share a process with torch, which other
test modules import into this one. Importing the backend module here only looks for a Julia
executable; where there is none, every test is skipped with the reason. The first run installs
Flux and the other Julia packages (internet once, minutes).

Float32 samples: a byte can move across a bin edge when its value lies within float32 rounding of
it (and the rest of that image then follows another path), so float32 samples must agree on 95%
of the bytes; float64 samples must agree exactly.
"""

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import CASES, FIXTURES, ROOT, TOLERANCE, load_case
from linattn.backends import BackendUnavailable

try:
    from linattn import julia_backend
except BackendUnavailable as e:
    pytest.skip(f"no Julia for the Julia backend: {e}", allow_module_level=True)

pytestmark = pytest.mark.slow
DTYPES = ("float64", "float32")
WORKER_TIMEOUT = 3600  # the first run installs and precompiles Flux

# Runs in a fresh interpreter: every case and dtype through the backend API, results into one .npz.
WORKER = """
import sys
import numpy as np
from linattn import julia_backend as jb
from linattn.config import ConfigError
from linattn.weights import load_checkpoint

fixtures, out = sys.argv[1], sys.argv[2]
results = {}
for name in sys.argv[3:]:
    config, params = load_checkpoint(f"{fixtures}/{name}")
    with np.load(f"{fixtures}/{name}/expected.npz") as z:
        exp = {k: z[k] for k in z.files}
    for dtype in ("float64", "float32"):
        model = jb.prepare(config, params, dtype=dtype)
        key = f"{name}__{dtype}"
        results[f"{key}__out"] = jb.forward(model, exp["tokens"])
        results[f"{key}__bits_per_dim"] = np.float64(jb.bits_per_dim(model, exp["data"], batch_size=1))
        prefix = np.random.default_rng(5).integers(0, 256, (len(exp["noise"]), config.seq_len // 2))
        for mode in [k.removeprefix("sample_") for k in exp if k.startswith("sample_")]:
            results[f"{key}__sample_{mode}"] = jb.generate(model, mode, exp["noise"])
            results[f"{key}__prefix_{mode}"] = jb.generate(model, mode, exp["noise"], prefix=prefix)
            data, seconds = jb.timed_generate(model, mode, exp["noise"])
            results[f"{key}__timed_{mode}"] = data
            results[f"{key}__seconds_{mode}"] = np.float64(seconds)
            results[f"{key}__compile_seconds_{mode}"] = np.float64(model.compile_seconds[mode])
        jb.uncached_step(model, exp["data"][:, :3])
        window_mode = "linear-recurrent" if config.attention == "linear" else "softmax-cached"
        jb.time_window(model, window_mode, 2, config.seq_len - 3, 3)  # compiles
        results[f"{key}__window_seconds"] = np.float64(jb.time_window(model, window_mode, 2, 0, 3, seed=1))
    back = jb.params_of(jb.prepare(config, params))
    results[f"{name}__params_equal"] = np.bool_(
        back.keys() == params.keys() and all(np.array_equal(back[n], params[n]) for n in params)
    )
try:
    jb.generate(model, mode, exp["noise"], prefix=np.zeros((len(exp["noise"]) + 1, 2), np.int64))
except ConfigError as e:
    results["prefix_refused"] = np.array(str(e))
jb.warm_up()
results["time_attention"] = np.array(jb.time_attention("linear", 1, 16, 2, 4, 2))
results["time_attention_favor"] = np.array(jb.time_attention("linear-favor", 1, 16, 2, 4, 2))
results["attention_peak_bytes"] = np.int64(jb.attention_peak_bytes())
np.savez(out, **results)
print(jb.info())
"""


def run_worker(args, timeout=WORKER_TIMEOUT):
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"worker failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}"
    return proc


@pytest.fixture(scope="module")
def julia(tmp_path_factory):
    """Every case's results from one Julia worker."""
    out = tmp_path_factory.mktemp("julia") / "results.npz"
    proc = run_worker(["-c", WORKER, str(FIXTURES), str(out), *CASES])
    assert "'backend': 'julia'" in proc.stdout
    with np.load(out) as z:
        return {k: z[k] for k in z.files}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", CASES)
def test_forward_and_bits_match_fixture(julia, name, dtype):
    _, _, exp = load_case(name)
    tol = TOLERANCE[dtype]
    out = julia[f"{name}__{dtype}__out"]
    assert out.shape == exp["out"].shape
    np.testing.assert_allclose(out, exp["out"], atol=tol["out"], rtol=0)
    assert abs(julia[f"{name}__{dtype}__bits_per_dim"] - exp["bits_per_dim"]) < tol["bits_per_dim"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", CASES)
def test_generation_from_noise_matches_fixture(julia, name, dtype):
    _, _, exp = load_case(name)
    modes = [k.removeprefix("sample_") for k in exp if k.startswith("sample_")]
    assert modes
    for mode in modes:
        got, want = julia[f"{name}__{dtype}__sample_{mode}"], exp[f"sample_{mode}"]
        assert got.shape == want.shape and got.dtype == np.uint8
        if dtype == "float64":
            np.testing.assert_array_equal(got, want, err_msg=mode)
        else:
            assert (got == want).mean() >= 0.95, f"{mode}: {(got == want).mean():.3f} of the bytes agree"
        np.testing.assert_array_equal(julia[f"{name}__{dtype}__timed_{mode}"], got, err_msg=f"timed {mode}")
        assert julia[f"{name}__{dtype}__seconds_{mode}"] > 0
        assert julia[f"{name}__{dtype}__compile_seconds_{mode}"] > 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", CASES)
def test_prefix_completions_match_torch(julia, name, dtype):
    """`generate(..., prefix=)` keeps the given first half, feeds it through the model, and samples
    the rest from the same noise positions as PyTorch: the same bytes in float64, 95% in float32
    (a float32 byte near a bin edge may go either way). A prefix of the wrong shape is refused."""
    tb = pytest.importorskip("linattn.torch_backend")  # in this process; Julia ran in the worker
    config, params, exp = load_case(name)
    prefix = np.random.default_rng(5).integers(0, 256, (len(exp["noise"]), config.seq_len // 2))
    model = tb.prepare(config, params, dtype=dtype)
    modes = [k.removeprefix("sample_") for k in exp if k.startswith("sample_")]
    for mode in modes:
        got, want = julia[f"{name}__{dtype}__prefix_{mode}"], tb.generate(model, mode, exp["noise"], prefix=prefix)
        assert got.shape == want.shape and got.dtype == np.uint8
        np.testing.assert_array_equal(got[:, : prefix.shape[1]], prefix, err_msg=mode)
        if dtype == "float64":
            np.testing.assert_array_equal(got, want, err_msg=mode)
        else:
            assert (got == want).mean() >= 0.95, f"{mode}: {(got == want).mean():.3f} of the bytes agree"
    assert str(julia["prefix_refused"]).startswith("prefix must have shape (B=")


@pytest.mark.parametrize("name", CASES)
def test_params_cross_the_boundary_unchanged(julia, name):
    assert julia[f"{name}__params_equal"]


def test_time_attention_times_each_repeat(julia):
    for seconds in (julia["time_attention"], julia["time_attention_favor"]):
        assert seconds.shape == (2,) and (seconds > 0).all()
    assert julia["attention_peak_bytes"] >= 0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", CASES)
def test_time_window_times_steps(julia, name, dtype):
    assert julia[f"{name}__{dtype}__window_seconds"] > 0


def test_attention_task_measures_memory_inside_julia(tmp_path):
    """The scaling task's worker starts Julia before its baseline and takes Julia's own reading."""
    task = dict(kind="attention", backend="julia", attention="softmax", T=64, batch=2, n_heads=2, d_head=4,
                repeats=2, threads=1)
    (tmp_path / "task.json").write_text(json.dumps(task))
    run_worker(["-m", "replication.worker", str(tmp_path / "task.json"), str(tmp_path / "out.json")])
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["status"] == "ok", result
    assert len(result["seconds"]) == 2 and result["peak_memory_method"] == "backend"
    assert 0 <= result["peak_memory_bytes"] < 2**30  # Julia and Flux themselves take more than this


# --- the CLI, Julia against PyTorch -----------------------------------------------------------------


def replication(*argv):
    return run_worker(["-m", "replication", *map(str, argv)])


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="torch is not installed")
@pytest.mark.parametrize("name", ["softmax_mixture_rgb", "linear_categorical_rgb"])
def test_cli_julia_matches_torch(tmp_path, name):
    config, _, exp = load_case(name)
    images = exp["data"].reshape((-1,) + config.image_shape)
    np.save(tmp_path / "images.npy", images)
    np.save(tmp_path / "noise.npy", exp["noise"])
    mode = "softmax-cached" if config.attention == "softmax" else "linear-recurrent"
    bits, samples = {}, {}
    for backend in ("julia", "torch"):
        proc = replication("eval", "--checkpoint", FIXTURES / name, "--images", tmp_path / "images.npy", "--backend", backend)
        bits[backend] = json.loads(proc.stdout)["bits_per_dim"]  # stdout holds the JSON alone: Julia's logs go to stderr
        out = tmp_path / f"{backend}.npy"
        replication("sample", "--checkpoint", FIXTURES / name, "--mode", mode, "--noise", tmp_path / "noise.npy",
                    "--out", out, "--backend", backend)
        samples[backend] = np.load(out)
    assert abs(bits["julia"] - bits["torch"]) < TOLERANCE["float32"]["bits_per_dim"]
    assert abs(bits["julia"] - float(exp["bits_per_dim"])) < TOLERANCE["float32"]["bits_per_dim"]
    assert samples["julia"].shape == images.shape and samples["julia"].dtype == np.uint8
    agree = (samples["julia"] == samples["torch"]).mean()
    assert agree >= 0.95, f"{agree:.3f} of the bytes agree"


def test_pkg_test_passes():
    """julia/test/runtests.jl through Pkg.test(), as a Julia user would run it."""
    proc = subprocess.run(
        [julia_backend.JULIA_EXE, "--project=julia", "-e", "using Pkg; Pkg.instantiate(); Pkg.test()"],
        cwd=ROOT, capture_output=True, text=True, timeout=WORKER_TIMEOUT,
    )
    assert proc.returncode == 0, f"Pkg.test() failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}"
