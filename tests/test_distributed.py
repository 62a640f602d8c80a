"""Paper-scale training on existing engines, checked on the CPU: torchrun with 2 gloo processes and
JAX over 2 forced host devices follow the single-process loss trajectory with the same global batch,
checkpoints resume under another number of processes or devices, and bad input is refused first;
a FAVOR+ model goes through the same loop with its projection fixed.

Tolerance: the runs differ only in the order of float32 sums (two half-batch means averaged by the
all-reduce, against one mean over the batch), about 1e-7 relative per reduction; over a few steps
of RAdam (whose first steps are momentum SGD) that stays far below RTOL on the losses and ATOL on
the weights (measured: 1e-7 and 2e-9). Dropout is 0: its masks depend on the number of torch
processes (each rank draws its own), so with dropout the trajectories would differ by design.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from replication.cli import main
from replication.profiles import load_profile, profile_names
from replication.train import model_config, train

ROOT = Path(__file__).resolve().parents[1]
TINY = Path(__file__).parent / "data" / "tiny_profile.toml"
RTOL = 1e-5  # losses and bits/dim: float32 sums in another order
ATOL = 1e-5  # weights after a few steps at lr 1e-3


def env(**extra):
    path = os.pathsep.join([str(ROOT / "python"), str(ROOT), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", **extra}


def task(folder, steps, **extra):
    """tiny_profile's quality settings, with dropout 0 and a global batch of 4."""
    q = {k: v for k, v in load_profile(TINY)["quality"].items() if k != "sources"}
    q["model"] = {**{k: v for k, v in q["model"].items() if k != "sources"}, "dropout": 0.0}
    return {**q, "attention": "linear", "dataset": "synthetic", "batch_size": 4, "steps": steps,
            "checkpoint_dir": str(folder), "seed": 0, "threads": 1, **extra}


@pytest.fixture()
def profile(tmp_path):
    """tiny_profile.toml with dropout 0 and batch 4, for the command line."""
    text = TINY.read_text().replace("dropout = 0.1", "dropout = 0.0").replace("batch_size = 2", "batch_size = 4")
    path = tmp_path / "ddp.toml"
    path.write_text(text)
    return path


def torchrun(profile, out, steps, nproc=2):
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
           "-m", "replication", "train", "--attention", "linear", "--profile", str(profile), "--out", str(out),
           "--steps", str(steps)]
    return subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=120)


def curve(result, key="train_bits_per_dim"):
    return [p[key] for p in result["curve"]]


def assert_same_weights(a, b):
    a, b = np.load(Path(a) / "weights.npz"), np.load(Path(b) / "weights.npz")
    for name in a.files:
        np.testing.assert_allclose(a[name], b[name], rtol=0, atol=ATOL, err_msg=name)


@pytest.mark.slow
def test_torchrun_two_processes_follow_one_process_and_resume_across_world_sizes(tmp_path, profile):
    straight = train(task(tmp_path / "one", 4))  # one process, global batch 4, steps 1..4

    r = torchrun(profile, tmp_path / "ddp", 3)  # 2 gloo processes, 2 rows each, steps 1..3
    assert r.returncode == 0, r.stderr[-3000:]
    ddp = json.loads((tmp_path / "ddp" / "result.json").read_text())
    assert ddp["training"]["world_size"] == 2 and ddp["training"]["distributed"] == "gloo"
    np.testing.assert_allclose(curve(ddp), curve(straight)[:3], rtol=RTOL)
    np.testing.assert_allclose(curve(ddp, "valid_bits_per_dim"), curve(straight, "valid_bits_per_dim")[:3], rtol=RTOL)

    resumed = train(task(tmp_path / "ddp", 4))  # 2 processes -> 1
    assert [p["step"] for p in resumed["curve"]] == [1, 2, 3, 4]
    assert [h["world_size"] for h in resumed["training"]["history"]] == [2, 1]
    np.testing.assert_allclose(curve(resumed), curve(straight), rtol=RTOL)
    assert_same_weights(tmp_path / "ddp", tmp_path / "one")

    train(task(tmp_path / "grow", 2))  # 1 process -> 2
    r = torchrun(profile, tmp_path / "grow", 4)
    assert r.returncode == 0, r.stderr[-3000:]
    grown = json.loads((tmp_path / "grow" / "result.json").read_text())
    assert [h["world_size"] for h in grown["training"]["history"]] == [1, 2]
    np.testing.assert_allclose(curve(grown), curve(straight), rtol=RTOL)
    np.testing.assert_allclose(grown["test_bits_per_dim"], straight["test_bits_per_dim"], rtol=RTOL)
    assert_same_weights(tmp_path / "grow", tmp_path / "one")


JAX_SCRIPT = textwrap.dedent("""
    import json, sys
    from replication.train import train
    base = json.loads(sys.argv[1])
    folder = sys.argv[2]
    run = lambda name, steps, devices: train({**base, "checkpoint_dir": f"{folder}/{name}", "steps": steps,
                                              "devices": devices, "backend": "jax"})
    out = {"one": run("one", 4, 1), "two": run("two", 4, 2)}
    run("shrink", 2, 2)
    out["shrink"] = run("shrink", 4, 1)
    print(json.dumps({k: {"curve": v["curve"], "test": v["test_bits_per_dim"], "training": v["training"]}
                      for k, v in out.items()}))
""")


@pytest.mark.slow
def test_jax_two_devices_follow_one_device_and_resume_across_device_counts(tmp_path):
    base = {k: v for k, v in task(tmp_path, 4).items() if k != "checkpoint_dir"}
    base["model"] = {**base["model"], "dropout": 0.1}  # JAX draws dropout for the global batch: the same masks on 1 or 2 devices
    r = subprocess.run([sys.executable, "-c", JAX_SCRIPT, json.dumps(base), str(tmp_path)], capture_output=True,
                       text=True, timeout=120, env=env(XLA_FLAGS="--xla_force_host_platform_device_count=2",
                                                       JAX_PLATFORMS="cpu"))
    assert r.returncode == 0, r.stderr[-3000:]
    runs = json.loads(r.stdout.splitlines()[-1])
    assert runs["two"]["training"]["world_size"] == 2 and "Mesh over 2" in runs["two"]["training"]["distributed"]
    for name in ("two", "shrink"):
        np.testing.assert_allclose(curve(runs[name]), curve(runs["one"]), rtol=RTOL, err_msg=name)
        np.testing.assert_allclose(runs[name]["test"], runs["one"]["test"], rtol=RTOL, err_msg=name)
    assert [h["world_size"] for h in runs["shrink"]["training"]["history"]] == [2, 1]
    assert_same_weights(tmp_path / "two", tmp_path / "one")
    assert_same_weights(tmp_path / "shrink", tmp_path / "one")
    assert (tmp_path / "one" / "train_state.npz").is_file()


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_a_favor_model_trains_and_resumes_with_its_projection_fixed(tmp_path, backend):
    """The C3 training loop on a FAVOR+ model: 2 steps, then resumed to 4 from its checkpoint; the
    other weights move, the projections stay the ones init_params drew (a buffer in torch, out of
    JAX's optimiser), and the resumed run equals one of 4 steps straight through."""
    from linattn.weights import init_params, load_checkpoint

    def favor_task(folder, steps):
        t = task(folder, steps, backend=backend)
        return {**t, "model": {**t["model"], "feature_map": "favor", "n_features": 6}}

    train(favor_task(tmp_path / "resumed", 2))
    resumed = train(favor_task(tmp_path / "resumed", 4))
    straight = train(favor_task(tmp_path / "straight", 4))
    config, params = load_checkpoint(tmp_path / "resumed")
    assert config.feature_map == "favor" and resumed["steps"] == 4
    start = init_params(config, 0)
    np.testing.assert_array_equal(params["layers.0.attn.feature_projection"], start["layers.0.attn.feature_projection"])
    assert not np.array_equal(params["layers.0.attn.q.weight"], start["layers.0.attn.q.weight"])
    np.testing.assert_allclose(curve(resumed), curve(straight), rtol=RTOL)
    assert_same_weights(tmp_path / "resumed", tmp_path / "straight")


def refused(capsys, code, *words):
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    for w in words:
        assert w in err, err


def test_a_world_size_that_does_not_divide_the_batch_is_refused(tmp_path, capsys, monkeypatch, profile):
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "0")
    code = main(["train", "--attention", "linear", "--profile", str(profile), "--out", str(tmp_path / "o")])
    refused(capsys, code, "WORLD_SIZE", "3 does not divide the global batch size 4", "1, 2, 4")
    assert not (tmp_path / "o").exists()
    monkeypatch.setenv("RANK", "1")  # the other ranks leave silently: rank 0 said it
    assert main(["train", "--attention", "linear", "--profile", str(profile), "--out", str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err == ""


def test_a_missing_gpu_is_refused(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    code = main(["train", "--attention", "linear", "--profile", "smoke", "--out", str(tmp_path / "o"), "--device", "cuda"])
    refused(capsys, code, "--device cuda", "0 CUDA device")
    assert not (tmp_path / "o").exists()


def test_a_checkpoint_of_another_backend_or_config_is_refused(tmp_path, capsys, profile):
    folder = tmp_path / "o"
    train(task(folder, 1))
    capsys.readouterr()  # the training's progress bar
    code = main(["train", "--attention", "softmax", "--profile", str(profile), "--out", str(folder)])
    refused(capsys, code, "another config", "attention 'linear' (asked 'softmax')")
    code = main(["train", "--attention", "linear", "--profile", str(profile), "--out", str(folder), "--backend", "jax"])
    refused(capsys, code, "holds a torch training run", "--backend torch")


def test_a_second_train_on_a_folder_in_use_is_refused(tmp_path, capsys, profile):
    folder = tmp_path / "o"
    folder.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from replication import locks; "
                               "f = locks.acquire(sys.argv[1], 'replication train'); print('held', flush=True); "
                               "time.sleep(60)", str(folder)], env=env(), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        code = main(["train", "--attention", "linear", "--profile", str(profile), "--out", str(folder)])
        refused(capsys, code, "in use by pid", str(holder.pid), "replication train")
        assert not (folder / "weights.npz").exists()
    finally:
        holder.kill()
        holder.wait()


def test_bf16_autocast_keeps_float32_weights():
    """The GPU path's precision, exercised on the CPU (torch autocasts to bf16 there too)."""
    import torch

    from linattn import torch_backend as tb
    from linattn.torch_backend.train import make_optimizer, train_step
    from linattn.weights import init_params

    config = model_config(task("unused", 1))
    model = tb.prepare(config, init_params(config, 0))
    opt = make_optimizer(model)
    data = torch.as_tensor(np.random.default_rng(0).integers(0, 256, (2, config.seq_len)))
    full = tb.bits_per_dim(model, data.numpy())
    loss = train_step(model, opt, data, autocast_dtype=torch.bfloat16)
    assert abs(loss / np.log(2) - full) < 0.05 * full  # bf16 forward: the same loss to a few digits
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert all(s.dtype == torch.float32 for st in opt.state.values() for s in st.values() if s.ndim)


def test_info_names_the_device_and_timer():
    from linattn import torch_backend as tb

    info = tb.info("cpu")
    assert info["device"] == "cpu" and "perf_counter" in info["timer"]


@pytest.mark.parametrize("name", profile_names())
def test_every_profile_is_sane(name):
    """Every profile loads, names a source only for settings it has, and its [quality] makes a
    model; a profile for a GPU names the paper's model sizes for speed."""
    p = load_profile(name)
    for section in ("study", "throughput", "latency", "uncached_validation", "quality", "scaling", "samples"):
        values = p[section]
        unknown = set(values.get("sources", {})) - set(values)
        assert not unknown, f"{name}.{section}: sources for missing settings {unknown}"
    q = {k: v for k, v in p["quality"].items() if k != "sources"}
    model = {k: v for k, v in q["model"].items() if k != "sources"}
    assert not set(q["model"].get("sources", {})) - set(model), f"{name}.quality.model: sources for missing settings"
    config = model_config({**q, "model": model, "attention": "linear"})
    assert config.d_model % config.n_heads == 0 and q["steps"] >= q["eval_every"] >= 1
    assert q["backend"] in ("torch", "jax") and set(p["study"]["backends"]) <= {"torch", "jax", "julia"}
    if name == "gpu":
        assert p["study"]["device"] == "cuda" and (config.n_layers, config.n_heads, config.d_model) == (8, 8, 256)
        assert set(p["throughput"]["models"]) == {"mnist", "cifar"}
        assert all(k in p["quality"]["sources"] for k in q if k != "model"), "every [quality] setting of gpu has its source"
        assert all(k in q["model"]["sources"] for k in model), "every [quality.model] setting of gpu has its source"
