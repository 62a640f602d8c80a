"""Scaling: C4 (time and memory of one attention's forward+backward pass vs sequence length, with
the exponents fitted on log-log axes), and the memory-efficient chunked softmax beside it. Plans
the lengths that fit the memory budget, estimates them, summarises and fits them, judges C4, and
writes the scaling section.
"""

from __future__ import annotations

import numpy as np
from linattn.backends import BACKENDS, TIME_ATTENTION_KINDS, get_backend
from linattn.config import LINEAR_CHUNK, N_FEATURES, SOFTMAX_CHUNK

from .. import estimates, speed, verdicts
from ..experiments import Context, Experiment, select
from ..formatting import BACKEND_NAMES, DASH, fmt, memory, table
from ..paper import claim_header, not_run, row
from ..report_figures import ATTENTION_COLORS, BACKEND_STYLE, WIDTH, MiB, backends_in, line, pyplot, save, shown
from ..verdicts import usable

TASKS = {"attention": speed.attention_task}  # what a worker runs, by task kind
KINDS_SHOWN = ("softmax", "softmax-fused", "softmax-chunked", "linear")  # the order of rows and columns
MACHINE_MEMORY_FRACTION = 0.6  # of the memory available, where a profile does not say


# --- plan and estimate ------------------------------------------------------------------------------

def budget(profile, memory_available_bytes) -> dict:
    """The memory budget of the scaling study: the paper's GPU, or less where this machine has
    less available (recorded, and said in the report)."""
    sc = profile["scaling"]
    paper = sc.get("memory_budget_bytes", verdicts.PAPER_GPU_MEMORY_BYTES)
    fraction = sc.get("machine_memory_fraction", MACHINE_MEMORY_FRACTION)
    machine = fraction * memory_available_bytes
    if machine < paper:
        return {"bytes": machine, "limited_by_machine": True,
                "why": f"{machine / 1e9:.1f} GB: {fraction:.0%} of the memory available here, less than the paper's "
                       f"{paper / 1e9:g} GB GPU"}
    return {"bytes": paper, "limited_by_machine": False, "why": f"{paper / 1e9:g} GB, the paper's GPU (GTX 1080 Ti)"}


def plan(ctx: Context):
    """Every attention kind the backend offers at every length; those that do not fit the budget or
    the time cap are recorded as skipped with the reason."""
    sc, out = ctx.profile["scaling"], []
    limit = budget(ctx.profile, ctx.memory_available_bytes)
    cap = sc["time_cap_seconds"] * (sc["repeats"] + 1)
    for backend in ctx.backends:
        for attention in (a for a in sc["attentions"] if a in TIME_ATTENTION_KINDS[backend]):
            for T in sc["lengths"]:
                task = dict(kind="attention", backend=backend, attention=attention, T=T, batch=max(1, sc["tokens_per_batch"] // T),
                            n_heads=sc["n_heads"], d_head=sc["d_head"], repeats=sc["repeats"], threads=ctx.threads,
                            device=ctx.device)
                est = estimate(task, ctx.machine)
                if est["memory_bytes"] > limit["bytes"] or est["seconds"] > cap:
                    task = {**task, "kind": "skip", "reason": _skip_reason(est, limit["bytes"], cap)}
                out.append(Experiment(f"C4-{backend}-{attention}-T{T}", "C4", "attention", task, est))
    return out, {"scaling_budget": limit}


def _skip_reason(est, limit, cap):
    if est["memory_bytes"] > limit:
        return f"does not fit: estimated {est['memory_bytes'] / 2**30:.1f} GiB > budget {limit / 2**30:.1f} GiB"
    return f"exceeds the time cap: estimated {est['seconds']:.0f} s > {cap:.0f} s"


def estimate(task, machine) -> dict:
    """Forward + backward of one causal attention on (B, T, H, D): about 3x the forward's FLOPs
    (4x for the chunked softmax, whose backward recomputes the forward)."""
    B, T, H, D, F = task["batch"], task["T"], task["n_heads"], task["d_head"], estimates.FLOAT
    kind = task["attention"]
    passes = 3
    if kind.startswith("linear"):  # any feature map: the chunkwise form, on features of size Ff
        C = min(LINEAR_CHUNK, T)
        Ff = N_FEATURES if kind == "linear-favor" else D  # FAVOR+: its projection (2 T m D per q and k) too
        flops = B * H * (4 * T * C * Ff + 6 * T * Ff * D + (4 * T * Ff * D if kind == "linear-favor" else 0))
        mem = B * H * (T * C + (T // C + 1) * Ff * D + 8 * T * D + 4 * T * Ff) * F * 3
    elif kind == "softmax-fused":
        flops = B * H * 4 * T * T * D
        # torch's scaled_dot_product_attention: blocks of scores made and dropped inside the kernel,
        # no T x T kept; a log-sum-exp per query for the backward, and the inputs, outputs, grads.
        mem = B * H * T * F + 12 * B * T * H * D * F
    elif kind == "softmax-chunked":
        flops, passes = B * H * 4 * T * T * D, 4
        # the forward keeps only q, k, v; the backward recomputes one query chunk at a time and
        # holds its scores against all the keys before it (C x T; PyTorch one C x C tensor per key
        # chunk, JAX the scores, probabilities and their gradients): memory linear in T.
        C = min(SOFTMAX_CHUNK, T)
        mem = 4 * B * H * C * T * F + 12 * B * T * H * D * F
    else:
        flops = B * H * 4 * T * T * D
        # three T x T matrices per head: the scores and probabilities kept for the backward (the
        # materialised "softmax" of every backend), and the gradient of one while the backward runs.
        mem = B * H * T * T * F * 3 + 12 * B * T * H * D * F
    return estimates.estimate(estimates.OVERHEAD * passes * estimates.gemm_seconds(flops, machine) * (task["repeats"] + 1), mem,
                              f"{passes}x forward FLOPs at the measured GEMM rate, times the overhead; tensors autograd keeps")


def measure_in_process(backend_name, attentions, lengths, n_heads, d_head, tokens_per_batch, repeats, threads=None) -> list:
    """The scaling measurement in this process (a notebook's smoke run), as rows of summary.json's
    "scaling" list: each kind at each length, batch max(1, tokens_per_batch // T) as the paper
    scales it, timed by the backend's `time_attention` (what the study's workers call). Memory is
    not measured here (a clean peak needs a fresh process per point, as the workers have): each row
    carries the estimate of the tensors held (`estimate`, without a worker's fixed runtime)."""
    backend = get_backend(backend_name)
    if threads:  # None: as the process is set (notebook.setup pins it)
        backend.set_threads(threads)
    no_machine = {"gemm_GFLOPs": float("nan"), "bandwidth_GBps": float("nan")}  # the memory estimate needs none
    rows = []
    for attention in attentions:
        for T in lengths:
            task = dict(kind="attention", backend=backend_name, attention=attention, T=T, batch=max(1, tokens_per_batch // T),
                        n_heads=n_heads, d_head=d_head, repeats=repeats, threads=threads)
            seconds = backend.time_attention(attention, task["batch"], T, n_heads, d_head, repeats)
            med = float(np.median(seconds))
            rows.append({"backend": backend_name, "status": "ok", "reason": None, "attention": attention, "T": T,
                         "batch": task["batch"], "seconds": med, "seconds_per_sequence": med / task["batch"],
                         "peak_memory_bytes": None, "memory_per_sequence_bytes": None, "repeats": seconds,
                         "estimated_memory_bytes": estimate(task, no_machine)["memory_bytes"] - estimates.RUNTIME_BYTES})
    return rows


# --- summarise and judge ---------------------------------------------------------------------------

def summarise(summary, outcomes, folder):
    rows = []
    for o in select(outcomes, kind="attention"):
        r = {**o.row(), "attention": o.task["attention"], "T": o.task["T"], "batch": o.task["batch"]}
        if o.ok:
            med = float(np.median(o.result["seconds"]))
            r.update(seconds=med, seconds_per_sequence=med / o.task["batch"], peak_memory_bytes=o.result["peak_memory_bytes"],
                     memory_per_sequence_bytes=o.result["peak_memory_bytes"] / o.task["batch"])
        rows.append(r)
    summary["scaling"] = rows
    summary["scaling_fit"] = fit(rows)


def fit(scaling):
    """Exponent of time and memory per sequence vs T (least squares on log-log), the lengths it
    used and the largest T measured, per backend and attention. The fit uses the usable lengths
    >= 1024 where those are enough for a verdict (verdicts.MIN_LENGTHS spanning MIN_SPAN), else
    every usable length: below 1024 fixed costs bend the curve."""
    out = []
    for backend in (b for b in BACKENDS if any(usable(r) and r["backend"] == b for r in scaling)):
        for attention in sorted({r["attention"] for r in scaling}):
            rows = sorted((r for r in scaling if r["backend"] == backend and r["attention"] == attention and usable(r)),
                          key=lambda r: r["T"])
            if not rows:
                continue
            use = [r for r in rows if r["T"] >= 1024]
            enough = len(use) >= verdicts.MIN_LENGTHS and use[-1]["T"] / use[0]["T"] >= verdicts.MIN_SPAN
            use = use if enough else rows
            slope = {}
            for key in ("seconds_per_sequence", "memory_per_sequence_bytes"):
                pts = [(r["T"], r[key]) for r in use if r[key] and r[key] > 0]
                slope[key] = float(np.polyfit(np.log([p[0] for p in pts]), np.log([p[1] for p in pts]), 1)[0]) if len(pts) >= 2 else None
            out.append({"backend": backend, "attention": attention, "largest_T": rows[-1]["T"],
                        "lengths": [r["T"] for r in use if r["seconds_per_sequence"] and r["seconds_per_sequence"] > 0],
                        "time_exponent": slope["seconds_per_sequence"], "memory_exponent": slope["memory_per_sequence_bytes"]})
    return out


def judge(paper, s) -> list[dict]:
    c, claim = paper["C4"], claim_header(paper, "C4")
    fits = {(f["backend"], f["attention"]): f for f in s["scaling_fit"]}
    if not fits:
        return [not_run(claim, "no usable scaling measurement")]
    limit = s.get("scaling_budget") or {}
    rows = []
    for attention in dict.fromkeys([*KINDS_SHOWN, *(a for _, a in fits)]):  # a new kind after the known ones
        f = fits.get(("torch", attention))
        paper_exp = c["exponent"].get(attention)
        ours = f["time_exponent"] if f else None
        if paper_exp is not None:
            verdict = verdicts.exponent(ours, paper_exp, f["lengths"] if f else [])
            rows.append(row(f"{attention}: exponent of time per sequence in T (torch, T = "
                            f"{', '.join(map(str, f['lengths'])) if f else '-'})", paper_exp, ours, verdict,
                            paper_text=f"{paper_exp:.1f}", ours_text="n/a" if ours is None else f"{ours:.2f}"))
        if f:
            where = f"budget {limit['why']}" if limit.get("why") else "paper: 11 GB GPU"
            rows.append(row(f"{attention}: largest T measured (torch; {where})", c["largest_length"].get(attention),
                            f["largest_T"], "context",
                            paper_text=fmt(c["largest_length"].get(attention)) if attention in c["largest_length"] else "-"))
    return [{**claim, "rows": rows, "status": "measured"}]


# --- the report: tables, figures, prose -------------------------------------------------------------

def report(summary, paper, folder, figures_dir) -> dict:
    return {"sections": {"scaling": scaling_section(summary, paper), "beyond": chunked_section(summary)},
            "figures": figures(summary, paper, figures_dir),
            "prose": {"scaling": scaling_prose(summary)}}


def figures(summary, paper, out_dir) -> dict:
    return {"scaling": scaling_figure(summary, out_dir)}


def scaling_section(summary, paper):
    fits = summary["scaling_fit"]
    exp, largest = paper["C4"]["exponent"], paper["C4"]["largest_length"]
    rows = [[BACKEND_NAMES[f["backend"]], f["attention"], f"{f['time_exponent']:.2f}" if f["time_exponent"] is not None else DASH,
             f"{exp[f['attention']]:.1f}" if f["attention"] in exp else DASH,
             f"{f['memory_exponent']:.2f}" if f["memory_exponent"] is not None else DASH, f"{f['largest_T']:,}",
             f"{largest[f['attention']]:,}" if f["attention"] in largest else DASH]
            for f in fits]
    skipped = [f"{BACKEND_NAMES.get(r['backend'], r['backend'])} {r['attention']} T = {r['T']:,}: {r.get('status')} ({r.get('reason')})"
               for r in summary["scaling"] if r.get("status") != "ok"]
    skipped += [f"{BACKEND_NAMES.get(r['backend'], r['backend'])} {r['attention']} T = {r['T']:,}: measured but left out ({r['flag']})"
                for r in summary["scaling"] if r.get("status") == "ok" and r.get("flag")]
    limit = summary.get("scaling_budget") or {}
    budget_text = (f"Lengths were limited by a memory budget of {limit['why']}"
                   + (" (the largest lengths are therefore not comparable with the paper's Figure 1)."
                      if limit.get("limited_by_machine") else ", so the largest length that fits is comparable with "
                      "the paper's Figure 1 where the time cap did not stop it first.")) if limit else ""
    c4 = next((c for c in summary["claims"] if c["id"] == "C4"), {})
    return {"budget_text": budget_text,
            "table": table(["backend", "attention", "time exponent", "paper", "memory exponent", "largest T", "paper largest T"], rows),
            "skipped": skipped, "missing": not fits,
            "missing_text": "C4 not run: " + (c4.get("note") or "no scaling measurement succeeded") + "."}


def chunked_section(summary):
    """Memory and time per sequence of every softmax kind beside linear, at the two largest lengths
    where both softmax and its chunked form ran."""
    ok = [r for r in summary["scaling"] if usable(r)]
    chunk = []
    for backend in BACKENDS:
        rs = [r for r in ok if r["backend"] == backend]
        common = sorted({r["T"] for r in rs if r["attention"] == "softmax"} & {r["T"] for r in rs if r["attention"] == "softmax-chunked"})
        for T in common[-2:]:
            by = {r["attention"]: r for r in rs if r["T"] == T}
            chunk.append([BACKEND_NAMES[backend], f"{T:,}", *[memory(by[a]["memory_per_sequence_bytes"]) if a in by else DASH
                                                            for a in KINDS_SHOWN],
                          *[fmt(by[a]["seconds_per_sequence"], " s") if a in by else DASH for a in KINDS_SHOWN]])
    return {"chunked": table(["backend", "T", *[f"{a} mem." for a in KINDS_SHOWN], *[f"{a} time" for a in KINDS_SHOWN]], chunk),
            "chunked_missing": not chunk}


def scaling_figure(summary, out_dir):
    """Time and peak memory of one attention's forward+backward pass per sequence vs T, log-log,
    with guides proportional to T and T^2."""
    rows = shown(summary["scaling"])
    if not rows:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 2.6))
    attentions = list(dict.fromkeys([a for a in ATTENTION_COLORS if any(r["attention"] == a for r in rows)]
                                    + [r["attention"] for r in rows]))
    keys = (("seconds_per_sequence", 1.0, "time per sequence (s)"), ("memory_per_sequence_bytes", MiB, "peak memory per sequence (MiB)"))
    for ax, (key, scale, label) in zip(axes, keys):
        for backend in backends_in(rows):
            for attention in attentions:
                pts = sorted((r["T"], r[key] / scale) for r in rows
                             if r["backend"] == backend and r["attention"] == attention and r[key] and r[key] > 0)
                if pts:
                    ls, marker = BACKEND_STYLE[backend]
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], ls=ls, marker=marker, color=ATTENTION_COLORS.get(attention, "0.3"))
        _guides(ax, rows, key, scale)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length T")
        ax.set_ylabel(label)
    handles = [line(color=ATTENTION_COLORS.get(a, "0.3"), lw=2, label=f"{a} attention") for a in attentions]
    handles += [line(color="0.3", ls=BACKEND_STYLE[b][0], marker=BACKEND_STYLE[b][1], label=BACKEND_NAMES[b])
                for b in backends_in(rows)]
    handles += [line(color="0.6", lw=0.8, ls=(0, (4, 2)), label="guides: slope 1 (∝ T) and 2 (∝ T²)")]
    return save(plt, fig, out_dir, "scaling.svg", handles, ncol=3)


def _guides(ax, rows, key, scale):
    """Grey dashed lines through the first point of the series: slope 1 and slope 2."""
    pts = sorted((r["T"], r[key] / scale) for r in rows if r[key] and r[key] > 0)
    if len(pts) < 2:
        return
    t0, y0 = pts[0]
    t1 = max(p[0] for p in pts)
    for slope in (1, 2):
        ax.plot([t0, t1], [y0, y0 * (t1 / t0) ** slope], color="0.6", lw=0.8, ls=(0, (4, 2)))


def scaling_prose(summary):
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
