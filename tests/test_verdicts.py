"""The verdict rules (replication/verdicts.py) and the measurement-hygiene checks behind them:
no verdict stronger than its evidence, and a busy machine noticed, re-measured and flagged."""

import os
import subprocess
import sys
import time

import pytest

from replication import hygiene, verdicts
from replication.experiments import Experiment
from replication.profiles import load_profile
from replication.run import Study
from replication.summary import build_summary

from test_driver import TINY


# --- speed-ups (C1, C2) ---------------------------------------------------------------------------

@pytest.mark.parametrize("ours, paper, expected", [
    (4000.0, 4462.0, "replicated"),
    (20000.0, 4462.0, "direction only (larger)"),
    (500.0, 4462.0, "direction only (smaller)"),
    (0.5, 55.8, "not replicated"),
    (None, 55.8, "not run"),
])
def test_speedups_far_from_a_boundary_get_their_verdict(ours, paper, expected):
    assert verdicts.speedup(ours, paper) == expected


@pytest.mark.parametrize("ours", [1934.0, 2507.0, 2231.0])  # two cpu runs of the same ratio, and the boundary
def test_a_speedup_near_a_boundary_is_inconclusive_on_both_sides(ours):
    v = verdicts.speedup(ours, 4462.0)
    assert v.startswith("inconclusive") and "2,23" in v


def test_a_speedup_near_one_is_inconclusive():
    assert verdicts.speedup(1.1, 1.59).startswith("inconclusive")


# --- quality (C3) ---------------------------------------------------------------------------------

def curve(values, every=50):
    return [{"step": every * (i + 1), "valid_bits_per_dim": v} for i, v in enumerate(values)]


MNIST = {"linear": 0.644, "softmax": 0.621}


def runs(linear, softmax, lin_bpd, soft_bpd, spread=0.0, seeds=3):
    """Runs of both attentions over `seeds` seeds whose test bits/dim spread +-spread around the given means."""
    offsets = [spread * (i - (seeds - 1) / 2) for i in range(seeds)] if seeds > 1 else [0.0]
    return {"linear": [{"seed": i, "curve": linear, "test_bits_per_dim": lin_bpd + o} for i, o in enumerate(offsets)],
            "softmax": [{"seed": i, "curve": softmax, "test_bits_per_dim": soft_bpd + o} for i, o in enumerate(offsets)]}


def test_models_still_learning_are_undertrained():
    still = curve([5.0, 4.6, 4.5, 4.41])  # 2% over the last fifth
    v, _ = verdicts.quality(runs(still, still, 4.41, 4.40), "fashion-mnist", MNIST)
    assert v.startswith("inconclusive") and "undertrained" in v


def test_too_few_validation_points_cannot_show_convergence():
    v, _ = verdicts.quality(runs(curve([1.0, 1.0]), curve([1.0, 1.0]), 1.0, 1.0), "mnist", MNIST)
    assert v.startswith("inconclusive") and "fewer than" in v


def test_converged_models_far_from_the_papers_regime_are_not_judged():
    flat = curve([3.0, 2.95, 2.94, 2.94, 2.94])
    v, _ = verdicts.quality(runs(flat, flat, 2.94, 2.93), "mnist", MNIST)
    assert v.startswith("inconclusive") and "far from the paper" in v


def test_converged_models_in_the_papers_regime_are_judged():
    flat = curve([1.0, 0.8, 0.70, 0.70, 0.70])
    assert verdicts.quality(runs(flat, flat, 0.70, 0.68), "mnist", MNIST)[0] == "replicated"
    assert verdicts.quality(runs(flat, flat, 0.95, 0.68), "mnist", MNIST)[0] == "not replicated"
    other = verdicts.quality(runs(flat, flat, 2.95, 2.94), "fashion-mnist", MNIST)[0]
    assert other == "replicated (on fashion-mnist, not the paper's data)"


def test_one_seed_cannot_set_a_gap_against_the_spread():
    flat = curve([1.0, 0.8, 0.70, 0.70, 0.70])
    v, _ = verdicts.quality(runs(flat, flat, 0.70, 0.68, seeds=1), "mnist", MNIST)
    assert v.startswith("inconclusive") and "spread between seeds" in v


def test_a_gap_inside_the_spread_between_seeds_is_inconclusive():
    flat = curve([1.0, 0.8, 0.70, 0.70, 0.70])
    wide = verdicts.quality(runs(flat, flat, 0.70, 0.68, spread=0.2), "mnist", MNIST)[0]
    assert wide.startswith("inconclusive") and "standard error" in wide
    narrow = verdicts.quality(runs(flat, flat, 0.70, 0.68, spread=0.01), "mnist", MNIST)[0]
    assert narrow == "replicated"


def test_every_seed_must_be_trained():
    flat, still = curve([1.0, 0.8, 0.70, 0.70, 0.70]), curve([5.0, 4.6, 4.5, 4.41])
    r = runs(flat, flat, 0.70, 0.68)
    r["softmax"][2]["curve"] = still
    v, _ = verdicts.quality(r, "mnist", MNIST)
    assert v.startswith("inconclusive") and "softmax (seed 2)" in v and "undertrained" in v


def test_synthetic_images_are_never_judged():
    flat = curve([1.0] * 5)
    assert verdicts.quality(runs(flat, flat, 1.0, 1.0), "synthetic", MNIST)[0].startswith("inconclusive")


# --- scaling (C4) ---------------------------------------------------------------------------------

@pytest.mark.parametrize("lengths, ok", [
    ([512, 1024], False),                     # two points: any line fits
    ([1024, 2048, 4096], False),              # three points
    ([1024, 2048, 4096, 6144], False),        # four points, 6x
    ([512, 1024, 2048, 4096], True),          # four points, 8x
])
def test_an_exponent_needs_four_lengths_spanning_eight_times(lengths, ok):
    v = verdicts.exponent(2.05, 2.0, lengths)
    assert (v == "replicated") if ok else v.startswith("inconclusive")


def test_a_pipeline_test_judges_nothing():
    claims = [{"id": "C1", "rows": [{"verdict": v} for v in ("replicated", "direction only (larger)", "context",
                                                           "not run", "inconclusive: few points")]}]
    rows = verdicts.unjudged(claims, "smoke")[0]["rows"]
    assert [r["verdict"] for r in rows] == ["inconclusive: smoke"] * 2 + ["context", "not run", "inconclusive: smoke"]


def test_every_rule_has_a_reason_for_the_report():
    assert verdicts.RULES and all(r["rule"] and r["reason"] and r["claims"] for r in verdicts.RULES)


# --- contention -----------------------------------------------------------------------------------

def reading(wall, own, busy, load=0.0):
    return {"wall": wall, "own": own, "busy": busy, "load": load}


def test_cores_taken_by_other_processes_make_a_timing_contended():
    quiet = hygiene.contention(reading(0, 0, 100), reading(10, 10, 110.5), threads=1)
    assert not quiet["contended"] and quiet["other_cores"] == pytest.approx(0.05)
    assert quiet["own_cpu_share"] == pytest.approx(1.0)
    busy = hygiene.contention(reading(0, 0, 100), reading(10, 10, 125), threads=2)
    assert busy["contended"] and busy["other_cores"] == pytest.approx(1.5) and "1.50 cores" in busy["why"]
    assert busy["own_cpu_share"] == pytest.approx(0.5)


@pytest.mark.slow
def test_a_timing_on_a_busy_machine_is_remeasured_and_flagged(tmp_path):
    """A deliberately busy process on every core: the timing is noticed, measured again, flagged,
    and kept out of the verdicts."""
    profile = load_profile(TINY)
    profile["study"].update(remeasure_attempts=1, quiet_wait_seconds=1)
    study = Study(profile, tmp_path / "r", backends=["torch"])
    study._start()
    machine = {"bandwidth_GBps": 10.0, "gemm_GFLOPs": 100.0}
    task = dict(kind="speed", backend="torch", model="mnist", mode="linear-recurrent", batch=1, repeats=1, steps=4,
                threads=1, machine=machine)
    spin = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)]
    try:
        time.sleep(0.5)
        result = study.experiment(Experiment("C1-torch-mnist-linear-recurrent-b1", "C1", "speed", task,
                                             {"seconds": 5.0, "memory_bytes": 1.0}))
    finally:
        for p in spin:
            p.kill()
            p.wait()
    rec = study.state["experiments"]["C1-torch-mnist-linear-recurrent-b1"]
    print("\ncontention test: attempt, wall s, own CPU share, other processes' cores, load before/after, contended")
    for i, a in enumerate(rec["attempts"]):
        c = a["contention"]
        print(f"  {i + 1}  {c['wall_seconds']:.1f}  {c['own_cpu_share']:.2f}  {c['other_cores']:.2f}  "
              f"{c['load_before']:.2f}/{c['load_after']:.2f}  {c['contended']}")
    print(f"  flag: {result.get('flag')}")
    assert result["status"] == "ok" and len(rec["attempts"]) == 2
    assert all(a["contention"]["contended"] and a["contention"]["other_cores"] > verdicts.CONTENDED_CORES
               for a in rec["attempts"])
    assert result["flag"].startswith("contended in all 2 attempts") and rec["flag"] == result["flag"]
    summary = build_summary(tmp_path / "r")
    row = summary["throughput"][0]
    assert row["flag"] == result["flag"] and row["contention"]["contended"]
    c1 = summary["claims"][0]
    assert c1["status"] == "not run" and "flagged" in c1["note"]  # the only timing is kept out of the verdicts
    assert summary["flagged"] == [{"id": "C1-torch-mnist-linear-recurrent-b1", "flag": result["flag"]}]
