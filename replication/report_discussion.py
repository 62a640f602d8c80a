"""The report's number-driven prose: sentences composed from summary.json, so that every statement
that depends on a result stays true for any result (each is phrased by the sign or size of the
number it states). Fixed prose (what was easy, what was hard) lives in report/sections/.

`discussion(summary, paper) -> {name: paragraph}`; `paper` holds the paper's ratios
(report_data.paper_numbers(...)["values"]).
"""

from __future__ import annotations

import math

from .report_figures import BACKEND_NAMES, BACKENDS, latency_rows
from .summary import fmt, usable

PROFILE_CAVEATS = {
    "smoke": "These results come from the smoke profile: toy sizes and a handful of steps that exercise the whole "
             "pipeline in about a minute. Their numbers say nothing about the paper's claims.",
    "cpu": "These results come from the cpu profile: the paper's model sizes for generation speed, measured on a CPU, "
           "and a reduced model and budget for training. The paper measured on GPUs.",
    "paper": "These results come from the paper profile: the paper's sizes and budgets.",
}


def x(v):
    return fmt(v, "×")


def overview(summary, counts):
    parts = [PROFILE_CAVEATS.get(summary["run"].get("profile"), "")]
    n = sum(counts.values())
    if n:
        words = [f"{counts[k]} {k}" for k in ("replicated", "direction only", "not replicated", "inconclusive", "not run")
                 if counts.get(k)]
        parts.append(f"Of the {n} comparisons with a number of the paper that carry a verdict, "
                     + ", ".join(words) + " (Table 1; the rules that decide each verdict, and why, are in Table 2).")
    missing = [c for c in summary["claims"] if c["status"] != "measured"]
    for c in missing:
        parts.append(f"{c['id']} not run: {c.get('note') or 'no measurement'}.")
    return " ".join(p for p in parts if p)


def decomposition(summary, paper):
    """Paragraphs on how the linear-vs-uncached speed-up splits into the KV cache and linear attention
    (and what batch size adds): in full for the first backend measured, one sentence for each other."""
    entries = sorted(summary["decomposition"].values(),
                     key=lambda d: (BACKENDS.index(d["backend"]), ("mnist", "cifar").index(d["model"])))
    if not entries:
        return ["The decomposition needs all three modes of one model measured on one backend; this run has no such set."]
    first = entries[0]["backend"]
    out = [_decomposition_in_full(d, paper) for d in entries if d["backend"] == first]
    for backend in BACKENDS:
        rest = [d for d in entries if d["backend"] == backend and backend != first]
        if rest:
            out.append(f"With {BACKEND_NAMES[backend]} the same split gives "
                       + "; ".join(f"{d['model'].upper()} {x(d['total'])} = {x(d['from_cache'])} (cache) × "
                                   f"{x(d['linear_over_cached'])} (linear over cached){_share(d)}" for d in rest) + ".")
    return out


def recap(summary):
    """One sentence per model of the first backend: the speed-up as the product of its factors."""
    entries = sorted(summary["decomposition"].values(),
                     key=lambda d: (BACKENDS.index(d["backend"]), ("mnist", "cifar").index(d["model"])))
    entries = [d for d in entries if d["backend"] == entries[0]["backend"]] if entries else []
    parts = []
    for d in entries:
        p = (f"on {d['model'].upper()} the {x(d['total'])} of linear over uncached softmax is {x(d['from_cache'])} from the "
             f"KV cache times {x(d['linear_over_cached'])} from linear attention{_share(d)}")
        if d["from_batch"] is not None and d["best_batch"]["linear-recurrent"] != 1:
            p += f", and linear-recurrent gains {x(d['from_batch'])} from batch {d['best_batch']['linear-recurrent']} over batch 1"
        parts.append(p)
    if not parts:
        return ""
    return f"Decomposed ({BACKEND_NAMES[entries[0]['backend']]}, each mode at its best batch): " + "; ".join(parts) + "."


def _share(d):
    """', N% of it from the cache' on a log scale, where both factors are speed-ups."""
    if d["total"] > 1 and d["from_cache"] > 1 and d["linear_over_cached"] > 1:
        return f", {math.log(d['from_cache']) / math.log(d['total']):.0%} of it from the cache on a log scale"
    return ""


def _decomposition_in_full(d, paper):
    m, b, bb = d["model"], BACKEND_NAMES[d["backend"]], d["best_batch"]
    s = (f"{m.upper()}, {b}: linear-recurrent generation at its best batch ({bb['linear-recurrent']}) delivers "
         f"{x(d['total'])} the images per second of softmax-uncached at its best batch ({bb['softmax-uncached']}); "
         f"the paper reports {x(paper[m + '_total'])}. The ratio is the product of {x(d['from_cache'])} from caching keys "
         f"and values (softmax-cached over softmax-uncached; paper {x(paper[m + '_cache'])}) and "
         f"{x(d['linear_over_cached'])} from replacing the growing cache by linear attention's constant-size state "
         f"(linear-recurrent over softmax-cached; paper {x(paper[m + '_linear_over_cached'])}).")
    if d["total"] > 1 and d["from_cache"] > 1 and d["linear_over_cached"] > 1:
        share = math.log(d["from_cache"]) / math.log(d["total"])
        s += (f" On a log scale, {share:.0%} of the speed-up comes from the KV cache, which any softmax transformer can "
              f"use, and {1 - share:.0%} from linear attention itself.")
    elif d["linear_over_cached"] <= 1:
        s += (" Linear attention was not faster than the cached softmax here, so all of the advantage over the "
              "uncached baseline comes from not re-running the prefix at every step.")
    elif d["from_cache"] <= 1:
        s += " The KV cache did not speed up softmax here; the advantage comes from linear attention itself."
    if d["from_batch"] is not None:
        if bb["linear-recurrent"] == 1:
            s += " Linear-recurrent generation was fastest at batch 1 in this run, so batch size contributes nothing."
        else:
            s += (f" Batch size contributes a factor of its own: linear-recurrent at batch {bb['linear-recurrent']} "
                  f"delivers {x(d['from_batch'])} its throughput at batch 1.")
    return s


def latency(summary, paper):
    lat = latency_rows(summary)
    out = []
    for model in ("mnist", "cifar"):
        lin, cached = lat.get(("torch", model, "linear-recurrent")), lat.get(("torch", model, "softmax-cached"))
        uncached = lat.get(("torch", model, "softmax-uncached"))
        if lin is None:
            continue
        s = f"{model.upper()} at batch 1 on the CPU (PyTorch): linear-recurrent takes {fmt(lin, ' s')} per image"
        if cached:
            faster = "faster" if cached > lin else "slower"
            s += (f", softmax-cached {fmt(cached, ' s')}: linear is {x(max(cached, lin) / min(cached, lin))} {faster} "
                  f"(paper: {x(paper[model + '_latency_cached_cpu'])} on CPU, {x(paper[model + '_latency_cached_gpu'])} on GPU)")
        if uncached:
            s += (f"; softmax-uncached takes {fmt(uncached, ' s')}, {x(uncached / lin)} linear's time "
                  f"(paper, CPU: {x(paper[model + '_latency_uncached_cpu'])})")
        out.append(s + ".")
    return " ".join(out) or "No batch-1 latency was measured with PyTorch in this run."


def quality(summary, paper):
    runs = summary["quality"]["runs"]
    lin, soft = runs.get("linear", {}), runs.get("softmax", {})
    if lin.get("status") != "ok" or soft.get("status") != "ok":
        c3 = next(c for c in summary["claims"] if c["id"] == "C3")
        return f"C3 not run: {c3.get('note') or 'training not run'}."
    gap = round(lin["test_bits_per_dim"] - soft["test_bits_per_dim"], 3)
    better = "linear is better" if gap < 0 else "softmax is better" if gap > 0 else "equal to three decimals"
    gap_text = f"{gap:+.3f}" if gap else "0.000"
    s = (f"After the same {lin['steps']:,} training steps on {summary['quality']['dataset']}, linear attention reached "
         f"{lin['test_bits_per_dim']:.3f} test bits/dim and softmax {soft['test_bits_per_dim']:.3f}: a gap of {gap_text} "
         f"({better}; the paper's MNIST gap after 250 epochs is {paper['mnist_bpd_gap']:+.3f}). A linear training step took "
         f"{x(lin['seconds_per_step'] / soft['seconds_per_step'])} the time of a softmax step at this sequence length.")
    if summary["quality"]["dataset"] == "synthetic":
        s += " The data were synthetic, so this comparison tests the pipeline, not the claim."
    c3 = next(c for c in summary["claims"] if c["id"] == "C3")
    verdict = c3["rows"][0]["verdict"] if c3.get("rows") else "not run"
    s += f" Verdict: {verdict}."
    if verdict.startswith("inconclusive"):
        s += (" These models are not trained far enough for the paper's claim, which is about models after 250 "
              "epochs: the numbers show that training works in every backend, not how the two attentions compare.")
    elif c3.get("evidence"):
        s += f" Convergence: {c3['evidence']}."
    return s


def scaling(summary):
    ok = [r for r in summary["scaling"] if usable(r)]
    out = []
    for f in summary["scaling_fit"]:
        if f["backend"] == "torch" and f["time_exponent"] is not None:
            out.append(f"{f['attention']} {f['time_exponent']:.2f}"
                       + (f" (memory {f['memory_exponent']:.2f})" if f["memory_exponent"] is not None else ""))
    s = ("Exponents of time per sequence in T, fitted on the measured lengths from 1,024 up, or on all where fewer "
         "(PyTorch): " + "; ".join(out) + ". Linear growth has exponent 1, quadratic 2.") if out else ""
    for backend in BACKENDS:
        lin = {r["T"]: r["seconds_per_sequence"] for r in ok if r["backend"] == backend and r["attention"] == "linear"}
        soft = {r["T"]: r["seconds_per_sequence"] for r in ok if r["backend"] == backend and r["attention"] == "softmax"}
        common = sorted(set(lin) & set(soft))
        if not common:
            continue
        faster = [T for T in common if lin[T] < soft[T]]
        name = BACKEND_NAMES[backend]
        if not faster:
            s += f" {name}: linear attention was slower than softmax at every common length up to T = {common[-1]:,}."
        elif len(faster) == len(common):
            s += f" {name}: linear attention was faster than softmax at every common length from T = {common[0]:,}."
        else:
            s += (f" {name}: linear attention is faster than softmax from T = {faster[0]:,} on"
                  + ("" if faster == common[common.index(faster[0]):] else " (not at every longer length)") + ".")
    if s:
        s += (" For comparison, the paper reports linear faster at every length from 2⁹ = 512 on a GPU, and Do and Bergner's "
              "Julia replication estimated the crossover near length 3,149.")
    return s.strip() or "C4 not run: no scaling measurement succeeded."


def languages(summary):
    rows = summary["languages"]
    out = []
    for backend in ("jax", "julia"):
        speeds = sorted((r["relative_to_torch"][backend] if r["higher_is_better"] else 1 / r["relative_to_torch"][backend])
                        for r in rows if r["relative_to_torch"].get(backend))
        if speeds:
            out.append(f"{BACKEND_NAMES[backend]} ran at a median of {x(speeds[len(speeds) // 2])} PyTorch's speed over "
                       f"{len(speeds)} measurements (from {x(speeds[0])} to {x(speeds[-1])}; above 1 means faster).")
    return " ".join(out) or "No second backend ran, so there is nothing to compare with PyTorch."


def validation(summary):
    out = []
    for r in summary["uncached_validation"]:
        name = BACKEND_NAMES.get(r["backend"], r["backend"])
        if r.get("relative_error") is None:
            out.append(f"{name}: validation not run ({r.get('status')}: {r.get('reason')}).")
            continue
        e = r["relative_error"]
        judgement = ("small against the orders of magnitude the claims are about" if abs(e) <= 0.25 else
                     "large: the extrapolated softmax-uncached times, and every ratio built on them, carry this uncertainty")
        out.append(f"{name}: extrapolating the softmax-uncached cost of {r['steps']} steps from sampled prefix lengths gave "
                   f"{fmt(r['extrapolated_seconds_per_image'], ' s')} against {fmt(r['measured_seconds_per_image'], ' s')} "
                   f"measured, an error of {e:+.0%}, {judgement}.")
    return " ".join(out) or "The extrapolation of softmax-uncached was not validated in this run."


def roofline(summary):
    """Measured time over the roofline floor, at batch 1 and at the largest batch, for the first model
    PyTorch measured."""
    ok = [r for r in summary["throughput"] if usable(r) and r["backend"] == "torch"]
    model = next((m for m in ("mnist", "cifar") if any(r["model"] == m for r in ok)), None)
    out = []
    for mode in ("linear-recurrent", "softmax-cached"):
        rs = {r["batch"]: r["seconds_per_image"] / r["roofline_seconds_per_image"] for r in ok
              if r["model"] == model and r["mode"] == mode}
        if 1 in rs and len(rs) > 1:
            out.append(f"{mode} runs at {x(rs[1])} its floor at batch 1 and {x(rs[max(rs)])} at batch {max(rs)}")
        elif rs:
            out.append(f"{mode} runs at {x(rs[min(rs)])} its floor at batch {min(rs)}")
    if not out:
        return "No PyTorch throughput measurement to compare with the roofline."
    s = f"On {model.upper()} with PyTorch, " + "; ".join(out) + "."
    worst = max((r["seconds_per_image"] / r["roofline_seconds_per_image"] for r in ok if r["batch"] == 1), default=0)
    if worst >= 10:
        s += (" The floor counts only arithmetic and memory traffic; a multiple of 10 or more means that per-step "
              "overhead (framework dispatch and many small kernel calls per generated byte) dominates, not the "
              "hardware's limits.")
    return s


def conclusion(summary, counts):
    c1 = next(c for c in summary["claims"] if c["id"] == "C1")
    rows = {r["what"].split(":")[0] + ":" + ("uncached" if "uncached" in r["what"] else "cached"): r
            for r in c1["rows"] if r["verdict"] not in ("context",) and r["ours"] is not None}
    parts = []
    for model in ("mnist", "cifar"):
        u, c = rows.get(f"{model}:uncached"), rows.get(f"{model}:cached")
        if u and c:
            parts.append(f"on {model.upper()} linear-recurrent generation had {x(u['ours'])} the throughput of the uncached "
                         f"softmax (paper {u['paper_text']}, verdict: {u['verdict']}) and {x(c['ours'])} that of the cached "
                         f"one (paper {c['paper_text']}, verdict: {c['verdict']})")
    if not parts:
        return ("The throughput claim was not measured with all three modes in this run, so this report cannot say how "
                "much of the paper's thousandfold figure holds against either softmax baseline.")
    s = "In our measurements " + "; ".join(parts) + ". "
    s += ("The size of the speed-up therefore depends on the baseline it is measured against: the uncached softmax is the "
          "paper's main-table baseline, the cached one its supplementary's.")
    n = counts.get("not replicated", 0)
    if n:
        s += f" {n} comparison{'s' if n > 1 else ''} went against the paper (Table 1)."
    return s


def verdict_counts(summary) -> dict:
    """How many claim rows have each verdict ("direction only (larger)" counts as "direction only")."""
    counts = {}
    for c in summary["claims"]:
        for r in c["rows"]:
            if r["verdict"] not in ("context", "measured"):
                key = r["verdict"].split(" (")[0].split(":")[0]
                counts[key] = counts.get(key, 0) + 1
    return counts


def discussion(summary, paper) -> dict:
    counts = verdict_counts(summary)
    return {
        "overview": overview(summary, counts),
        "decomposition": decomposition(summary, paper),
        "latency": latency(summary, paper),
        "quality": quality(summary, paper),
        "scaling": scaling(summary),
        "languages": languages(summary),
        "validation": validation(summary),
        "roofline": roofline(summary),
        "conclusion": conclusion(summary, counts),
        "recap": recap(summary),
        "caveat": PROFILE_CAVEATS.get(summary["run"].get("profile"), ""),
    }
