"""The verdict rules, in one place, each with its reason. The summary applies them; the report
prints RULES as they stand here.

A verdict is never stronger than its evidence. The verdicts are:
- "replicated": our number agrees with the paper's within the claim's tolerance;
- "direction only": the same direction (linear faster; the gap as small or smaller), another size;
- "not replicated": the opposite direction;
- "inconclusive: <why>": the evidence cannot decide (undertrained models, too few points for a fit,
  timings taken under contention, a ratio too close to a boundary to be stable between runs);
- "not run: <why>": the measurements are missing;
- "context": an absolute number that depends on the hardware, shown but not judged.
"""

from __future__ import annotations

import math

# --- thresholds (each with its reason in RULES below) ------------------------------------------
SPEEDUP_FACTOR = 2.0  # C1/C2: a speed-up within this factor of the paper's is replicated
BOUNDARY_MARGIN = 1.3  # C1/C2: within this factor of a verdict boundary the verdict is inconclusive
CONTENDED_CORES = 0.25  # cores used by other processes on average during a measurement
REMEASURE_ATTEMPTS = 2  # extra attempts for a contended timing (profiles may lower it)
QUIET_WAIT_SECONDS = 30.0  # how long to wait for a quiet machine before each new attempt
OUTLIER_FACTOR = 3.0  # a timing this far above its mode's usual multiple of the roofline floor
GAP_TOLERANCE = 0.1  # C3: bits/dim gap within this of the paper's gap is replicated
CONVERGED_DROP = 0.01  # C3: validation bits/dim falling more than 1% over the last fifth: undertrained
LAST_FRACTION = 0.2  # C3: "the last fifth of training"
MIN_EVALUATIONS = 4  # C3: validation points needed to judge convergence
REGIME_FACTOR = 2.0  # C3 (MNIST): bits/dim above 2x the paper's is far from the paper's regime
MIN_SEEDS = 2  # C3: seeds per attention needed to set a gap against the spread between seeds
MIN_LENGTHS = 4  # C4: lengths needed for an exponent
MIN_SPAN = 8.0  # C4: largest / smallest length needed for an exponent
EXPONENT_TOLERANCE = 0.35  # C4: an exponent within this of the paper's is replicated
PAPER_GPU_MEMORY_BYTES = 11e9  # C4: the memory budget of the scaling study, the paper's GTX 1080 Ti

RULES = [
    {"claims": "all", "rule": "A profile that only tests the pipeline (smoke: a few steps, one repeat, toy training) "
     "judges nothing: every verdict is inconclusive.",
     "reason": "Its budgets are chosen to finish in seconds, not to measure; its numbers show that every path runs."},
    {"claims": "C1, C2", "rule": f"A speed-up is replicated within a factor {SPEEDUP_FACTOR:g} of the paper's, "
     "direction only if linear attention is faster by another amount, not replicated if it is not faster.",
     "reason": "Absolute speeds depend on the hardware (the paper: a GTX 1080 Ti and an unnamed CPU); ratios of "
     "modes measured on one machine carry over, but not to better than about a factor 2."},
    {"claims": "C1, C2", "rule": f"A ratio within a factor {BOUNDARY_MARGIN:g} of a verdict boundary (the paper's "
     f"ratio / {SPEEDUP_FACTOR:g} or x {SPEEDUP_FACTOR:g}, or 1) is inconclusive.",
     "reason": "Two cpu runs of this study on one machine gave the same CIFAR-10 ratio as 2,507x and 1,934x "
     "(a factor 1.3 apart), on both sides of the 2,231x boundary: a verdict that close would flip between runs."},
    {"claims": "C1, C2, C4", "rule": f"A timing during which other processes used more than {CONTENDED_CORES:g} "
     f"cores on average is contended: it is re-measured (up to {REMEASURE_ATTEMPTS} more times, after waiting up to "
     f"{QUIET_WAIT_SECONDS:g} s for a quiet machine), and if still contended it is flagged and left out of every verdict.",
     "reason": "One earlier run timed softmax-uncached at 639 s per MNIST image while another process used the cores; "
     "alone it took 64.7 s. The process's own CPU share cannot tell contention from a step that uses one thread, "
     "so the machine's busy time (/proc/stat) minus the process's own is what is judged; the own share and the load "
     "average are recorded beside it."},
    {"claims": "C1, C2", "rule": f"A timing more than {OUTLIER_FACTOR:g}x further above its roofline floor than "
     "the same backend and mode at the other model sizes (batch 1 and larger batches apart) is an outlier: it is re-measured once, and if it stays an outlier "
     "it is flagged and left out of every verdict.",
     "reason": "Each mode keeps a similar multiple of its floor across sizes; a single far-off timing is more likely "
     "a disturbance than a property of the code."},
    {"claims": "C3", "rule": f"Bits/dim are compared only between trained models: at least {MIN_EVALUATIONS} "
     f"validation points, and validation bits/dim falling by at most {CONVERGED_DROP:.0%} over the last "
     f"{LAST_FRACTION:.0%} of the steps; otherwise the verdict is inconclusive (undertrained).",
     "reason": "The paper compares models after 250 epochs (MNIST) or 7 days (CIFAR-10). Two models still learning "
     "fast can be equal or far apart by chance of where training stopped."},
    {"claims": "C3", "rule": f"On MNIST, models above {REGIME_FACTOR:g}x the paper's bits/dim are far from the paper's "
     f"regime (inconclusive); synthetic images are never judged. The gap linear - softmax (of the means over seeds) "
     f"is replicated within {GAP_TOLERANCE:g} bits/dim of the paper's. It needs at least {MIN_SEEDS} seeds per attention, "
     f"and twice its standard error over seeds must not exceed {GAP_TOLERANCE:g}; otherwise it is inconclusive.",
     "reason": "The paper's gap (0.023 bits/dim on MNIST) is a property of well-trained models; other data sets "
     "(Fashion-MNIST, labelled) have no paper number, so only the gap is judged there. One run per attention "
     "cannot tell a gap from the difference two seeds of the same attention make."},
    {"claims": "C4", "rule": f"An exponent needs at least {MIN_LENGTHS} uncontended lengths spanning at least "
     f"{MIN_SPAN:g}x; it is replicated within {EXPONENT_TOLERANCE:g} of the paper's (2 for softmax, 1 for linear). "
     f"Lengths are limited by a memory budget of {PAPER_GPU_MEMORY_BYTES / 1e9:g} GB, the paper's GPU, or less where "
     "the machine has less (the report says so).",
     "reason": "A line through two points always fits; over a short span, fixed costs bend the curve. The paper's "
     "'largest length that fits' (Figure 1) is a property of its 11 GB GPU."},
]


def inconclusive(why: str) -> str:
    return f"inconclusive: {why}"


def unjudged(claims: list, why: str) -> list:
    """The claims with every judged verdict replaced by "inconclusive: <why>" (a pipeline test)."""
    keep = ("context", "measured", "not run")
    return [{**c, "rows": [r if r["verdict"].startswith(keep) else {**r, "verdict": inconclusive(why)} for r in c["rows"]]}
            for c in claims]


def _x(v: float) -> str:
    return f"{v:,.0f}x" if v >= 100 else f"{v:.3g}x"


def speedup(ours, paper) -> str:
    """The verdict of a speed-up `ours` against the paper's `paper` (both > 0; None: not run)."""
    if ours is None:
        return "not run"
    boundaries = [paper / SPEEDUP_FACTOR, paper * SPEEDUP_FACTOR, 1.0]
    near = [b for b in boundaries if b / BOUNDARY_MARGIN < ours < b * BOUNDARY_MARGIN]
    if near:
        return inconclusive(f"{_x(ours)} is within a factor {BOUNDARY_MARGIN:g} of the boundary {_x(near[0])}")
    if paper / SPEEDUP_FACTOR <= ours <= paper * SPEEDUP_FACTOR:
        return "replicated"
    if ours > 1 and paper > 1:
        return "direction only" + (" (larger)" if ours > paper else " (smaller)")
    return "not replicated"


def convergence(curve) -> tuple[bool, str]:
    """(trained, why): is validation bits/dim flat over the last fifth of training?"""
    points = [p for p in curve if p.get("valid_bits_per_dim") is not None]
    if len(points) < MIN_EVALUATIONS:
        return False, f"{len(points)} validation point(s), fewer than {MIN_EVALUATIONS} to judge convergence"
    last = points[-1]
    start_step = last["step"] * (1 - LAST_FRACTION)
    earlier = [p for p in points if p["step"] <= start_step] or points[:1]
    first = earlier[-1]
    drop = (first["valid_bits_per_dim"] - last["valid_bits_per_dim"]) / first["valid_bits_per_dim"]
    if drop > CONVERGED_DROP:
        return False, (f"undertrained: validation bits/dim still fell {drop:.1%} from step {first['step']} "
                       f"to {last['step']} (more than {CONVERGED_DROP:.0%})")
    return True, f"validation bits/dim changed {-drop:+.1%} over steps {first['step']}-{last['step']}"


def mean_sd(values) -> dict:
    """{"n", "mean", "sd"} of `values`: their mean and sample standard deviation (None under two;
    mean None for none)."""
    v = list(values)
    if not v:
        return {"n": 0, "mean": None, "sd": None}
    mean = sum(v) / len(v)
    sd = (sum((x - mean) ** 2 for x in v) / (len(v) - 1)) ** 0.5 if len(v) > 1 else None
    return {"n": len(v), "mean": mean, "sd": sd}


def gap_standard_error(a: dict, b: dict) -> float | None:
    """The standard error of the difference of two means given as `mean_sd` dicts: sqrt(sd_a^2/n_a +
    sd_b^2/n_b) (None under two values each)."""
    if a["sd"] is None or b["sd"] is None:
        return None
    return (a["sd"] ** 2 / a["n"] + b["sd"] ** 2 / b["n"]) ** 0.5


def quality(runs: dict, dataset: str, paper: dict) -> tuple[str, str]:
    """(verdict, evidence) of the bits/dim gap linear - softmax between the runs `runs[attention]`
    (a list, one per seed, each with curve and test_bits_per_dim) on `dataset`; `paper` holds the
    paper's MNIST numbers. The gap is that of the means over seeds; its standard error must be
    small against the tolerance for any verdict but inconclusive."""
    if dataset == "synthetic":
        return inconclusive("synthetic images (no real data set was available), not judged"), "synthetic"
    notes, stats = [], {}
    for attention in ("linear", "softmax"):
        rs = runs[attention]
        for r in rs:
            trained, why = convergence(r["curve"])
            if not trained:
                return inconclusive(f"{attention} (seed {r.get('seed', 0)}) {why}"), why
            bpd = r["test_bits_per_dim"]
            if not (bpd is not None and math.isfinite(bpd)):
                return inconclusive(f"{attention} (seed {r.get('seed', 0)}) test bits/dim is not a number"), "not finite"
        notes.append(f"{attention}: {why}")
        stats[attention] = mean_sd(r["test_bits_per_dim"] for r in rs)
        mean = stats[attention]["mean"]
        if stats[attention]["n"] < MIN_SEEDS:
            return inconclusive(f"{stats[attention]['n']} seed(s) of {attention}, fewer than {MIN_SEEDS}: the spread "
                                "between seeds is unknown"), "; ".join(notes)
        if dataset == "mnist" and mean > REGIME_FACTOR * paper[attention]:
            return inconclusive(f"{attention} at {mean:.2f} bits/dim is far from the paper's "
                                f"{paper[attention]} (more than {REGIME_FACTOR:g}x)"), "far from the paper's regime"
    gap = stats["linear"]["mean"] - stats["softmax"]["mean"]
    se = gap_standard_error(stats["linear"], stats["softmax"])
    if 2 * se > GAP_TOLERANCE:
        return inconclusive(f"the gap {gap:+.3f} has a standard error of {se:.3f} over seeds: twice that is wider "
                            f"than the tolerance {GAP_TOLERANCE:g}"), "; ".join(notes)
    gap_paper = paper["linear"] - paper["softmax"]
    label = "" if dataset == "mnist" else f" (on {dataset}, not the paper's data)"
    if abs(gap - gap_paper) <= GAP_TOLERANCE:
        return "replicated" + label, "; ".join(notes)
    return ("direction only" + label if gap < gap_paper else "not replicated" + label), "; ".join(notes)


def exponent(ours, paper, lengths) -> str:
    """The verdict of a fitted exponent over `lengths` (the T values it used)."""
    if ours is None or not lengths:
        return "not run"
    span = max(lengths) / min(lengths)
    if len(lengths) < MIN_LENGTHS or span < MIN_SPAN:
        return inconclusive(f"fitted over {len(lengths)} length(s) spanning {span:g}x; needs at least "
                            f"{MIN_LENGTHS} spanning {MIN_SPAN:g}x")
    return "replicated" if abs(ours - paper) <= EXPONENT_TOLERANCE else "not replicated"


def usable(row) -> bool:
    """A successful measurement that passed the hygiene checks (no flag): the only kind verdicts use."""
    return row["status"] == "ok" and not row.get("flag")


def counts(claims) -> dict:
    """How many claim rows have each verdict ("direction only (larger)" counts as "direction only")."""
    out = {}
    for c in claims:
        for r in c["rows"]:
            if r["verdict"] not in ("context", "measured"):
                key = r["verdict"].split(" (")[0].split(":")[0]
                out[key] = out.get(key, 0) + 1
    return out
