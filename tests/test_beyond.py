"""Beyond the paper (replication/claims/beyond.py): FAVOR+ and PAR planned as C2's and C3's tasks
with the variant set, compared with C2's and C3's own rows, never judged; missing, failed and
contended runs reported as "not run: <why>"; and the experiments run end to end at toy sizes."""

import copy
import json

import pytest

from linattn.backends import BACKENDS
from replication.claims import beyond, generation
from replication.experiments import Context, Experiment, Outcome
from replication.profiles import ProfileError, load_profile, profile_names
from replication.run import Study
from replication.summary import build_summary

from test_driver import TINY

MACHINE = {"bandwidth_GBps": 20.0, "gemm_GFLOPs": 100.0}


def context(tmp_path, profile, backends=("torch",), data=None):
    return Context(profile=profile, folder=tmp_path, backends=tuple(backends), machine=MACHINE, threads=1,
                   device="cpu", data=data or {"dataset": "synthetic"}, memory_available_bytes=16 * 2**30)


@pytest.mark.parametrize("name", profile_names())
def test_speed_variants_are_c2_tasks_with_the_variant_set(tmp_path, name):
    profile = load_profile(name)
    ctx = context(tmp_path, profile, BACKENDS)
    c2 = {(e.task["backend"], e.task["model"], e.task["mode"]): e.task
          for e in generation.plan(ctx)[0] if e.claim == "C2"}
    b = profile["beyond"]
    speed = [e for e in beyond.plan(ctx)[0] if e.kind == "speed"]
    assert speed and all(e.claim == "B" for e in speed)
    for e in speed:
        t = e.task
        variant = {k: t[k] for k in ("feature_map", "layer_pattern") if k in t}
        same = {k: v for k, v in t.items() if k not in ("variant", "feature_map", "layer_pattern")}
        key = (t["backend"], t["model"], t["mode"])
        if key in c2:
            assert same == c2[key], e.id
        if t["variant"] == "favor":
            assert variant == {"feature_map": "favor"} and t["mode"] == "linear-recurrent"
        if t["variant"] == "par":
            n = 8 if t["model"] == "mnist" else 16
            assert variant == {"layer_pattern": b["par_patterns"][str(n)]}
            assert len(variant["layer_pattern"]) == n and variant["layer_pattern"].count("a") == round(3 * n / 8)
    assert {e.task["model"] for e in speed} == set(b["models"])


def test_baselines_that_c2_does_not_time_are_timed_here(tmp_path):
    profile = load_profile(TINY)  # C2 times mnist linear-recurrent only
    ids = [e.id for e in beyond.plan(context(tmp_path, profile))[0] if e.kind == "speed"]
    assert "B-torch-mnist-softmax-cached" in ids and "B-torch-mnist-linear-recurrent" not in ids
    assert {"B-torch-mnist-linear-recurrent-favor", "B-torch-mnist-softmax-cached-par",
            "B-torch-mnist-linear-recurrent-par"} <= set(ids)


def test_trained_variants_are_c3_tasks_with_the_variant_set(tmp_path):
    profile = load_profile("cpu")
    exps = [e for e in beyond.plan(context(tmp_path, profile, data={"dataset": "mnist"}))[0] if e.kind == "train_variant"]
    by = {e.task["variant"]: e.task for e in exps}
    assert sorted(by) == sorted(profile["beyond"]["quality_variants"])
    assert len(exps) == len(profile["quality"]["seeds"]) * 3
    q = profile["quality"]
    for t in by.values():
        assert {k: t[k] for k in ("steps", "batch_size", "learning_rate", "eval_every", "test_images")} == \
               {k: q[k] for k in ("steps", "batch_size", "learning_rate", "eval_every", "test_images")}
    model = {k: v for k, v in q["model"].items() if k != "sources"}
    assert by["linear-favor"]["model"] == {**model, "feature_map": "favor"}
    assert by["linear-favor"]["attention"] == "linear"
    assert by["softmax-par"]["model"] == {**model, "feature_map": "elu", "layer_pattern": "af"}
    assert by["softmax-par"]["attention"] == "softmax" and by["linear-par"]["attention"] == "linear"


def test_without_data_or_a_pattern_the_variants_are_not_run_with_the_reason(tmp_path):
    profile = copy.deepcopy(load_profile(TINY))
    profile["beyond"]["par_patterns"] = {}
    exps = beyond.plan(context(tmp_path, profile, data={"dataset": None, "reason": "offline", "fix": "fetch it"}))[0]
    skipped = {e.id: e.task for e in exps if e.task["kind"] == "skip"}
    assert skipped["B-torch-mnist-softmax-cached-par"]["reason"] == ("no PAR pattern for 8 layers in the profile's "
                                                                     "[beyond.par_patterns]")
    assert skipped["B-linear-favor"]["reason"] == "offline; fetch it" and skipped["B-linear-favor"]["status"] == "not run"
    assert "B-torch-mnist-linear-recurrent-favor" not in skipped
    assert all(e.estimate["seconds"] > 0 for e in exps)


def test_an_unknown_variant_is_refused_with_the_choices(tmp_path):
    profile = copy.deepcopy(load_profile(TINY))
    profile["beyond"]["quality_variants"] = ["linear-relu"]
    with pytest.raises(ProfileError, match="linear-relu.*linear-favor"):
        beyond.plan(context(tmp_path, profile))


def test_a_run_resumed_from_before_beyond_plans_none_of_it(tmp_path):
    profile = copy.deepcopy(load_profile(TINY))
    del profile["beyond"]  # run.json of an older run stores its profile without the section
    assert beyond.plan(context(tmp_path, profile)) == ([], {})


def test_c3_runs_are_read_as_lists_or_as_single_runs():
    one = {"status": "ok", "seed": 0, "test_bits_per_dim": 4.0}
    assert beyond.c3_runs({"quality": {"runs": {"linear": one}}}) == {"linear": [one]}
    assert beyond.c3_runs({"quality": {"runs": {"linear": [one, one]}}}) == {"linear": [one, one]}
    assert beyond.c3_runs({}) == {}


def speed_outcome(eid, backend, model, mode, variant, seconds, floor, flag=None, status="ok", **extra):
    task = {"kind": "speed", "backend": backend, "model": model, "mode": mode, "batch": 1, "variant": variant, **extra}
    result = {"status": status, "reason": None if status == "ok" else "boom"}
    if status == "ok":
        result.update(seconds_per_image=seconds, roofline_seconds_per_image=floor, extrapolated=False,
                      method="whole images", config={"n_features": 64})
    return Outcome(Experiment(eid, "B", "speed", task, {}), {"flag": flag}, result)


def train_outcome(variant, attention, seed, bpd, status="ok", pattern=""):
    task = {"kind": "train_variant", "backend": "torch", "variant": variant, "attention": attention, "seed": seed,
            "dataset": "mnist",
            "model": {"feature_map": "favor" if "favor" in variant else "elu", "layer_pattern": pattern}}
    curve = [{"step": s, "valid_bits_per_dim": v} for s, v in ((25, 5.0), (50, 4.5), (75, 4.2), (100, 4.1))]
    result = {"status": status, "reason": None if status == "ok" else "worker exited with 1: boom"}
    if status == "ok":
        result.update(steps=100, wall_seconds=10.0, seconds_per_step=0.1, curve=curve, test_bits_per_dim=bpd,
                      n_test_images=8, config={})
    return Outcome(Experiment(f"B-{variant}", "B", "train_variant", task, {}), {}, result)


def c3_row(attention, bpd, seed=0):
    return {"backend": "torch", "status": "ok", "seed": seed, "steps": 100, "seconds_per_step": 0.1,
            "test_bits_per_dim": bpd, "curve": [{"step": 100, "valid_bits_per_dim": bpd}] * 4, "dataset": "mnist"}


def summarised(outcomes, c3=None, latency=()):
    summary = {"latency": list(latency), "quality": {"runs": c3 or {}}}
    beyond.summarise(summary, outcomes, None)
    return summary


def test_comparisons_use_c2s_rows_and_leave_out_flagged_and_failed_timings():
    c2 = [{"backend": "torch", "model": "mnist", "mode": "linear-recurrent", "status": "ok", "flag": None,
           "seconds_per_image": 2.0, "roofline_seconds_per_image": 0.1},
          {"backend": "torch", "model": "mnist", "mode": "softmax-cached", "status": "ok", "flag": None,
           "seconds_per_image": 3.0, "roofline_seconds_per_image": 0.2}]
    outcomes = [speed_outcome("f", "torch", "mnist", "linear-recurrent", "favor", 3.0, 0.12, feature_map="favor"),
                speed_outcome("p1", "torch", "mnist", "softmax-cached", "par", 2.0, 0.1, layer_pattern="afafafff"),
                speed_outcome("p2", "torch", "mnist", "linear-recurrent", "par", 1.0, 0.05, layer_pattern="afafafff",
                              flag="contended in all 3 attempts (1.2 cores)"),
                speed_outcome("f2", "jax", "mnist", "linear-recurrent", "favor", None, None, status="failed",
                              feature_map="favor")]
    b = summarised(outcomes, latency=c2)["beyond"]
    favor = {f["backend"]: f for f in b["favor"]}
    assert favor["torch"]["time_ratio"] == pytest.approx(1.5) and favor["torch"]["floor_ratio"] == pytest.approx(1.2)
    assert favor["torch"]["n_features"] == 64 and favor["torch"]["missing"] is None
    assert favor["jax"]["time_ratio"] is None and "FAVOR+: failed (boom)" in favor["jax"]["missing"]
    assert "elu + 1: not timed in this run" in favor["jax"]["missing"]
    par = {p["mode"]: p for p in b["par"]}
    assert par["softmax-cached"]["speedup"] == pytest.approx(1.5) and par["softmax-cached"]["n_attending"] == 3
    assert par["linear-recurrent"]["speedup"] is None
    assert par["linear-recurrent"]["missing"] == "PAR: measured but left out (contended in all 3 attempts (1.2 cores))"
    section = beyond.beyond_section(b)
    cells = [c for r in section["par"]["rows"] for c in r]
    assert "not run: PAR: measured but left out (contended in all 3 attempts (1.2 cores))" in cells
    assert not section["favor_missing"] and not section["par_missing"] and section["variants_missing"]
    assert section["variants_missing_text"] == ("Quality of the variants not run: no variant was trained (the profile's "
                                                "[beyond] names none in quality_variants).")
    assert "1.5× the time of elu + 1 on MNIST" in beyond.favor_prose(b)
    assert "softmax-cached 1.5× faster" in beyond.par_prose(b)


def test_variants_are_compared_with_c3_on_the_same_seeds_and_failures_say_why():
    outcomes = [train_outcome("linear-favor", "linear", 0, 4.3), train_outcome("linear-favor", "linear", 1, 4.5),
                train_outcome("softmax-par", "softmax", 0, None, status="failed", pattern="af")]
    c3 = {"linear": [c3_row("linear", 4.2, 0), c3_row("linear", 4.3, 1), c3_row("linear", 9.9, 2)],
          "softmax": c3_row("softmax", 4.1, 0)}  # one run, not a list: the accessor takes both
    b = summarised(outcomes, c3)["beyond"]
    q = {e["variant"]: e for e in b["quality"]}
    assert q["linear-favor"]["difference"] == pytest.approx((4.3 + 4.5) / 2 - (4.2 + 4.3) / 2)  # seed 2 is not C3's pair
    assert q["linear-favor"]["n_paired"] == 2 and q["linear-favor"]["undertrained"]  # still falling 2.4% at the end
    assert q["softmax-par"]["difference"] is None
    assert q["softmax-par"]["missing"] == "softmax-par: failed (worker exited with 1: boom)"
    rows = beyond.beyond_section(b)["variants"]["rows"]
    assert ["softmax-par", "softmax, PAR af"] == rows[1][:2] and rows[1][7].startswith("not run: softmax-par: failed")
    prose = beyond.quality_prose(b)
    assert "means over 2 seeds" in prose and "undertrained" in prose and "+0.150" in prose


def test_a_summary_without_beyond_says_not_run():
    section = beyond.beyond_section(None)
    assert section["favor_missing"] and section["par_missing"] and section["variants_missing"]
    assert all(n.startswith(("FAVOR+ generation speed not run: ", "PAR generation speed not run: ",
                             "Quality of the variants not run: ")) for n in section["notices"])
    assert len(section["notices"]) == 3 and beyond.favor_prose(None) == ""


@pytest.mark.slow
def test_beyond_runs_end_to_end_at_toy_sizes(tmp_path):
    """The tiny profile's beyond experiments in worker processes (PyTorch; C2 planned none, so the
    baselines are timed here), summarised and laid out: every comparison has its number."""
    profile = copy.deepcopy(load_profile(TINY))
    profile["latency"]["models"] = []
    study = Study(profile, tmp_path / "run", backends=["torch"])
    study._start()
    study.state.update(machine=MACHINE, memory_available_bytes=16 * 2**30, data={"dataset": "synthetic"},
                       backends={"torch": {"status": "ok", "reason": None, "info": None}})
    exps, _ = beyond.plan(Context(profile=profile, folder=study.folder, backends=("torch",), machine=MACHINE, threads=1,
                                  data={"dataset": "synthetic"}))
    for e in exps:
        assert study.experiment(e)["status"] == "ok", e.id
    study.state["finished"] = "now"
    study._save()
    summary = build_summary(study.folder)
    assert [c["id"] for c in summary["claims"]] == ["C1", "C2", "C3", "C4", "C5"]  # no verdict row of its own
    b = summary["beyond"]
    timed = [*b["favor"], *b["par"]]
    assert len(b["favor"]) == 1 and sorted(p["mode"] for p in b["par"]) == ["linear-recurrent", "softmax-cached"]
    for c in timed:  # a number, or left out by the hygiene checks (this machine may be busy), saying so
        ratio = c.get("time_ratio", c.get("speedup"))
        usable = ratio is not None and ratio > 0 and c["missing"] is None
        assert usable or "measured but left out (contended" in c["missing"], c
    assert {r["variant"] for r in b["runs"] if r["status"] == "ok"} == {"linear-favor", "linear-par", "softmax-par"}
    assert all(q["difference"] is None and "C3 has no" in q["missing"] for q in b["quality"])  # C3 did not run here
    assert {r["claim"] for r in summary["compute"]} == {"B"}
    checkpoint = json.loads((study.folder / "checkpoints" / "linear-favor" / "config.json").read_text())
    assert checkpoint["feature_map"] == "favor" and checkpoint["n_layers"] == 1
    section = beyond.beyond_section(b)
    assert section["variants_missing"] and section["favor"]["rows"] and section["par"]["rows"]
