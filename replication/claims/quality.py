"""Quality: C3 (a linear and a softmax model trained with the same budget on the same bytes, their
test bits/dim compared) and the sample grids drawn from the two checkpoints. Plans the training and
sampling, estimates them, summarises them, judges C3, and writes the data and quality sections.
"""

from __future__ import annotations

from pathlib import Path

from .. import data, estimates, profiles, roofline, samples, train, trained, verdicts
from ..data import dataset_checksum
from ..datasets.sequences import VALID_FRACTION
from ..datasets.sources import SOURCES
from ..experiments import Context, Experiment, select
from ..formatting import DASH, fmt, relative, seconds, table, value
from ..paper import claim_header, not_run, paper_numbers, row
from ..report_figures import ATTENTION_COLORS, WIDTH, pyplot, save
from ..verdicts import gap_standard_error

ATTENTIONS = ("linear", "softmax")  # the two models compared
TASKS = {"train": train.train, "samples": samples.make_samples}  # what a worker runs, by task kind
RUN_FIELDS = ("steps", "wall_seconds", "seconds_per_step", "curve", "test_bits_per_dim", "n_test_images", "config")


def run_name(attention: str, seed: int) -> str:
    """The name of one training run (its experiment id and checkpoint folder): seed 0 keeps the
    attention's name alone, as before seeds were repeated."""
    return attention if seed == 0 else f"{attention}-seed{seed}"


# --- plan and estimate ------------------------------------------------------------------------------

def plan(ctx: Context):
    """Train both models once per seed, then draw samples with every backend present (same noise,
    same prefixes) from the models the profile names: the shipped trained ones (trained/), or this
    run's seed-0 models. Recorded as not run (with the reason and the fix) when the study could get
    no data set, or no model to sample."""
    q = profiles.settings(ctx.profile, "quality")
    if q["backend"] not in ctx.backends:
        return [], {}
    seeds = q.pop("seeds", [0])
    dataset = ctx.data.get("dataset")
    no_data = None if dataset else f"{ctx.data['reason']}; {ctx.data['fix']}"
    out = []
    for attention in ATTENTIONS:
        for seed in seeds:
            name = run_name(attention, seed)
            task = {**q, "kind": "train", "attention": attention, "seed": seed, "dataset": dataset,
                    "data_dir": ctx.data_dir, "checkpoint_dir": str(ctx.folder / "checkpoints" / name),
                    "threads": ctx.threads, "device": ctx.device}
            out.append(Experiment(f"C3-{name}", "C3", "train", _unless(no_data, task), estimate(task, ctx.machine)))
    return out + _sample_plan(ctx, q, dataset, no_data), {}


def _sample_plan(ctx, q, dataset, no_data):
    s = profiles.settings(ctx.profile, "samples")
    source = s.get("models", "trained")
    if source == "shipped":
        models = trained.shipped()
        why = None if models else f"no trained model ships in {trained.TRAINED}; train one (README, 'Trained models')"
        found = {a: (str(m["path"]), m["dataset"], m["provenance"]["config"]) for a, m in models.items()}
    else:
        why = no_data
        found = {a: (str(ctx.folder / "checkpoints" / a), dataset, {**q["model"], "attention": a}) for a in ATTENTIONS}
    out = []
    for attention in ATTENTIONS:
        checkpoint, data_name, config = found.get(attention, (None, None, {**q["model"], "attention": attention}))
        completions = s["completions"] if data_name and (data_name == "synthetic" or data.available(
            data_name, data_dir=ctx.data_dir)) else 0
        for backend in ctx.backends:
            task = dict(kind="samples", backend=backend, attention=attention, checkpoint=checkpoint, source=source,
                        out_dir=str(ctx.folder / "samples"), images=s["images"], completions=completions,
                        dataset=data_name, data_dir=ctx.data_dir, model=config, threads=ctx.threads)
            missing = why or (None if checkpoint else f"no {attention} model to sample")
            out.append(Experiment(f"S-{attention}-{backend}", "C3", "samples", _unless(missing, task),
                                  estimate(task, ctx.machine)))
    return out


def _unless(no_data, task):
    return {**task, "kind": "skip", "status": "not run", "reason": no_data} if no_data else task


def estimate(task, machine) -> dict:
    if task["kind"] == "samples":
        config = train.model_config({"model": {k: v for k, v in task["model"].items() if k not in ("attention", "head")},
                                     "attention": "linear"})
        r = roofline.roofline_seconds_per_image(config, "linear-recurrent", task["images"], machine)
        n = task["images"] + task["completions"]
        return estimates.estimate(estimates.OVERHEAD * 20 * r["roofline_seconds_per_image"] * n,
                                  2 * estimates.weights_bytes(config) + n * estimates.memory_per_image(config, "softmax-cached"),
                                  "20x the roofline (batch-of-few generation is overhead-bound), times the overhead")
    config = train.model_config(task)
    P, F = roofline.matmul_params(config), estimates.FLOAT
    T, L, C = config.seq_len, config.n_layers, config.d_model
    tokens = task["batch_size"] * T
    softmax = config.attention == "softmax"
    attn = L * 4 * T * T * C * task["batch_size"] if softmax else L * 6 * T * C * config.d_head * task["batch_size"]
    flops_step = 3 * (2 * P * tokens + attn)
    evals = task["steps"] // task["eval_every"] + 1
    eval_flops = evals * (task["eval_images"] * T * 2 * P) + task["test_images"] * T * 2 * P
    memory = 4 * P * F + 40 * tokens * C * F * L + (task["batch_size"] * config.n_heads * T * T * F * 3 * L if softmax else 0)
    return estimates.estimate(estimates.OVERHEAD * 2 * estimates.gemm_seconds(task["steps"] * flops_step + eval_flops, machine),
                              memory, "3x forward FLOPs per step (x2 for small-matrix inefficiency) times the overhead")


# --- summarise and judge ---------------------------------------------------------------------------

def summarise(summary, outcomes, folder):
    folder = Path(folder)
    runs = {a: [] for a in ATTENTIONS}
    for o in select(outcomes, kind="train"):
        runs[o.task["attention"]].append({**o.row(), "seed": o.task.get("seed", 0), "dataset": o.task["dataset"],
                                          **({k: o.result[k] for k in RUN_FIELDS} if o.ok else {})})
    for a in runs:
        runs[a].sort(key=lambda r: r["seed"])
    train_tasks = [o.task for o in select(outcomes, kind="train")]
    dataset = next((t["dataset"] for t in train_tasks), None)
    data_dir = next((t.get("data_dir") for t in train_tasks), None)
    summary["quality"] = quality_summary(runs, dataset, _checksum(dataset, data_dir))
    drawn = {}
    for o in select(outcomes, kind="samples"):
        entry = {**o.row(), "backend": o.task.get("backend", "torch"), "source": o.task.get("source", "trained"),
                 "dataset": o.task.get("dataset"), "checkpoint": o.task.get("checkpoint")}
        if o.ok:
            entry["files"] = {k: relative(folder, v) for k, v in o.result["files"].items()}
            entry["arrays"] = {k: relative(folder, v) for k, v in o.result.get("arrays", {}).items()}
            entry["mode"] = o.result.get("mode")
        drawn.setdefault(o.task["attention"], {})[entry["backend"]] = entry
    summary["samples"] = {a: {"backends": by, "parity": samples.parity(
        {b: {k: folder / v for k, v in e.get("arrays", {}).items()} for b, e in by.items() if e.get("status") == "ok"})}
        for a, by in drawn.items()}


def quality_summary(runs: dict, dataset, checksum=None) -> dict:
    """summary["quality"] from the training runs {attention: [one per seed]}: the runs, the means
    over seeds, the equal-time reading and the shipped models (what `judge` and the report read)."""
    return {**compare(runs, dataset, checksum), "shipped": shipped_section_data(), "shipped_runs": shipped_runs_data()}


def compare(runs: dict, dataset, checksum=None, seconds_per_step=None) -> dict:
    """The comparison of runs {attention: [one per seed]}: means and spread, the equal-time reading
    (by the runs' own seconds per step, or the `seconds_per_step` measured apart)."""
    return {"dataset": dataset, "dataset_checksum": checksum, "runs": runs,
            "seeds": sorted({r.get("seed", 0) for rs in runs.values() for r in rs}),
            "aggregate": {a: aggregate(rs) for a, rs in runs.items()}, "equal_time": equal_time(runs, seconds_per_step)}


def shipped_runs_data() -> dict | None:
    """Every training run of the shipped models' profile (trained/<dataset>/runs.json), compared as
    this run's own are, with the verdict the rules give them."""
    record = trained.shipped_runs()
    if not record:
        return None
    timing = record.get("timing") or {}
    out = {**{k: record.get(k) for k in ("profile", "command", "shipped", "dataset", "dataset_checksum", "provenance",
                                         "timing")},
           **compare(record["runs"], record["dataset"], record.get("dataset_checksum"), timing.get("seconds_per_step"))}
    if out.get("equal_time") and timing.get("how"):
        out["equal_time"]["timing_how"] = timing["how"]  # how the seconds per step were measured, for the report
    return out


def aggregate(rows) -> dict:
    """Test bits/dim over the seeds that finished: n, mean and sample standard deviation (None
    under two seeds)."""
    return verdicts.mean_sd(r["test_bits_per_dim"] for r in rows
                            if r.get("status") == "ok" and r.get("test_bits_per_dim") is not None)


def equal_time(runs, seconds_per_step=None) -> dict | None:
    """The paper's other reading of C3 (its CIFAR-10 comparison): both attentions given the same
    training time. The budget is the time the faster attention (fewer seconds per step, the median
    over its seeds unless `seconds_per_step` gives them) takes for its whole step budget S; the
    slower one completes k = S * s_fast / s_slow steps in it. Compared: validation bits/dim, the
    faster's at step S, the slower's at step k (linear between its validation points), per seed."""
    ok = {a: [r for r in runs.get(a, []) if r.get("status") == "ok" and r.get("curve")] for a in ATTENTIONS}
    if not all(ok.values()):
        return None
    sps = seconds_per_step or {a: _median([r["seconds_per_step"] for r in rs]) for a, rs in ok.items()}
    fast = min(ATTENTIONS, key=lambda a: sps[a])
    slow = next(a for a in ATTENTIONS if a != fast)
    S = min(r["steps"] for r in ok[fast])
    budget = S * sps[fast]
    k = budget / sps[slow]
    valid = {fast: [_valid_at(r["curve"], S) for r in ok[fast]], slow: [_valid_at(r["curve"], k) for r in ok[slow]]}
    pairs = [(lv, sv) for lv, sv in zip(valid["linear"], valid["softmax"]) if lv is not None and sv is not None]
    gaps = [lv - sv for lv, sv in pairs]
    contended = seconds_per_step is None and any((r.get("contention") or {}).get("contended") for rs in ok.values() for r in rs)
    return {"faster": fast, "seconds_per_step": sps, "measured_apart": seconds_per_step is not None,
            "budget_seconds": budget, "steps": {fast: S, slow: k},
            "valid_bits_per_dim": valid, "gaps": gaps, "gap": aggregate([{"status": "ok", "test_bits_per_dim": g}
                                                                        for g in gaps]),
            "contended": contended}


def _median(v):
    v = sorted(v)
    return (v[(len(v) - 1) // 2] + v[len(v) // 2]) / 2


def _valid_at(curve, step):
    """Validation bits/dim at `step`, linear between the evaluations around it; None before the first."""
    pts = [(p["step"], p["valid_bits_per_dim"]) for p in curve if p.get("valid_bits_per_dim") is not None]
    if not pts or step < pts[0][0]:
        return None
    for (s0, v0), (s1, v1) in zip(pts, pts[1:]):
        if s0 <= step <= s1:
            return v0 + (v1 - v0) * (step - s0) / (s1 - s0)
    return pts[-1][1]


def shipped_section_data() -> dict:
    """The shipped trained models' records (trained/*/*/provenance.json), for the report."""
    return {a: {"dataset": m["dataset"], "path": relative(trained.ROOT, m["path"]),
                **{k: m["provenance"].get(k) for k in ("profile", "command", "steps", "test_bits_per_dim",
                                                         "n_test_images", "seconds_per_step", "curve", "config",
                                                         "dataset_checksum", "shipped", "training", "provenance",
                                                         "trained_at_commit")}}
            for a, m in trained.shipped().items()}


def _checksum(dataset, data_dir):
    if dataset in (None, "synthetic"):
        return None
    try:
        return dataset_checksum(dataset, data_dir=data_dir)
    except Exception as e:  # recorded, not fatal: the summary is still written
        return f"unavailable: {e}"


def judge(paper, s) -> list[dict]:
    c, claim = paper["C3"], claim_header(paper, "C3")
    q = s["quality"]
    runs = q["runs"]
    failed = {}
    for a in ATTENTIONS:
        for r in runs.get(a, []) or [{"status": "not run", "reason": "training not run"}]:
            if r.get("status") != "ok":
                failed.setdefault(str(r.get("reason")), []).append(run_name(a, r.get("seed", 0)))
    if failed:
        reasons = "; ".join(f"{' and '.join(names)}: {why}" for why, names in failed.items())
        return [not_run(claim, reasons or "training not run")]
    p = c["bits_per_dim"]["mnist"]
    gap_paper = p["linear"] - p["softmax"]
    agg = q["aggregate"]
    lin, soft = agg["linear"], agg["softmax"]
    gap = lin["mean"] - soft["mean"]
    d = q["dataset"]
    verdict, evidence = verdicts.quality(runs, d, p)
    steps = runs["linear"][0]["steps"]
    n = min(lin["n"], soft["n"])
    seeds = f"mean of {n} seeds" if n > 1 else "one seed"
    rows = [
        row(f"bits/dim linear - softmax, same {steps} steps ({d}, {seeds}; paper: MNIST, 250 epochs)",
            gap_paper, gap, verdict, paper_text=f"{gap_paper:+.3f}", ours_text=_pm(gap, gap_standard_error(lin, soft))),
        row(f"linear test bits/dim ({d})", p["linear"], lin["mean"], "context", ours_text=_pm(lin["mean"], lin["sd"])),
        row(f"softmax test bits/dim ({d})", p["softmax"], soft["mean"], "context", ours_text=_pm(soft["mean"], soft["sd"])),
        row("training seconds per step, linear / softmax", None,
            _median([r["seconds_per_step"] for r in runs["linear"]]) / _median([r["seconds_per_step"] for r in runs["softmax"]]),
            "context", "x"),
    ]
    et = q.get("equal_time")
    if et and et["gaps"]:
        slow = next(a for a in ATTENTIONS if a != et["faster"])
        rows.append(row(f"validation bits/dim linear - softmax, same training time ({et['faster']} {et['steps'][et['faster']]:,} "
                        f"steps, {slow} {et['steps'][slow]:,.0f})" + (" (timings contended)" if et["contended"] else ""),
                        None, et["gap"]["mean"], "context", ours_text=_pm(et["gap"]["mean"], et["gap"]["sd"])))
    return [{**claim, "status": "measured", "evidence": evidence, "rows": rows}]


def _pm(x, sd):
    return f"{x:+.3f}" if sd is None else f"{x:+.3f} ± {sd:.3f}"


# --- the report: tables, figures, prose -------------------------------------------------------------

def report(summary, paper, folder, figures_dir) -> dict:
    return {"sections": {"data": data_section(summary), "quality": quality_section(summary, paper, Path(folder)),
                         "trained": trained_section(summary, paper)},
            "figures": figures(summary, paper, figures_dir),
            "prose": {"quality": quality_prose(summary, paper_numbers(paper)["values"])}}


def figures(summary, paper, out_dir) -> dict:
    return {"curves": curves_figure(summary["quality"]["runs"], out_dir, "curves.svg"),
            "trained_curves": curves_figure({a: [{**m, "status": "ok", "seed": 0}] for a, m in
                                             summary["quality"].get("shipped", {}).items() if m.get("curve")},
                                            out_dir, "trained-curves.svg", by_time=False)}


def _c3(summary):
    return next((c for c in summary["claims"] if c["id"] == "C3"), {})


def _ok_runs(summary):
    return [r for rs in summary["quality"]["runs"].values() for r in rs if r.get("status") == "ok"]


def data_section(summary):
    q = summary["quality"]
    name = q["dataset"]
    hp = {h["name"]: h["value"] for h in summary["hyperparameters"] if h["section"] == "quality"}
    out = {"missing": name is None}
    if name is None:
        out["text"] = "C3 not run: no dataset was used (" + (_c3(summary).get("note") or "training not run") + ")."
        return out
    runs = _ok_runs(summary)
    steps = max((r.get("steps") or 0 for r in runs), default=0)
    seen = steps * hp.get("batch_size", 0)
    if name == "synthetic":
        out["text"] = ("Synthetic smooth images (sinusoidal patterns drawn from a fixed seed), generated in memory: no real "
                       "data set was available offline on this machine. The smoke profile allows this so that the whole "
                       "pipeline runs anywhere; its bits/dim say nothing about the paper's claim.")
    else:
        src = SOURCES[name]
        n_train = sum(f.count for f in src.split_files("train", "images" if src.format == "idx" else "batch"))
        n_test = sum(f.count for f in src.split_files("test", "images" if src.format == "idx" else "batch"))
        out["text"] = (f"{name} ({'×'.join(map(str, src.image_shape))}, from {src.homepage}), read offline from a verified "
                       f"copy: {n_train:,} official training images, of which a fixed {VALID_FRACTION:.0%} is held out for "
                       f"validation, and {n_test:,} test images.")
    out["table"] = table(["", "value"], [
        ["data set", name], ["dataset checksum (sha256 of the verified data)", q.get("dataset_checksum") or DASH],
        ["training steps × batch size (images seen per model)",
         f"{steps:,} × {hp.get('batch_size', DASH)} = {seen:,}" if steps else "not trained in this run"],
        ["seeds per attention", ", ".join(map(str, q.get("seeds", []))) or DASH],
        ["validation images per evaluation", value(hp.get("eval_images", DASH))],
        ["test images for the final bits/dim", ", ".join(sorted({str(r.get("n_test_images")) for r in runs})) or DASH],
    ])
    return out


def quality_section(summary, paper, folder: Path):
    q = summary["quality"]
    c3 = _c3(summary)
    return {"table": runs_table(q, paper),
            "missing": c3.get("status") != "measured",
            "missing_text": "C3 not run: " + (c3.get("note") or "training not run") + ".",
            "equal_time": equal_time_table(q.get("equal_time")),
            "samples": samples_section(summary, folder)}


def runs_table(q, paper):
    """Test bits/dim per run (seed), and the mean and spread over seeds, beside the paper's."""
    bpd = paper["C3"]["bits_per_dim"]
    rows = []
    for attention in ATTENTIONS:
        for r in q["runs"].get(attention) or [{"status": "not run", "reason": "not planned", "seed": 0}]:
            who = f"{attention}, seed {r.get('seed', 0)}"
            if r.get("status") != "ok":
                status = "" if r.get("status") == "not run" else f" {r.get('status')}"
                rows.append([who, f"not run:{status} ({r.get('reason')})", DASH, DASH, DASH, DASH, fmt(bpd["mnist"][attention])])
            else:
                rows.append([who, r["dataset"], f"{r['steps']:,}", f"{r['test_bits_per_dim']:.3f}",
                             fmt(r["seconds_per_step"], " s"), seconds(r["wall_seconds"]), fmt(bpd["mnist"][attention])])
        a = q.get("aggregate", {}).get(attention, {})
        if a.get("n", 0) > 1:
            rows.append([f"{attention}, mean ± sd", f"{a['n']} seeds", DASH, _pm(a["mean"], a["sd"]).lstrip("+"), DASH, DASH,
                         fmt(bpd["mnist"][attention])])
    return table(["run", "data", "steps", "test bits/dim", "s/step", "training time", "paper (MNIST)"], rows)


def equal_time_table(et):
    if not et:
        return None
    slow = next(a for a in ATTENTIONS if a != et["faster"])
    rows = []
    for a in (et["faster"], slow):
        v = [x for x in et["valid_bits_per_dim"][a] if x is not None]
        agg = aggregate([{"status": "ok", "test_bits_per_dim": x} for x in v])
        rows.append([a, fmt(et["seconds_per_step"][a], " s"), f"{et['steps'][a]:,.0f}",
                     _pm(agg["mean"], agg["sd"]).lstrip("+") if agg["n"] else "before its first validation point"])
    note = (f"Budget: {seconds(et['budget_seconds'])} of training, the time {et['faster']} takes for its whole step budget. "
            + ("Some training timings were taken while other processes used the cores." if et["contended"] else "")
            + (f"Seconds per step measured apart from the runs (which shared the machine): {et['timing_how']}."
               if et.get("measured_apart") and et.get("timing_how") else
               "Seconds per step measured apart from the runs (which shared the machine)." if et.get("measured_apart") else ""))
    return table(["attention", "s/step", "steps in the budget", "validation bits/dim (mean ± sd over seeds)"], rows, note=note)


def samples_section(summary, folder: Path):
    """Per attention: the grids of the first backend that drew them, every backend's status, and
    the parity of the other backends' images with that first one."""
    out = {}
    for attention, s in summary["samples"].items():
        by = s.get("backends", {})
        ok = [b for b, e in by.items() if e.get("status") == "ok"]
        first = by[ok[0]] if ok else {}
        files = {k: v for k, v in (first.get("files") or {}).items() if (folder / v).is_file()}
        rows = [[p["backend"], p["against"], p["kind"], f"{p['equal_images']} of {p['images']}", f"{p['equal_bytes']:.1%}"]
                for p in s.get("parity", [])]
        rows += [[b, DASH, f"{e.get('status')}: {e.get('reason')}", DASH, DASH] for b, e in by.items() if e.get("status") != "ok"]
        shipped = (summary["quality"].get("shipped") or {}).get(attention) or {}
        steps = shipped.get("steps") if first.get("source") == "shipped" else None
        out[attention] = {"status": "ok" if files else "not run", "files": files, "backend": ok[0] if ok else None,
                          "source": first.get("source"), "dataset": first.get("dataset"),
                          "model": f"{first.get('source')} model" + (f" ({steps:,} steps)" if steps else ""),
                          "reason": "; ".join(f"{b}: {e.get('reason')}" for b, e in by.items() if e.get("status") != "ok")
                          or "no model to sample",
                          "parity": table(["backend", "against", "images", "equal images", "equal bytes"], rows) if rows else None}
    return out


def trained_section(summary, paper):
    """The shipped trained models: what they are, how they were made, what they reach; and every
    run of their profile (all seeds), compared and judged by the same rules as this run's C3."""
    q = summary["quality"]
    m = q.get("shipped") or {}
    if not m:
        return {"missing": True, "text": "No trained model ships with this copy of the repository (trained/ is empty)."}
    rows = []
    for a in ATTENTIONS:
        if a in m:
            r = m[a]
            cfg = r.get("config") or {}
            rows.append([a, r["dataset"], r.get("profile") or DASH, f"{r.get('steps') or 0:,}",
                         f"L={cfg.get('n_layers')}, H={cfg.get('n_heads')}, d={cfg.get('d_model')}",
                         fmt(r.get("test_bits_per_dim")), f"{r.get('n_test_images') or 0:,}",
                         (r.get("trained_at_commit") or ((r.get("provenance") or {}).get("git") or {}).get("commit") or DASH)[:10], r.get("shipped") or DASH])
    state = []
    for a in ATTENTIONS:
        if a in m and m[a].get("curve"):
            trained_enough, why = verdicts.convergence(m[a]["curve"])
            state.append(f"{a}: {'trained by the convergence rule' if trained_enough else why}")
    undertrained = any("undertrained" in x or "fewer than" in x for x in state)
    out = {"missing": False, "table": table(["model", "data", "profile", "steps", "size", "test bits/dim", "test images",
                                             "commit", "shipped"], rows),
           "state": ("; ".join(state) + "." + (" Their samples show what this budget reaches, not what the "
                                               "architecture can do." if undertrained else "")) if state else "",
           "commands": {a: m[a].get("command") or DASH for a in ATTENTIONS if a in m}, "runs": None,
           "pair": pair_text(m), "reference": reference_text(paper, next(iter(m.values()))["dataset"])}
    runs = q.get("shipped_runs")
    if runs and all(runs["runs"].get(a) for a in ATTENTIONS):
        p = paper["C3"]["bits_per_dim"]["mnist"]
        verdict, evidence = verdicts.quality(runs["runs"], runs["dataset"], p)
        agg = runs["aggregate"]
        gap = agg["linear"]["mean"] - agg["softmax"]["mean"]
        et = runs.get("equal_time")
        counts = ", ".join(f"{len(runs['runs'][a])} {a}" for a in ATTENTIONS)
        out["runs"] = {"profile": runs["profile"], "table": runs_table(runs, paper),
                       "equal_time": equal_time_table(et), "verdict": verdict,
                       "text": (f"Every run of the {runs['profile']} profile ({counts}; "
                                f"seeds {', '.join(map(str, runs['seeds']))}) on {runs['dataset']}: the gap linear - softmax at equal "
                                f"steps is {_pm(gap, gap_standard_error(agg['linear'], agg['softmax']))} bits/dim (the paper's MNIST gap: "
                                f"{p['linear'] - p['softmax']:+.3f}). Verdict by the rules of this report: {verdict}.")}
    return out


def pair_text(shipped) -> str:
    """What the shipped pair says about linear against softmax: their gap where both trained the
    same number of steps (one seed each, so no spread and no verdict), else that they do not compare."""
    if not all(a in shipped for a in ATTENTIONS):
        return ""
    steps = {a: shipped[a].get("steps") for a in ATTENTIONS}
    if steps["linear"] != steps["softmax"]:
        return (f"The two trained for different numbers of steps ({', '.join(f'{a} {n or 0:,}' for a, n in steps.items())}): "
                "their bits/dim and samples do not compare linear with softmax.")
    gap = shipped["linear"]["test_bits_per_dim"] - shipped["softmax"]["test_bits_per_dim"]
    return (f"Both trained for {steps['linear']:,} steps: the gap linear - softmax is {gap:+.3f} test bits/dim, "
            "from one seed each, so it has no spread and gets no verdict.")


def reference_text(paper, dataset) -> str:
    """Published bits/dim of other likelihood models on `dataset` (claims.toml [C3.reference]), for
    scale beside the shipped models: a sentence, or "" where none is recorded."""
    ref = paper["C3"].get("reference", {}).get(dataset)
    if not ref:
        return ""
    numbers = ", ".join(f"{name} {v:.2f}" for name, v in sorted(ref["bits_per_dim"].items(), key=lambda kv: kv[1]))
    return (f"For scale (not the paper's numbers: it did not use {dataset}), published bits/dim of other "
            f"likelihood models on {dataset}: {numbers} ({ref['source']}).")


def curves_figure(runs_by_attention, out_dir, name, by_time=True):
    """Validation (and training) bits/dim vs training step and (`by_time`) vs wall-clock seconds,
    one line per seed."""
    runs = {a: [r for r in rs if r.get("status") == "ok" and r.get("curve")] for a, rs in runs_by_attention.items()}
    runs = {a: rs for a, rs in runs.items() if rs}
    if not runs:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, 2 if by_time else 1, figsize=(WIDTH if by_time else WIDTH / 2, 2.6), squeeze=False)
    axes = axes[0]
    for attention, rs in sorted(runs.items()):
        color = ATTENTION_COLORS.get(attention, "0.3")
        for i, run in enumerate(rs):
            steps = [p["step"] for p in run["curve"]]
            wall = [p["wall_seconds"] for p in run["curve"]]
            for ax, xs in zip(axes, (steps, wall)):
                ax.plot(xs, [p["valid_bits_per_dim"] for p in run["curve"]], "-o", color=color, markersize=3,
                        label=f"{attention}, validation" if i == 0 else None)
                ax.plot(xs, [p["train_bits_per_dim"] for p in run["curve"]], "--", color=color, alpha=0.5,
                        label=f"{attention}, training (mean since last point)" if i == 0 else None)
    axes[0].set_xlabel("training step")
    if by_time:
        axes[1].set_xlabel("training wall-clock time (s)")
    for ax in axes:
        ax.set_ylabel("bits / dim")
    handles, _ = axes[0].get_legend_handles_labels()
    return save(plt, fig, out_dir, name, handles, ncol=2)


def quality_prose(summary, paper):
    q = summary["quality"]
    agg = q.get("aggregate", {})
    c3 = _c3(summary)
    if c3.get("status") != "measured":
        return f"C3 not run: {c3.get('note') or 'training not run'}."
    lin, soft = agg["linear"], agg["softmax"]
    gap = round(lin["mean"] - soft["mean"], 3)
    better = "linear is better" if gap < 0 else "softmax is better" if gap > 0 else "equal to three decimals"
    gap_text = f"{gap:+.3f}" if gap else "0.000"
    n = min(lin["n"], soft["n"])
    steps = q["runs"]["linear"][0]["steps"]
    seeds = f" (means over {n} seeds; the gap's standard error {gap_standard_error(lin, soft):.3f})" if n > 1 else " (one seed each)"
    s = (f"After the same {steps:,} training steps on {q['dataset']}, linear attention reached "
         f"{lin['mean']:.3f} test bits/dim and softmax {soft['mean']:.3f}{seeds}: a gap of {gap_text} "
         f"({better}; the paper's MNIST gap after 250 epochs is {paper['mnist_bpd_gap']:+.3f}).")
    et = q.get("equal_time")
    if et and et["gaps"]:
        slow = next(a for a in ATTENTIONS if a != et["faster"])
        s += (f" A {et['faster']} training step was {fmt(et['seconds_per_step'][slow] / et['seconds_per_step'][et['faster']], '×')} "
              f"faster than a {slow} step, so in the time {et['faster']} took for its {et['steps'][et['faster']]:,} steps, "
              f"{slow} completed {et['steps'][slow]:,.0f}; at that equal time the validation gap linear - softmax is "
              f"{_pm(et['gap']['mean'], et['gap']['sd'])} bits/dim (the paper's CIFAR-10 comparison, by time).")
    if q["dataset"] == "synthetic":
        s += " The data were synthetic, so this comparison tests the pipeline, not the claim."
    verdict = c3["rows"][0]["verdict"] if c3.get("rows") else "not run"
    s += f" Verdict: {verdict}."
    if verdict.startswith("inconclusive"):
        s += (" The paper's claim is about models after 250 epochs: these numbers show how the two attentions compare "
              "at this budget, not at the paper's.")
    elif c3.get("evidence"):
        s += f" Convergence: {c3['evidence']}."
    return s
