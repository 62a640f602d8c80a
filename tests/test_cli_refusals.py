"""Every bad input to the `replication` command is refused before any work: exit status 2, one line
on stderr naming the problem, nothing on stdout and no output written (issue "Reliability: every
bad input refused in one line", items 4-8)."""

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from conftest import FIXTURES
from linattn.config import ModelConfig
from linattn.weights import init_params, save_checkpoint
from replication.cli import main
from replication.profiles import load_profile
from replication.train import model_config

CASE = "softmax_mixture_rgb"  # image_shape (3, 3, 3): T = 27


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_refused(code, out, err, command, *words):
    assert code == 2, err
    assert out == ""
    assert err.startswith(f"replication {command}: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err and "allow_pickle" not in err
    for w in words:
        assert w in err, (w, err)


def checkpoint(tmp_path, name=CASE):
    """A copy of a fixture checkpoint, to corrupt."""
    d = tmp_path / name
    shutil.copytree(FIXTURES / name, d, ignore=shutil.ignore_patterns("expected.npz"))
    return d


def images(tmp_path):
    with np.load(FIXTURES / CASE / "expected.npz") as z:
        np.save(tmp_path / "x.npy", z["data"].reshape(-1, 3, 3, 3))
    return tmp_path / "x.npy"


def noise(tmp_path, array=None):
    np.save(tmp_path / "noise.npy", np.full((1, 27, 2), 0.5) if array is None else array)
    return tmp_path / "noise.npy"


def read_only_folder(tmp_path):
    """A folder no file can be created in (chmod does not stop root: then /sys, if it is read-only)."""
    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o555)
    for folder in (d, Path("/sys")):
        try:
            tempfile.TemporaryFile(dir=folder).close()
        except OSError:
            return folder
    pytest.skip("no read-only folder here (root, and /sys writable)")


def edit_weights(change):
    def make(tmp_path):
        d = checkpoint(tmp_path)
        with np.load(d / "weights.npz") as z:
            w = {n: z[n] for n in z.files}
        change(w)
        np.savez(d / "weights.npz", **w)
        return d
    return make


def config_bytes(data):
    def make(tmp_path):
        d = checkpoint(tmp_path)
        (d / "config.json").write_bytes(data)
        return d
    return make


def config_fields(**fields):
    def make(tmp_path):
        d = checkpoint(tmp_path)
        c = json.loads((d / "config.json").read_text())
        (d / "config.json").write_text(json.dumps({**c, **fields}))
        return d
    return make


def empty_weights(tmp_path):
    d = checkpoint(tmp_path)
    (d / "weights.npz").write_bytes(b"")
    return d


def nan_at(w, name):
    w[name] = w[name].copy()
    w[name].flat[0] = np.nan


# Checkpoints that load_checkpoint must refuse, whatever the command: (make, words in the message).
BAD_CHECKPOINTS = {
    "nan-weights": (edit_weights(lambda w: nan_at(w, "norm.weight")), ["weights.npz", "norm.weight", "NaN"]),
    "inf-weights": (edit_weights(lambda w: w.__setitem__("head.bias", np.full_like(w["head.bias"], np.inf))),
                    ["weights.npz", "head.bias", "infinite"]),
    "int64-weights": (edit_weights(lambda w: w.__setitem__("norm.bias", w["norm.bias"].astype(np.int64))),
                      ["weights.npz", "norm.bias", "int64", "float32"]),
    "float64-weights": (edit_weights(lambda w: w.__setitem__("embed.weight", w["embed.weight"].astype(np.float64))),
                        ["embed.weight", "float64"]),
    "empty-weights": (empty_weights, ["weights.npz", "empty (0 bytes"]),
    "config-null": (config_bytes(b"null"), ["config.json", "JSON object", "got null"]),
    "config-number": (config_bytes(b"3"), ["config.json", "JSON object", "got 3"]),
    "config-list": (config_bytes(b"[1, 2]"), ["config.json", "JSON object"]),
    "config-not-utf8": (config_bytes(b'{"attention": "\xff"}'), ["config.json", "not UTF-8"]),
    "config-empty": (config_bytes(b""), ["config.json", "not valid JSON"]),
    "image-shape-number": (config_fields(image_shape=27), ["config.json", "image_shape must be a list"]),
    "n-heads-not-dividing": (config_fields(n_heads=3), ["config.json", "n_heads=3 must divide d_model=16"]),
}


@pytest.mark.parametrize("name", list(BAD_CHECKPOINTS))
def test_eval_refuses_a_bad_checkpoint(tmp_path, capsys, name):
    make, words = BAD_CHECKPOINTS[name]
    code, out, err = run(capsys, "eval", "--checkpoint", make(tmp_path), "--images", images(tmp_path))
    assert_refused(code, out, err, "eval", *words)


@pytest.mark.parametrize("name", ["nan-weights", "empty-weights", "config-null"])
def test_sample_refuses_a_bad_checkpoint_and_writes_nothing(tmp_path, capsys, name):
    make, words = BAD_CHECKPOINTS[name]
    code, out, err = run(capsys, "sample", "--checkpoint", make(tmp_path), "--mode", "softmax-cached",
                         "--noise", noise(tmp_path), "--out", tmp_path / "s.npy")
    assert_refused(code, out, err, "sample", *words)
    assert not (tmp_path / "s.npy").exists()


def write(data):
    def make(tmp_path):
        p = tmp_path / "in.npy"
        if isinstance(data, bytes):
            p.write_bytes(data)
        else:
            np.save(p, data)
        return p
    return make


def npz(tmp_path):
    with open(tmp_path / "in.npy", "wb") as f:
        np.savez(f, a=np.zeros(3))
    return tmp_path / "in.npy"


def truncated(tmp_path):
    p = write(np.zeros((2, 3, 3, 3), np.uint8))(tmp_path)
    p.write_bytes(p.read_bytes()[:-10])
    return p


# --images files: (make, words).
BAD_IMAGES = {
    "empty-file": (write(b""), ["--images", "empty (0 bytes"]),
    "text-file": (write(b"0 1 2\n3 4 5\n"), ["--images", "not a .npy file", "numpy.save"]),
    "npz-archive": (npz, ["--images", ".npz archive"]),
    "truncated-npy": (truncated, ["--images", "damaged .npy"]),
    "float-images": (write(np.zeros((2, 3, 3, 3), np.float32)), ["--images", "float32", "uint8"]),
    "wrong-shape": (write(np.zeros((2, 32, 32, 3), np.uint8)), ["(2, 32, 32, 3)", "(N, 3, 3, 3)", "image_shape"]),
    "no-images": (write(np.zeros((0, 3, 3, 3), np.uint8)), ["(0, 3, 3, 3)", "N >= 1"]),
    "a-folder": (lambda t: t, ["--images", "is a folder"]),
    "missing": (lambda t: t / "nothing.npy", ["--images", "no such file"]),
}


@pytest.mark.parametrize("name", list(BAD_IMAGES))
def test_eval_refuses_bad_images(tmp_path, capsys, name):
    make, words = BAD_IMAGES[name]
    code, out, err = run(capsys, "eval", "--checkpoint", FIXTURES / CASE, "--images", make(tmp_path))
    assert_refused(code, out, err, "eval", *words)


NAN_NOISE = np.full((1, 27, 2), 0.5)
NAN_NOISE[0, 4, 1] = np.nan

# --noise files: (make, words).
BAD_NOISE = {
    "nan": (write(NAN_NOISE), ["--noise", "1 NaN or infinite", "(0, 4, 1)"]),
    "inf": (write(np.full((1, 27, 2), np.inf)), ["--noise", "NaN or infinite"]),
    "above-one": (write(np.full((1, 27, 2), 1.5)), ["--noise", "[0, 1]"]),
    "negative": (write(np.full((1, 27, 2), -0.5)), ["--noise", "[0, 1]"]),
    "integers": (write(np.zeros((1, 27, 2), np.int64)), ["--noise", "int64", "floats"]),
    "text-file": (write(b"0.5 0.5\n"), ["--noise", "not a .npy file"]),
    "empty-file": (write(b""), ["--noise", "empty (0 bytes"]),
    "wrong-shape": (write(np.full((1, 5, 2), 0.5)), ["(1, 5, 2)", "(N, 27, 2)"]),
}


@pytest.mark.parametrize("name", list(BAD_NOISE))
def test_sample_refuses_bad_noise_and_writes_nothing(tmp_path, capsys, name):
    make, words = BAD_NOISE[name]
    code, out, err = run(capsys, "sample", "--checkpoint", FIXTURES / CASE, "--mode", "softmax-cached",
                         "--noise", make(tmp_path), "--out", tmp_path / "s.npy")
    assert_refused(code, out, err, "sample", *words)
    assert not (tmp_path / "s.npy").exists()


# sample --out: (make the path, words)
BAD_SAMPLE_OUT = {
    "existing-folder": (lambda t: t, ["--out", "is a folder", "out.npy"]),
    "missing-folder": (lambda t: t / "no" / "s.npy", ["--out", "does not exist"]),
    "read-only-folder": (lambda t: read_only_folder(t) / "s.npy", ["--out", "not writable"]),
}


@pytest.mark.parametrize("name", list(BAD_SAMPLE_OUT))
def test_sample_refuses_an_out_path_it_cannot_write_before_generating(tmp_path, capsys, monkeypatch, name):
    import linattn.torch_backend as tb

    monkeypatch.setattr(tb, "generate", lambda *a, **k: pytest.fail("generated before refusing --out"))
    make, words = BAD_SAMPLE_OUT[name]
    argv = ["sample", "--checkpoint", FIXTURES / CASE, "--mode", "softmax-cached", "--noise", noise(tmp_path),
            "--out", make(tmp_path)]
    before = sorted(tmp_path.rglob("*"))
    code, out, err = run(capsys, *argv)
    assert_refused(code, out, err, "sample", *words)
    assert sorted(tmp_path.rglob("*")) == before


# Arguments refused by the parser: (argv after the command's required ones, words).
EVAL_ARGS = {
    "batch-size-negative": (["--batch-size", "-1"], ["--batch-size", "integer >= 1", "-1"]),
    "batch-size-zero": (["--batch-size", "0"], ["--batch-size", "integer >= 1", "got 0"]),
    "batch-size-text": (["--batch-size", "many"], ["--batch-size", "'many'"]),
    "device-unknown": (["--device", "tpu"], ["--device", "cpu, cuda or cuda:N", "'tpu'"]),
    "device-bad-index": (["--device", "cuda:x"], ["--device", "'cuda:x'"]),
    "device-cpu-index": (["--device", "cpu:1"], ["--device", "'cpu:1'"]),
    "device-absent-gpu": (["--device", "cuda:99"], ["--device cuda:99", "use --device cpu"]),
    "backend-unknown": (["--backend", "numpy"], ["--backend", "'numpy'"]),
}


@pytest.mark.parametrize("name", list(EVAL_ARGS))
def test_eval_refuses_bad_arguments(tmp_path, capsys, name):
    extra, words = EVAL_ARGS[name]
    code, out, err = run(capsys, "eval", "--checkpoint", FIXTURES / CASE, "--images", images(tmp_path), *extra)
    assert_refused(code, out, err, "eval", *words)


def test_a_non_finite_bits_per_dim_is_an_error_not_invalid_json(tmp_path, capsys, monkeypatch):
    import linattn.torch_backend as tb

    monkeypatch.setattr(tb, "bits_per_dim", lambda *a, **k: float("nan"))
    code, out, err = run(capsys, "eval", "--checkpoint", FIXTURES / CASE, "--images", images(tmp_path))
    assert_refused(code, out, err, "eval", "bits/dim came out nan")


# ---- train ----------------------------------------------------------------------------------------

def smoke_config(attention):
    return model_config({**load_profile("smoke")["quality"], "attention": attention})


def interrupted_run(tmp_path, attention="softmax"):
    """A folder as an interrupted `train` leaves it: a checkpoint and train_state.pt."""
    d = tmp_path / "run"
    config = smoke_config(attention)
    save_checkpoint(d, config, init_params(config))
    (d / "train_state.pt").write_bytes(b"state")
    return d


def a_file(tmp_path):
    (tmp_path / "f").write_text("x")
    return tmp_path / "f"


# train: (make --out, extra arguments, words)
BAD_TRAIN = {
    "steps-negative": (lambda t: t / "ck", ["--steps", "-5"], ["--steps", "integer >= 1", "-5"]),
    "steps-zero": (lambda t: t / "ck", ["--steps", "0"], ["--steps", "integer >= 1", "got 0"]),
    "unknown-profile": (lambda t: t / "ck", ["--profile", "nosuch"], ["unknown profile 'nosuch'", "smoke"]),
    "out-is-a-file": (a_file, [], ["--out", "is a file"]),
    "out-read-only": (lambda t: read_only_folder(t) / "ck", [], ["--out", "not writable"]),
    "fixture-copy": (checkpoint, [], ["without training state", "--overwrite"]),
    "another-config": (lambda t: interrupted_run(t, "linear"), [], ["another config", "attention 'linear' (asked 'softmax')",
                                                                    "--overwrite"]),
    "favor-softmax": (lambda t: t / "ck", ["--feature-map", "favor"], ["feature_map='favor'", "attention='linear'"]),
    "feature-map-unknown": (lambda t: t / "ck", ["--feature-map", "relu"], ["--feature-map", "'relu'"]),
    "layer-pattern-letters": (lambda t: t / "ck", ["--layer-pattern", "x"], ["layer_pattern", "'a'", "'f'", "'x'"]),
}


@pytest.mark.parametrize("name", list(BAD_TRAIN))
def test_train_refuses_before_training(tmp_path, capsys, monkeypatch, name):
    import replication.train as train

    monkeypatch.setattr(train, "train", lambda task: pytest.fail("trained before refusing"))
    make, extra, words = BAD_TRAIN[name]
    out_dir = make(tmp_path)
    files = lambda: {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}  # noqa: E731
    before = files()
    code, out, err = run(capsys, "train", "--attention", "softmax", "--profile", "smoke", "--out", out_dir, *extra)
    assert_refused(code, out, err, "train", *words)
    assert files() == before  # nothing written or changed
    assert not (tmp_path / "ck").exists()


def test_train_refuses_a_resume_into_another_config_itself(tmp_path):
    """train() as the study's worker calls it: the same refusal, before any data is read."""
    from linattn.config import ConfigError
    from replication.train import train

    d = interrupted_run(tmp_path, "linear")
    task = {**load_profile("smoke")["quality"], "attention": "softmax", "dataset": "no-such-dataset",
            "checkpoint_dir": str(d)}
    with pytest.raises(ConfigError, match="another config"):
        train(task)


def test_train_resumes_a_run_of_the_same_config(tmp_path, capsys, monkeypatch):
    import replication.train as train

    tasks = []
    monkeypatch.setattr(train, "train", lambda task: tasks.append(task) or {k: 0 for k in
                        ("attention", "dataset", "steps", "wall_seconds", "test_bits_per_dim", "checkpoint")})
    d = interrupted_run(tmp_path, "softmax")
    code, out, err = run(capsys, "train", "--attention", "softmax", "--profile", "smoke", "--out", d, "--steps", "2")
    assert code == 0, err
    assert tasks[0]["steps"] == 2 and tasks[0]["overwrite"] is False


def test_train_overwrite_replaces_a_fixture_copy(tmp_path, capsys):
    d = checkpoint(tmp_path)
    code, out, err = run(capsys, "train", "--attention", "softmax", "--profile", "smoke", "--out", d,
                         "--steps", "1", "--overwrite")
    assert code == 0, err
    assert json.loads(out)["steps"] == 1
    assert ModelConfig.from_json(d / "config.json") == smoke_config("softmax")
    assert (d / "train_state.pt").is_file()


# ---- run, report, speed -----------------------------------------------------------------------------

def summary_folder(tmp_path):
    d = tmp_path / "results"
    d.mkdir()
    (d / "summary.json").write_text("{}")
    return d


# (command and arguments from tmp_path, words)
BAD_STUDY = {
    "run-results-is-a-file": (lambda t: ["run", "--profile", "smoke", "--results", a_file(t)], ["--results", "is a file"]),
    "run-results-read-only": (lambda t: ["run", "--profile", "smoke", "--results", read_only_folder(t)],
                              ["--results", "not writable"]),
    "run-results-under-a-file": (lambda t: ["run", "--profile", "smoke", "--results", a_file(t) / "sub"],
                                 ["--results", "is a file, so the folder cannot be created"]),
    "run-device-unknown": (lambda t: ["run", "--profile", "smoke", "--results", t / "r", "--device", "gpu"],
                           ["--device", "'gpu'"]),
    "report-results-is-a-file": (lambda t: ["report", "--results", a_file(t)], ["--results", "is a file"]),
    "report-results-missing": (lambda t: ["report", "--results", t / "none"], ["--results", "nothing exists"]),
    "report-out-read-only": (lambda t: ["report", "--results", summary_folder(t), "--out", read_only_folder(t) / "r.pdf"],
                             ["--out", "not writable"]),
    "report-out-is-a-folder": (lambda t: ["report", "--results", summary_folder(t), "--out", t],
                               ["--out", "is a folder"]),
    "speed-batch-zero": (lambda t: ["speed", "--model", "mnist", "--mode", "linear-recurrent", "--batch", "0"],
                         ["--batch", "integer >= 1"]),
    "speed-steps-one": (lambda t: ["speed", "--model", "mnist", "--mode", "linear-recurrent", "--steps", "1"],
                        ["--steps must be >= 2"]),
    "speed-device-unknown": (lambda t: ["speed", "--model", "mnist", "--mode", "linear-recurrent", "--device", "tpu"],
                             ["--device", "'tpu'"]),
    "speed-favor-softmax": (lambda t: ["speed", "--model", "mnist", "--mode", "softmax-cached", "--feature-map", "favor"],
                            ["--feature-map favor", "linear-recurrent"]),
    "speed-feature-map-unknown": (lambda t: ["speed", "--model", "mnist", "--mode", "linear-recurrent", "--feature-map", "relu"],
                                  ["--feature-map", "'relu'"]),
    "speed-layer-pattern-short": (lambda t: ["speed", "--model", "mnist", "--mode", "linear-recurrent", "--layer-pattern", "afa"],
                                  ["layer_pattern", "n_layers=8", "'afa'"]),
    "speed-interleaved-without-steps": (lambda t: ["speed", "--model", "mnist", "--mode", "linear-recurrent",
                                                   "--interleaved", "2"], ["--interleaved", "--steps K"]),
    "speed-interleaved-uncached": (lambda t: ["speed", "--model", "mnist", "--mode", "softmax-uncached", "--steps", "8",
                                              "--interleaved", "2"], ["--interleaved", "softmax-uncached"]),
}


@pytest.mark.parametrize("name", list(BAD_STUDY))
def test_run_report_and_speed_refuse_before_any_work(tmp_path, capsys, monkeypatch, name):
    import replication.report as report
    import replication.run as run_module
    import replication.speed as speed

    monkeypatch.setattr(run_module, "Study", lambda *a, **k: pytest.fail("the study started before refusing"))
    monkeypatch.setattr(report, "build_report", lambda *a, **k: pytest.fail("the report was built before refusing"))
    monkeypatch.setattr(speed, "measure", lambda *a, **k: pytest.fail("timed before refusing"))
    monkeypatch.setattr(speed, "interleaved", lambda *a, **k: pytest.fail("timed before refusing"))
    make, words = BAD_STUDY[name]
    argv = make(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    code, out, err = run(capsys, *argv)
    assert_refused(code, out, err, argv[0], *words)
    assert sorted(tmp_path.rglob("*")) == before


def test_help_still_exits_zero(capsys):
    assert main(["eval", "--help"]) == 0
    assert "--batch-size" in capsys.readouterr().out


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can see the read-only fallback")
def test_read_only_check_is_honest_for_root(tmp_path):
    """chmod 555 does not stop root, so the check tries to create a file instead of asking os.access."""
    from replication.inputs import output_folder

    d = tmp_path / "ro"
    d.mkdir()
    d.chmod(0o555)
    assert output_folder(d, "--results") == d  # root can write there: not refused
