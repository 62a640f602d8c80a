"""Quality: C3 (a linear and a softmax model trained with the same budget on the same bytes, their
test bits/dim compared) and the sample grids drawn from the two checkpoints. Plans the training and
sampling, estimates them, summarises them, judges C3, and writes the data and quality sections.
"""

from __future__ import annotations

from pathlib import Path

from .. import estimates, profiles, roofline, samples, train, verdicts
from ..data import dataset_checksum
from ..datasets.sequences import VALID_FRACTION
from ..datasets.sources import SOURCES
from ..experiments import Context, Experiment, select
from ..formatting import DASH, fmt, relative, seconds, table, value
from ..paper import claim_header, not_run, paper_numbers, row
from ..report_figures import ATTENTION_COLORS, WIDTH, pyplot, save

ATTENTIONS = ("linear", "softmax")  # the two models compared
TASKS = {"train": train.train, "samples": samples.make_samples}  # what a worker runs, by task kind
RUN_FIELDS = ("steps", "wall_seconds", "seconds_per_step", "curve", "test_bits_per_dim", "n_test_images", "config")


# --- plan and estimate ------------------------------------------------------------------------------

def plan(ctx: Context):
    """Train both models, then draw samples from each; recorded as not run (with the reason and the
    fix) when the study could get no data set."""
    q = profiles.settings(ctx.profile, "quality")
    if q["backend"] not in ctx.backends:
        return [], {}
    dataset = ctx.data.get("dataset")
    no_data = None if dataset else f"{ctx.data['reason']}; {ctx.data['fix']}"
    out = []
    for attention in ATTENTIONS:
        task = {**q, "kind": "train", "attention": attention, "dataset": dataset, "data_dir": ctx.data_dir,
                "checkpoint_dir": str(ctx.folder / "checkpoints" / attention), "threads": ctx.threads,
                "device": ctx.device}
        out.append(Experiment(f"C3-{attention}", "C3", "train", _unless(no_data, task), estimate(task, ctx.machine)))
    s = ctx.profile["samples"]
    for attention in ATTENTIONS:
        task = dict(kind="samples", attention=attention, checkpoint=str(ctx.folder / "checkpoints" / attention),
                    out_dir=str(ctx.folder / "samples"), images=s["images"], completions=s["completions"], dataset=dataset,
                    data_dir=ctx.data_dir, model=q["model"])
        out.append(Experiment(f"S-{attention}", "C3", "samples", _unless(no_data, task), estimate(task, ctx.machine)))
    return out, {}


def _unless(no_data, task):
    return {**task, "kind": "skip", "status": "not run", "reason": no_data} if no_data else task


def estimate(task, machine) -> dict:
    if task["kind"] == "samples":
        config = train.model_config({"model": task["model"], "attention": "linear"})
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
    runs = {o.task["attention"]: {**o.row(), "dataset": o.task["dataset"],
                                  **({k: o.result[k] for k in RUN_FIELDS} if o.ok else {})}
            for o in select(outcomes, kind="train")}
    dataset = next((r["dataset"] for r in runs.values()), None)
    data_dir = next((o.task.get("data_dir") for o in select(outcomes, kind="train")), None)
    summary["quality"] = {"dataset": dataset, "dataset_checksum": _checksum(dataset, data_dir), "runs": runs}
    summary["samples"] = {o.task["attention"]: {**o.row(), **({"files": {k: relative(folder, v) for k, v in
                                                                         o.result["files"].items()}} if o.ok else {})}
                          for o in select(outcomes, kind="samples")}


def _checksum(dataset, data_dir):
    if dataset in (None, "synthetic"):
        return None
    try:
        return dataset_checksum(dataset, data_dir=data_dir)
    except Exception as e:  # recorded, not fatal: the summary is still written
        return f"unavailable: {e}"


def judge(paper, s) -> list[dict]:
    c, claim = paper["C3"], claim_header(paper, "C3")
    runs = s["quality"]["runs"]
    if not all(runs.get(a, {}).get("status") == "ok" for a in ATTENTIONS):
        failed = {}
        for a in runs:
            if runs[a].get("status") != "ok":
                failed.setdefault(str(runs[a].get("reason")), []).append(a)
        reasons = "; ".join(f"{' and '.join(names)}: {why}" for why, names in failed.items())
        return [not_run(claim, reasons or "training not run")]
    p = c["bits_per_dim"]["mnist"]
    gap_paper = p["linear"] - p["softmax"]
    lin, soft = runs["linear"]["test_bits_per_dim"], runs["softmax"]["test_bits_per_dim"]
    gap = lin - soft
    d = s["quality"]["dataset"]
    verdict, evidence = verdicts.quality(runs, d, p)
    steps = runs["linear"]["steps"]
    return [{**claim, "status": "measured", "evidence": evidence, "rows": [
        row(f"bits/dim linear - softmax, same {steps} steps ({d}; paper: MNIST, 250 epochs)",
            gap_paper, gap, verdict, paper_text=f"{gap_paper:+.3f}", ours_text=f"{gap:+.3f}"),
        row(f"linear test bits/dim ({d})", p["linear"], lin, "context"),
        row(f"softmax test bits/dim ({d})", p["softmax"], soft, "context"),
        row("training seconds per step, linear / softmax", None,
            runs["linear"]["seconds_per_step"] / runs["softmax"]["seconds_per_step"], "context", "x"),
    ]}]


# --- the report: tables, figures, prose -------------------------------------------------------------

def report(summary, paper, folder, figures_dir) -> dict:
    return {"sections": {"data": data_section(summary), "quality": quality_section(summary, paper, Path(folder))},
            "figures": figures(summary, paper, figures_dir),
            "prose": {"quality": quality_prose(summary, paper_numbers(paper)["values"])}}


def figures(summary, paper, out_dir) -> dict:
    return {"curves": curves_figure(summary, out_dir)}


def _c3(summary):
    return next((c for c in summary["claims"] if c["id"] == "C3"), {})


def data_section(summary):
    q = summary["quality"]
    name = q["dataset"]
    hp = {h["name"]: h["value"] for h in summary["hyperparameters"] if h["section"] == "quality"}
    out = {"missing": name is None}
    if name is None:
        out["text"] = "C3 not run: no dataset was used (" + (_c3(summary).get("note") or "training not run") + ")."
        return out
    runs = [r for r in q["runs"].values() if r.get("status") == "ok"]
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
        ["validation images per evaluation", value(hp.get("eval_images", DASH))],
        ["test images for the final bits/dim", ", ".join(sorted({str(r.get("n_test_images")) for r in runs})) or DASH],
    ])
    return out


def quality_section(summary, paper, folder: Path):
    q = summary["quality"]
    c3 = _c3(summary)
    bpd = paper["C3"]["bits_per_dim"]
    rows = []
    for attention in ATTENTIONS:
        r = q["runs"].get(attention)
        if r is None:
            rows.append([attention, "not run", DASH, DASH, DASH, DASH, fmt(bpd["mnist"][attention])])
        elif r.get("status") != "ok":
            status = "" if r.get("status") == "not run" else f" {r.get('status')}"
            rows.append([attention, f"not run:{status} ({r.get('reason')})", DASH, DASH, DASH, DASH,
                         fmt(bpd["mnist"][attention])])
        else:
            rows.append([attention, r["dataset"], f"{r['steps']:,}", f"{r['test_bits_per_dim']:.3f}",
                         fmt(r["seconds_per_step"], " s"), seconds(r["wall_seconds"]), fmt(bpd["mnist"][attention])])
    grids = {}
    for attention, s in summary["samples"].items():
        files = s.get("files") or {}
        grids[attention] = {"status": s.get("status"), "reason": s.get("reason"),
                            "files": {k: v for k, v in files.items() if (folder / v).is_file()}}
    return {"table": table(["attention", "data", "steps", "test bits/dim", "s/step", "training time", "paper (MNIST)"], rows),
            "missing": c3.get("status") != "measured",
            "missing_text": "C3 not run: " + (c3.get("note") or "training not run") + ".",
            "samples": grids}


def curves_figure(summary, out_dir):
    """Validation (and training) bits/dim vs training step and vs wall-clock seconds."""
    runs = {a: r for a, r in summary["quality"]["runs"].items() if r.get("status") == "ok" and r.get("curve")}
    if not runs:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 2.6))
    for attention, run in sorted(runs.items()):
        color = ATTENTION_COLORS.get(attention, "0.3")
        steps = [p["step"] for p in run["curve"]]
        wall = [p["wall_seconds"] for p in run["curve"]]
        for ax, xs in zip(axes, (steps, wall)):
            ax.plot(xs, [p["valid_bits_per_dim"] for p in run["curve"]], "-o", color=color, label=f"{attention}, validation")
            ax.plot(xs, [p["train_bits_per_dim"] for p in run["curve"]], "--", color=color, alpha=0.6,
                    label=f"{attention}, training (mean since last point)")
    axes[0].set_xlabel("training step")
    axes[1].set_xlabel("training wall-clock time (s)")
    for ax in axes:
        ax.set_ylabel("bits / dim")
    handles, _ = axes[0].get_legend_handles_labels()
    return save(plt, fig, out_dir, "curves.svg", handles, ncol=2)


def quality_prose(summary, paper):
    runs = summary["quality"]["runs"]
    lin, soft = runs.get("linear", {}), runs.get("softmax", {})
    c3 = _c3(summary)
    if lin.get("status") != "ok" or soft.get("status") != "ok":
        return f"C3 not run: {c3.get('note') or 'training not run'}."
    gap = round(lin["test_bits_per_dim"] - soft["test_bits_per_dim"], 3)
    better = "linear is better" if gap < 0 else "softmax is better" if gap > 0 else "equal to three decimals"
    gap_text = f"{gap:+.3f}" if gap else "0.000"
    s = (f"After the same {lin['steps']:,} training steps on {summary['quality']['dataset']}, linear attention reached "
         f"{lin['test_bits_per_dim']:.3f} test bits/dim and softmax {soft['test_bits_per_dim']:.3f}: a gap of {gap_text} "
         f"({better}; the paper's MNIST gap after 250 epochs is {paper['mnist_bpd_gap']:+.3f}). A linear training step took "
         f"{fmt(lin['seconds_per_step'] / soft['seconds_per_step'], '×')} the time of a softmax step at this sequence length.")
    if summary["quality"]["dataset"] == "synthetic":
        s += " The data were synthetic, so this comparison tests the pipeline, not the claim."
    verdict = c3["rows"][0]["verdict"] if c3.get("rows") else "not run"
    s += f" Verdict: {verdict}."
    if verdict.startswith("inconclusive"):
        s += (" These models are not trained far enough for the paper's claim, which is about models after 250 "
              "epochs: the numbers show that training runs, not how the two attentions compare.")
    elif c3.get("evidence"):
        s += f" Convergence: {c3['evidence']}."
    return s
