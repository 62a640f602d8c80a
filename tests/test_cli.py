"""The `replication` command: eval, sample and speed end to end, and clear refusals of bad input."""

import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import FIXTURES, load_case
from replication.cli import main

CASE = "softmax_mixture_rgb"


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def fixture_images(name=CASE):
    config, _, exp = load_case(name)
    return exp["data"].reshape((-1,) + config.image_shape), exp


def test_eval_prints_bits_per_dim_of_the_fixture(tmp_path, capsys):
    images, exp = fixture_images()
    np.save(tmp_path / "x.npy", images)
    code, out, err = run(capsys, "eval", "--checkpoint", FIXTURES / CASE, "--images", tmp_path / "x.npy")
    assert code == 0, err
    assert abs(json.loads(out)["bits_per_dim"] - exp["bits_per_dim"]) < 1e-5


@pytest.mark.parametrize("mode", ["softmax-cached", "softmax-uncached"])
def test_sample_writes_the_fixture_images(tmp_path, capsys, mode):
    images, exp = fixture_images()
    np.save(tmp_path / "noise.npy", exp["noise"])
    code, out, err = run(capsys, "sample", "--checkpoint", FIXTURES / CASE, "--mode", mode,
                         "--noise", tmp_path / "noise.npy", "--out", tmp_path / "s.npy")
    assert code == 0, err
    got = np.load(tmp_path / "s.npy")
    assert got.dtype == np.uint8 and got.shape == images.shape
    np.testing.assert_array_equal(got.reshape(len(got), -1), exp[f"sample_{mode}"])


def test_images_larger_than_the_config_are_refused(tmp_path, capsys):
    np.save(tmp_path / "big.npy", np.zeros((2, 32, 32, 3), np.uint8))
    code, out, err = run(capsys, "eval", "--checkpoint", FIXTURES / CASE, "--images", tmp_path / "big.npy")
    assert code == 2 and out == ""
    assert "(2, 32, 32, 3)" in err and "(N, 3, 3, 3)" in err
    assert "Traceback" not in err


def test_float_images_and_missing_files_are_refused(tmp_path, capsys):
    np.save(tmp_path / "f.npy", np.zeros((2, 3, 3, 3), np.float32))
    code, _, err = run(capsys, "eval", "--checkpoint", FIXTURES / CASE, "--images", tmp_path / "f.npy")
    assert code == 2 and "uint8" in err
    code, _, err = run(capsys, "eval", "--checkpoint", tmp_path / "none", "--images", tmp_path / "f.npy")
    assert code == 2 and "not a folder" in err


def test_mode_that_does_not_fit_the_model_is_refused(tmp_path, capsys):
    np.save(tmp_path / "noise.npy", np.full((1, 27, 2), 0.5))
    code, _, err = run(capsys, "sample", "--checkpoint", FIXTURES / CASE, "--mode", "linear-recurrent",
                       "--noise", tmp_path / "noise.npy", "--out", tmp_path / "s.npy")
    assert code == 2 and "attention='linear'" in err
    assert not (tmp_path / "s.npy").exists()


def test_noise_of_the_wrong_shape_is_refused(tmp_path, capsys):
    np.save(tmp_path / "noise.npy", np.full((1, 5, 2), 0.5))
    code, _, err = run(capsys, "sample", "--checkpoint", FIXTURES / CASE, "--mode", "softmax-cached",
                       "--noise", tmp_path / "noise.npy", "--out", tmp_path / "s.npy")
    assert code == 2 and "(N, 27, 2)" in err


@pytest.mark.slow
def test_speed_reports_time_and_roofline_as_json():
    """A short prefix of the MNIST-sized model in a fresh process (as a user runs it)."""
    proc = subprocess.run(
        [sys.executable, "-m", "replication", "speed", "--backend", "torch", "--model", "mnist",
         "--mode", "linear-recurrent", "--batch", "2", "--steps", "8", "--repeats", "1", "--threads", "1", "--json",
         "--eager"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    for key in ("seconds_per_image", "images_per_second", "extrapolated", "repeats", "roofline_seconds_per_image", "iqr"):
        assert key in r
    assert r["extrapolated"] is True and r["seconds_per_image"] > 0
    assert r["roofline_seconds_per_image"] > 0 and r["machine"]["bandwidth_GBps"] > 0
    assert r["threads"] == 1 and r["provenance"]["python"]
    assert r["generation"]["step"] == "eager" and "not called" in r["generation"]["reason"]  # --eager


def test_speed_table_has_a_row_per_result_with_the_floor_multiple_and_the_step():
    from replication.speed import NOT_COMPILED, table

    def result(backend, mode, seconds, floor, generation):
        return {"backend": backend, "model": "cifar", "mode": mode, "batch": 1, "seconds_per_image": seconds,
                "roofline_seconds_per_image": floor, "bound": "memory", "machine": {"bandwidth_GBps": 43.0},
                "extrapolated": True, "generation": generation}

    compiled = {"step": "compiled", "how": "inductor", "reason": None, "compile_seconds": 9.0}
    text = table([result("torch", "softmax-cached", 10.8, 7.2, compiled), result("jax", "linear-recurrent", 4.2, 3.6, compiled),
                  result("torch", "linear-recurrent", 10.7, 3.6, NOT_COMPILED)])
    lines = text.splitlines()
    assert lines[0].split()[:4] == ["backend", "model", "mode", "batch"] and set(lines[1]) <= {"-", " "}
    assert [line.split()[0] for line in lines[2:]] == ["jax", "torch", "torch"]  # sorted by backend, model, mode
    assert "1.17" in lines[2] and "1.50" in lines[4] and "2.97" in lines[3]  # the multiples of the floor
    assert "eager (compile_generation not called)" in lines[3] and "43.0" in lines[2]
