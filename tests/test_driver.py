"""The study driver end to end on a tiny profile: every claim recorded, missing backends and
impossible sizes recorded with their reasons, an interrupted run resumed, training resumed exactly."""

import json
from pathlib import Path

import numpy as np
import pytest

from linattn.backends import BACKENDS
from replication import estimates
from replication.claims import CLAIMS, generation
from replication.cli import main
from replication.experiments import Context, Experiment
from replication.profiles import load_profile, profile_names
from replication.run import Study
from replication.train import train

TINY = Path(__file__).parent / "data" / "tiny_profile.toml"


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("study") / "run"
    assert main(["run", "--profile", str(TINY), "--results", str(folder), "--no-report"]) == 0
    return folder


def load(folder, name):
    return json.loads((folder / name).read_text())


@pytest.mark.slow
def test_every_experiment_is_recorded_with_estimate_and_actual(study):
    run = load(study, "run.json")
    exps = run["experiments"]
    assert {e.split("-")[0] for e in exps} == {"C1", "C2", "V", "C4", "C3", "S", "B"}
    for eid, rec in exps.items():
        assert rec["estimate"]["seconds"] > 0 and rec["estimate"]["memory_bytes"] > 0, eid
        if rec["status"] == "ok":
            assert rec["actual"]["seconds"] > 0 and rec["actual"]["memory_bytes"] > 0, eid
    assert run["finished"] and run["provenance"]["git"]["commit"]
    assert run["machine"]["bandwidth_GBps"] > 0


@pytest.mark.slow
def test_sizes_that_cannot_fit_are_skipped_with_the_reason(study):
    exps = load(study, "run.json")["experiments"]
    big = [e for e in exps if e.endswith("T67108864")]
    assert big and all(exps[e]["status"] == "skipped" and "does not fit" in exps[e]["reason"] for e in big)
    small = [e for e in exps if e.endswith("T64")]
    assert small and all(exps[e]["status"] == "ok" for e in small)


@pytest.mark.slow
def test_a_missing_backend_is_recorded_and_the_study_goes_on(study):
    backends = load(study, "run.json")["backends"]
    assert backends["torch"]["status"] == "ok"
    if backends["julia"]["status"] != "ok":
        assert "Julia" in backends["julia"]["reason"]


@pytest.mark.slow
def test_summary_answers_every_claim(study):
    summary = load(study, "summary.json")
    assert [c["id"] for c in summary["claims"]] == ["C1", "C2", "C3", "C4", "C5"]
    c3 = summary["claims"][2]
    assert c3["status"] == "measured" and c3["rows"][0]["ours"] is not None
    curve = summary["quality"]["runs"]["linear"][0]["curve"]
    assert [p["step"] for p in curve] == [1, 2]
    assert summary["throughput"] and all(r["status"] == "ok" for r in summary["throughput"])
    index = load(study.parent, "index.json")
    assert study.name in [r["folder"] for r in index["runs"]]


@pytest.mark.slow
def test_an_interrupted_run_resumes_without_redoing_work(study):
    before = load(study, "run.json")
    assert main(["run", "--profile", str(TINY), "--results", str(study), "--no-report"]) == 0
    after = load(study, "run.json")
    assert after["resumed"] == before["resumed"] + 1
    for eid, rec in before["experiments"].items():
        if rec["status"] == "ok":
            assert after["experiments"][eid]["actual"] == rec["actual"], eid  # not measured again


def test_a_crashing_experiment_is_recorded_and_does_not_stop_the_study(tmp_path):
    s = Study(load_profile(TINY), tmp_path / "r", backends=["torch"])
    s._start()
    bad = {"kind": "speed", "backend": "torch", "model": "mnist", "mode": "no-such-mode", "batch": 1, "repeats": 1, "threads": 1}
    result = s.experiment(Experiment("C1-bad", "C1", "speed", bad, {"seconds": 1.0, "memory_bytes": 1.0}))
    assert result["status"] == "failed" and "no-such-mode" in result["reason"]
    assert load(tmp_path / "r", "run.json")["experiments"]["C1-bad"]["status"] == "failed"


def test_unknown_profile_is_refused_with_the_choices(capsys):
    assert main(["run", "--profile", "huge"]) == 2
    err = capsys.readouterr().err
    assert "unknown profile 'huge'" in err and "smoke" in err


def train_task(folder, steps):
    return dict(attention="linear", model=dict(n_layers=1, n_heads=2, d_model=8, n_mixtures=2, image_shape=[28, 28, 1], dropout=0.1),
                batch_size=2, steps=steps, learning_rate=1e-3, weight_decay=0.01, eval_every=2, eval_images=2,
                test_images=2, dataset="synthetic", checkpoint_dir=str(folder), seed=0, threads=1)


def test_training_resumes_exactly_where_it_stopped(tmp_path):
    straight = train(train_task(tmp_path / "a", 4))
    train(train_task(tmp_path / "b", 2))  # "interrupted" after 2 steps
    resumed = train(train_task(tmp_path / "b", 4))
    assert resumed["steps"] == 4 and [p["step"] for p in resumed["curve"]] == [2, 4]
    a, b = np.load(tmp_path / "a" / "weights.npz"), np.load(tmp_path / "b" / "weights.npz")
    for name in a.files:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert resumed["test_bits_per_dim"] == straight["test_bits_per_dim"]


@pytest.mark.parametrize("name", profile_names())
@pytest.mark.parametrize("data", [{"dataset": "mnist"}, {"dataset": None, "reason": "offline", "fix": "fetch it"}])
def test_every_profile_plans_every_claim(tmp_path, name, data):
    """Each shipped profile plans (and estimates) every experiment, with and without data, before
    any worker runs: a profile that cannot be planned would fail only after the study started."""
    ctx = Context(profile=load_profile(name), folder=tmp_path, backends=list(BACKENDS), threads=2, device="cpu",
                  machine={"bandwidth_GBps": 20.0, "gemm_GFLOPs": 100.0}, data=data, data_dir=None,
                  memory_available_bytes=16 * 2**30)
    plan = [e for claim in CLAIMS for e in claim.plan(ctx)[0]]
    assert {e.claim for e in plan} >= {"C1", "C2", "C3", "C4", "B"}
    assert all(e.estimate["seconds"] > 0 and e.estimate["memory_bytes"] > 0 for e in plan)
    beyond = [e for e in plan if e.claim == "B"]  # beyond the paper: FAVOR+ and PAR speed in every profile
    assert {e.task.get("variant") for e in beyond if e.kind == "speed"} == {"favor", "par"}
    assert all(e.task["kind"] == "speed" for e in beyond if e.kind == "speed")  # every pattern the models need is there
    trained = [e for e in beyond if e.kind == "train_variant"]
    assert len({e.task["variant"] for e in trained}) == len(load_profile(name)["beyond"]["quality_variants"])
    assert all((e.task["kind"] == "skip") == (data["dataset"] is None) for e in trained)
    c3 = [e for e in plan if e.claim == "C3"]
    assert c3 and all((e.task["kind"] == "skip") == (data["dataset"] is None) for e in c3 if e.kind == "train")
    shipped = load_profile(name)["samples"].get("models") == "shipped"  # trained/ ships models: sampled without data
    assert all((e.task["kind"] == "skip") == (not shipped and data["dataset"] is None) for e in c3 if e.kind == "samples")


@pytest.mark.parametrize("name", profile_names())
def test_every_speed_task_compiles_the_step_as_its_profile_says(tmp_path, name):
    """[study] compile_step reaches every C1, C2 and beyond speed task, and the estimate of a task
    that compiles a step includes compiling it: PyTorch's, not JAX's (compiled in the warm-up), and
    softmax-uncached has no step to compile."""
    profile = load_profile(name)
    ctx = Context(profile=profile, folder=tmp_path, backends=["torch", "jax"], threads=2, device="cpu",
                  machine={"bandwidth_GBps": 20.0, "gemm_GFLOPs": 100.0}, data={"dataset": "mnist"}, data_dir=None,
                  memory_available_bytes=16 * 2**30)
    speed = [e for claim in CLAIMS for e in claim.plan(ctx)[0] if e.task["kind"] == "speed"]
    assert speed and all(e.task["compile"] is profile["study"]["compile_step"] for e in speed)
    for e in speed:
        base = generation.estimate({**e.task, "compile": False}, ctx.machine)["seconds"]
        compiles = e.task["compile"] and e.task["backend"] == "torch" and e.task["mode"] != "softmax-uncached"
        extra = estimates.COMPILE_SECONDS["torch"] if compiles else 0.0
        assert e.estimate["seconds"] == pytest.approx(base + extra), e.name
