"""Generation speed: C1 (throughput, each mode at its best batch), C2 (latency at batch 1) and the
validation of the uncached extrapolation. Plans the speed runs, estimates them, summarises them
(with the decomposition of the speed-up), judges C1 and C2, and writes their report sections.
"""

from __future__ import annotations

import math

from linattn.backends import BACKENDS
from linattn.config import MODES

from .. import estimates, roofline, speed, verdicts
from ..experiments import Context, Experiment, select
from ..formatting import BACKEND_NAMES, DASH, fmt, table, times
from ..paper import claim_header, not_run, paper_numbers, row
from ..presets import MODELS, config_for_mode
from ..report_figures import (BACKEND_STYLE, MODE_COLORS, backends_in, line, mode_and_backend_handles, modes_in,
                              panels, pyplot, save, shown)
from ..verdicts import usable

MODE_NAMES = tuple(MODES)  # softmax-uncached, softmax-cached, linear-recurrent
TASKS = {"speed": speed.measure_task, "uncached_validation": speed.validate_task}  # what a worker runs, by task kind


# --- plan and estimate ------------------------------------------------------------------------------

def plan(ctx: Context):
    """C1 on every (model, mode, batch), C2 at batch 1, and the uncached validation, per backend."""
    p, out = ctx.profile, []
    budget = p["study"]["memory_budget_fraction"] * ctx.memory_available_bytes
    tp, lt, uv = p["throughput"], p["latency"], p["uncached_validation"]
    for backend in ctx.backends:
        for model in tp["models"]:
            for mode in tp["modes"]:
                config = config_for_mode(model, mode)
                largest = estimates.largest_batch(config, mode, budget, tp["max_batch"])
                batches = sorted({b for b in tp["batches"] if b <= largest} | {largest})
                if mode == "softmax-uncached" and "uncached_batches" in tp:
                    batches = tp["uncached_batches"]
                for batch in batches:
                    task = speed_task(ctx, backend, model=model, mode=mode, batch=batch, repeats=tp["repeats"],
                                      steps=None if mode == "softmax-uncached" else tp["steps"])
                    out.append(Experiment(f"C1-{backend}-{model}-{mode}-b{batch}", "C1", "speed", task,
                                          estimate(task, ctx.machine)))
        for model in lt["models"]:
            for mode in lt["modes"]:
                task = latency_task(ctx, backend, model, mode)
                out.append(Experiment(f"C2-{backend}-{model}-{mode}", "C2", "speed", task, estimate(task, ctx.machine)))
        task = dict(kind="uncached_validation", backend=backend, model=uv["model"], steps=uv["steps"], threads=ctx.threads)
        out.append(Experiment(f"V-{backend}-uncached", "C1", "uncached_validation", task, estimate(task, ctx.machine)))
    return out, {}


def speed_task(ctx: Context, backend, **fields) -> dict:
    """A speed task of this run: its backend, threads and device, and whether PyTorch's step is
    compiled first (the profile's [study] compile_step), with the task's own `fields`."""
    return dict(kind="speed", backend=backend, threads=ctx.threads, device=ctx.device,
                compile=ctx.profile["study"]["compile_step"], **fields)


def latency_task(ctx: Context, backend, model, mode) -> dict:
    """C2's speed task: one image at batch 1, timed as the profile's [latency] section says (whole
    images for its whole_image_models, else windows of its steps). The beyond-the-paper variants
    (claims.beyond) time the same task with a feature map or layer pattern added."""
    lt = ctx.profile["latency"]
    whole = model in lt["whole_image_models"]
    return speed_task(ctx, backend, model=model, mode=mode, batch=1, repeats=lt["repeats"],
                      steps=None if whole else lt["steps"])


def estimate(task, machine) -> dict:
    if task["kind"] == "uncached_validation":
        config = config_for_mode(task["model"], "softmax-uncached")
        bytes_, flops = roofline.step_costs(config, "softmax-uncached", 1)
        n = task["steps"]
        full = sum(estimates.seconds(f, b, machine) for f, b in zip(flops[:n], bytes_[:n]))
        sampled = sum(estimates.seconds(flops[k - 1], bytes_[k - 1], machine) for k in speed.uncached_lengths(n))
        return estimates.estimate(estimates.OVERHEAD * (full + 2 * sampled),
                                  2 * estimates.weights_bytes(config) + estimates.memory_per_image(config, "softmax-uncached"),
                                  "roofline of a full run plus the sampled steps")
    config = config_for_mode(task["model"], task["mode"], task.get("feature_map", "elu"), task.get("layer_pattern", ""))
    r = roofline.roofline_seconds_per_image(config, task["mode"], task["batch"], machine)["roofline_seconds_per_image"]
    T, B = config.seq_len, task["batch"]
    if task["mode"] == "softmax-uncached":
        sampled = len(speed.uncached_lengths(T)) * task["repeats"] + 1  # steps timed, each near the mean cost
        seconds = sampled * r * B / T * 1.5
    elif task.get("steps"):
        windows = speed.WINDOWS * task["repeats"] + 1
        seconds = r * B * windows * task["steps"] / T
    else:
        seconds = r * B * (task["repeats"] + 1)
    memory = 2 * estimates.weights_bytes(config) + B * estimates.memory_per_image(config, task["mode"])
    compiles = task.get("compile") and task["mode"] != "softmax-uncached"
    compiling = estimates.COMPILE_SECONDS.get(task["backend"], 0.0) if compiles else 0.0
    return estimates.estimate(estimates.OVERHEAD * seconds + compiling, memory,
                              f"{estimates.OVERHEAD:g}x the roofline time of the steps timed, plus start-up"
                              + (" and compiling the step" if compiling else ""))


# --- summarise and judge ---------------------------------------------------------------------------

SPEED_FIELDS = ("seconds_per_image", "images_per_second", "extrapolated", "method", "roofline_seconds_per_image", "bound",
                "iqr", "warmup_seconds", "compile_seconds")
VALIDATION_FIELDS = ("model", "steps", "extrapolated_seconds_per_image", "measured_seconds_per_image", "relative_error")


def summarise(summary, outcomes, folder):
    """throughput (C1), latency (C2), uncached_validation and the decomposition of the speed-up."""
    def speed_rows(claim):
        return [{**o.row(), "model": o.task["model"], "mode": o.task["mode"], "batch": o.task["batch"],
                 **({k: o.result[k] for k in SPEED_FIELDS} if o.ok else {}),
                 **({"step": o.result["generation"]["step"]} if o.ok and "generation" in o.result else {})}
                for o in select(outcomes, claim, "speed")]

    summary["throughput"] = speed_rows("C1")
    summary["latency"] = speed_rows("C2")
    summary["uncached_validation"] = [{**o.row(), **({k: o.result[k] for k in VALIDATION_FIELDS} if o.ok else {})}
                                      for o in select(outcomes, kind="uncached_validation")]
    summary["decomposition"] = decomposition(summary["throughput"])


def backends_used(rows):
    return [b for b in BACKENDS if any(usable(r) and r["backend"] == b for r in rows)]


def best(rows, backend, model, mode, batch=None):
    """The highest-throughput usable record (at `batch` if given)."""
    cands = [r for r in rows if usable(r) and r["backend"] == backend and r["model"] == model and r["mode"] == mode
             and (batch is None or r["batch"] == batch)]
    return max(cands, key=lambda r: r["images_per_second"], default=None)


def flags(rows, backend, model, modes) -> list[str]:
    """The flags of the successful but unusable records of these modes (why a comparison is missing)."""
    return [f"{r['mode']} batch {r['batch']}: {r['flag']}" for r in rows if r["status"] == "ok" and r.get("flag")
            and r["backend"] == backend and r["model"] == model and r["mode"] in modes]


def decomposition(throughput):
    """How the linear-vs-uncached speed-up splits into the KV cache, the state's constant cost,
    and batch size: total = (cached/uncached) x (linear/cached), each at its best batch, and
    linear at its best batch vs batch 1."""
    out = {}
    for backend in backends_used(throughput):
        for model in MODELS:
            u, c, l = (best(throughput, backend, model, m) for m in MODE_NAMES)
            l1 = best(throughput, backend, model, "linear-recurrent", 1)
            if not (u and c and l):
                continue
            out[f"{backend}-{model}"] = {
                "backend": backend, "model": model,
                "total": l["images_per_second"] / u["images_per_second"],
                "from_cache": c["images_per_second"] / u["images_per_second"],
                "linear_over_cached": l["images_per_second"] / c["images_per_second"],
                "from_batch": l["images_per_second"] / l1["images_per_second"] if l1 else None,
                "best_batch": {m: r["batch"] for m, r in zip(MODE_NAMES, (u, c, l))},
            }
    return out


def judge(paper, s) -> list[dict]:
    return [_judge_c1(paper, s), _judge_c2(paper, s)]


def _judge_c1(paper, s):
    c, claim = paper["C1"], claim_header(paper, "C1")
    if "torch" not in backends_used(s["throughput"]):
        return not_run(claim, "no usable throughput measurement (failed, or flagged by the hygiene checks)")
    rows = []
    for model, p_ips in c["images_per_second"].items():
        u, cc, l = (best(s["throughput"], "torch", model, m) for m in MODE_NAMES)
        for other, name in ((u, "softmax-uncached"), (cc, "softmax-cached")):
            p = p_ips["linear-recurrent"] / p_ips[name]
            ours = l["images_per_second"] / other["images_per_second"] if (l and other) else None
            flagged = flags(s["throughput"], "torch", model, (name, "linear-recurrent")) if ours is None else []
            verdict = verdicts.inconclusive("; ".join(flagged)) if flagged else verdicts.speedup(ours, p)
            rows.append(row(f"{model}: linear-recurrent / {name} images/s (torch, best batch each)", p, ours, verdict, "x"))
        if l:
            rows.append(row(f"{model}: linear-recurrent images/s (torch, batch {l['batch']}; paper: GPU)",
                            p_ips["linear-recurrent"], l["images_per_second"], "context", " img/s"))
    return {**claim, "rows": rows, "status": "measured"}


def _judge_c2(paper, s):
    c, claim = paper["C2"], claim_header(paper, "C2")
    torch_b1 = [r for r in s["latency"] if r["backend"] == "torch"] + [
        r for r in s["throughput"]  # uncached latency comes from the batch-1 throughput run
        if r["backend"] == "torch" and r["batch"] == 1 and r["mode"] == "softmax-uncached"]
    lat = {(r["model"], r["mode"]): r["seconds_per_image"] for r in torch_b1 if usable(r)}
    if not lat:
        return not_run(claim, "no usable latency measurement (failed, or flagged by the hygiene checks)")
    rows = []
    for model, p_seconds in c["seconds_per_image_cpu"].items():
        lin = lat.get((model, "linear-recurrent"))
        for name in ("softmax-uncached", "softmax-cached"):
            p = p_seconds[name] / p_seconds["linear-recurrent"]
            other = lat.get((model, name))
            ours = other / lin if (other and lin) else None
            flagged = flags(torch_b1, "torch", model, (name, "linear-recurrent")) if ours is None else []
            verdict = verdicts.inconclusive("; ".join(flagged)) if flagged else verdicts.speedup(ours, p)
            rows.append(row(f"{model}: {name} / linear-recurrent seconds per image, batch 1, CPU", p, ours, verdict, "x"))
        rows.append(row(f"{model}: linear-recurrent seconds per image, batch 1, CPU", p_seconds["linear-recurrent"], lin,
                        "context", " s"))
    return {**claim, "rows": rows, "status": "measured"}


def latency_rows(summary):
    """(backend, model, mode) -> seconds per image at batch 1: the latency runs, and the
    batch-1 throughput runs where latency has no row (softmax-uncached)."""
    out = {}
    for r in shown(summary["throughput"]):
        if r["batch"] == 1:
            out[(r["backend"], r["model"], r["mode"])] = r["seconds_per_image"]
    for r in shown(summary["latency"]):
        out[(r["backend"], r["model"], r["mode"])] = r["seconds_per_image"]
    return out


# --- the report: tables, figures, prose -------------------------------------------------------------

def report(summary, paper, folder, figures_dir) -> dict:
    pv = paper_numbers(paper)["values"]
    return {
        "sections": {"throughput": throughput_section(summary, paper), "latency": latency_section(summary, paper),
                     "beyond": validation_section(summary)},
        "figures": figures(summary, paper, figures_dir),
        "prose": {"decomposition": decomposition_prose(summary, pv), "latency": latency_prose(summary, pv),
                  "validation": validation_prose(summary), "roofline": roofline_prose(summary),
                  "conclusion": conclusion_prose(summary), "recap": recap_prose(summary)},
    }


def figures(summary, paper, out_dir) -> dict:
    return {"throughput": throughput_figure(summary, out_dir), "latency": latency_figure(summary, paper["C2"], out_dir),
            "roofline": roofline_figure(summary, out_dir)}


def _note(summary, cid, default):
    c = next((c for c in summary["claims"] if c["id"] == cid), {})
    return f"{cid} not run: " + (c.get("note") or default) + "."


def throughput_section(summary, paper):
    ok = [r for r in summary["throughput"] if usable(r)]
    rows = []
    ips = paper["C1"]["images_per_second"]
    for backend in BACKENDS:
        for model in MODELS:
            for mode in MODE_NAMES:
                rs = [r for r in ok if r["backend"] == backend and r["model"] == model and r["mode"] == mode]
                if not rs:
                    continue
                b = max(rs, key=lambda r: r["images_per_second"])
                rows.append([BACKEND_NAMES[backend], model, mode, b["batch"], fmt(b["images_per_second"]),
                             fmt(ips.get(model, {}).get(mode)), fmt(b["seconds_per_image"], " s"),
                             fmt(b["roofline_seconds_per_image"], " s"),
                             times(b["seconds_per_image"] / b["roofline_seconds_per_image"]),
                             "yes" if b.get("extrapolated") else "no"])
    failed = [f"{r['backend']} {r['model']} {r['mode']} batch {r['batch']}: "
              + (f"measured but left out ({r['flag']})" if r.get("flag") else f"{r.get('status')} ({r.get('reason')})")
              for r in summary["throughput"] if not usable(r)]
    pv = paper_numbers(paper)["values"]
    dec = []
    for d in summary["decomposition"].values():
        dec.append([BACKEND_NAMES[d["backend"]], d["model"], times(d["total"]), times(d["from_cache"]),
                    times(d["linear_over_cached"]), times(d["from_batch"]),
                    ", ".join(str(d["best_batch"][m]) for m in MODE_NAMES)])
    for m in MODELS:
        dec.append(["paper (GPU)", m, times(pv[f"{m}_total"]), times(pv[f"{m}_cache"]), times(pv[f"{m}_linear_over_cached"]),
                    DASH, "not stated"])
    return {
        "table": table(["backend", "model", "mode", "best batch", "images/s", "paper images/s", "s/image", "roofline s/image",
                        "× floor", "extrap."], rows),
        "decomposition": table(["backend", "model", "linear / uncached", "cached / uncached", "linear / cached",
                                "linear: best batch / batch 1", "best batches (uncached, cached, linear)"], dec),
        "failed": failed, "n_points": len(ok), "n_extrapolated": sum(bool(r.get("extrapolated")) for r in ok),
        "missing": not ok, "missing_text": _note(summary, "C1", "no throughput measurement succeeded"),
    }


def latency_section(summary, paper):
    lat = latency_rows(summary)
    backends = [b for b in BACKENDS if any(k[0] == b for k in lat)]
    cpu, gpu = paper["C2"]["seconds_per_image_cpu"], paper["C2"]["seconds_per_image_gpu"]
    rows = []
    for model in MODELS:
        for mode in MODE_NAMES:
            ours = [lat.get((b, model, mode)) for b in backends]
            if any(v is not None for v in ours):
                rows.append([model, mode, *[fmt(v, " s") if v is not None else DASH for v in ours],
                             fmt(cpu[model][mode], " s"), fmt(gpu[model][mode], " s")])
    extrapolated = sorted({f"{r['model']} {r['mode']}" for r in summary["latency"] if usable(r) and r.get("extrapolated")})
    return {"table": table(["model", "mode", *[f"{BACKEND_NAMES[b]} (CPU)" for b in backends], "paper CPU", "paper GPU"], rows),
            "missing": not rows, "extrapolated": extrapolated,
            "missing_text": _note(summary, "C2", "no latency measurement succeeded")}


def validation_section(summary):
    val = [[BACKEND_NAMES.get(r["backend"], r["backend"]), r.get("model", DASH), r.get("steps", DASH),
            fmt(r.get("extrapolated_seconds_per_image"), " s"), fmt(r.get("measured_seconds_per_image"), " s"),
            f"{r['relative_error']:+.1%}" if r.get("relative_error") is not None else f"not run: {r.get('reason')}"]
           for r in summary["uncached_validation"]]
    return {"validation": table(["backend", "model", "steps", "extrapolated s/image", "measured s/image", "error"], val),
            "validation_missing": not val}


def throughput_figure(summary, out_dir):
    """Images/s of each mode vs batch size, one panel per model, with the roofline ceiling."""
    rows = shown(summary["throughput"])
    if not rows:
        return None
    plt = pyplot()
    models = [m for m in MODELS if any(r["model"] == m for r in rows)]
    fig, axes = panels(plt, len(models), 2.6)
    for ax, model in zip(axes, models):
        for backend in backends_in(rows):
            for mode in MODE_NAMES:
                pts = sorted((r["batch"], r["images_per_second"], r["roofline_seconds_per_image"]) for r in rows
                             if r["model"] == model and r["mode"] == mode and r["backend"] == backend)
                if not pts:
                    continue
                ls, marker = BACKEND_STYLE[backend]
                ax.plot([p[0] for p in pts], [p[1] for p in pts], ls=ls, marker=marker, color=MODE_COLORS[mode])
                if backend == backends_in(rows)[0]:
                    ax.plot([p[0] for p in pts], [1 / p[2] for p in pts], ls=(0, (1, 2)), lw=0.9, color=MODE_COLORS[mode],
                            alpha=0.7)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch size (images generated at once)")
        ax.set_ylabel("throughput (images / s)")
        ax.set_title(f"{model.upper()} ({'T = 784' if model == 'mnist' else 'T = 3072'})")
    roof = line(color="0.3", ls=(0, (1, 2)), lw=0.9, label=f"roofline ceiling ({BACKEND_NAMES[backends_in(rows)[0]]})")
    handles = mode_and_backend_handles(modes_in(rows), backends_in(rows), [roof])
    return save(plt, fig, out_dir, "throughput.svg", handles, ncol=3)


def latency_figure(summary, paper, out_dir):
    """Seconds per image at batch 1: ours per backend beside the paper's CPU and GPU (Table 5)."""
    lat = latency_rows(summary)
    if not lat:
        return None
    plt = pyplot()
    models = [m for m in MODELS if any(k[1] == m for k in lat)]
    backends = [b for b in BACKENDS if any(k[0] == b for k in lat)]
    ours_colors = {"torch": "#2471a3", "jax": "#17a589", "julia": "#7d3c98"}
    series = [(BACKEND_NAMES[b] + " (ours, CPU)", {(m, mode): v for (bb, m, mode), v in lat.items() if bb == b},
               ours_colors[b], None) for b in backends]
    series += [("paper, CPU", {(m, mode): paper["seconds_per_image_cpu"][m][mode] for m in models for mode in MODE_NAMES},
                "0.75", "//"),
               ("paper, GPU", {(m, mode): paper["seconds_per_image_gpu"][m][mode] for m in models for mode in MODE_NAMES},
                "0.92", "..")]
    fig, axes = panels(plt, len(models), 2.5)
    width = 0.8 / len(series)
    for ax, model in zip(axes, models):
        for i, (label, values, color, hatch) in enumerate(series):
            xs = [j + (i - (len(series) - 1) / 2) * width for j, mode in enumerate(MODE_NAMES) if (model, mode) in values]
            ys = [values[(model, mode)] for mode in MODE_NAMES if (model, mode) in values]
            ax.bar(xs, ys, width, label=label, color=color, hatch=hatch, edgecolor="0.3", linewidth=0.4)
        ax.set_yscale("log")
        ax.set_xticks(range(len(MODE_NAMES)), [m.replace("-", "-\n", 1) for m in MODE_NAMES])  # two lines: no overlap
        ax.set_ylabel("seconds per image (batch 1)")
        ax.set_title(model.upper())
        ax.grid(axis="x", visible=False)
    handles, _ = axes[0].get_legend_handles_labels()
    return save(plt, fig, out_dir, "latency.svg", handles, ncol=3)


def roofline_figure(summary, out_dir):
    """Measured seconds per image as a multiple of the roofline floor, vs batch size."""
    rows = [r for r in shown(summary["throughput"]) if r.get("roofline_seconds_per_image")]
    if not rows:
        return None
    plt = pyplot()
    models = [m for m in MODELS if any(r["model"] == m for r in rows)]
    fig, axes = panels(plt, len(models), 2.5)
    for ax, model in zip(axes, models):
        for backend in backends_in(rows):
            for mode in MODE_NAMES:
                pts = sorted((r["batch"], r["seconds_per_image"] / r["roofline_seconds_per_image"]) for r in rows
                             if r["model"] == model and r["mode"] == mode and r["backend"] == backend)
                if pts:
                    ls, marker = BACKEND_STYLE[backend]
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], ls=ls, marker=marker, color=MODE_COLORS[mode])
        ax.axhline(1, color="0.4", lw=0.8)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch size")
        ax.set_ylabel("measured / roofline time (×)")
        ax.set_title(model.upper())
    handles = mode_and_backend_handles(modes_in(rows), backends_in(rows))
    return save(plt, fig, out_dir, "roofline.svg", handles, ncol=3)


def x(v):
    return fmt(v, "×")


def _entries(summary):
    return sorted(summary["decomposition"].values(), key=lambda d: (BACKENDS.index(d["backend"]), MODELS.index(d["model"])))


def decomposition_prose(summary, paper):
    """Paragraphs on how the linear-vs-uncached speed-up splits into the KV cache and linear attention
    (and what batch size adds): in full for the first backend measured, one sentence for each other."""
    entries = _entries(summary)
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


def recap_prose(summary):
    """One sentence per model of the first backend: the speed-up as the product of its factors."""
    entries = _entries(summary)
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


def latency_prose(summary, paper):
    lat = latency_rows(summary)
    out = []
    for model in MODELS:
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


def validation_prose(summary):
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


def roofline_prose(summary):
    """Measured time over the roofline floor, at batch 1 and at the largest batch, for the first model
    PyTorch measured."""
    ok = [r for r in summary["throughput"] if usable(r) and r["backend"] == "torch"]
    model = next((m for m in MODELS if any(r["model"] == m for r in ok)), None)
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


def conclusion_prose(summary):
    c1 = next(c for c in summary["claims"] if c["id"] == "C1")
    rows = {r["what"].split(":")[0] + ":" + ("uncached" if "uncached" in r["what"] else "cached"): r
            for r in c1["rows"] if r["verdict"] not in ("context",) and r["ours"] is not None}
    parts = []
    for model in MODELS:
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
    n = verdicts.counts(summary["claims"]).get("not replicated", 0)
    if n:
        s += f" {n} comparison{'s' if n > 1 else ''} went against the paper (Table 1)."
    return s
