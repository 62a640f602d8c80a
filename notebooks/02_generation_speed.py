# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 2. Generation speed: throughput (C1) and latency at batch 1 (C2)
#
# **C1** (Tables 1, 2 and 4 of Katharopoulos et al., 2020): a linear transformer run as an RNN
# generates images much faster than a softmax transformer: MNIST 142.8 vs 0.45 images/s (317x),
# CIFAR-10 17.85 vs 0.004 (4,462x). Those baselines re-run the whole prefix at every step
# (`softmax-uncached`). Against a softmax transformer that caches keys and values
# (`softmax-cached`, "stateful-softmax", Table 4: 7.56 and 0.32 images/s) the ratios are 18.9x
# and 55.8x. The paper generated at a batch that "fits" (batch sizes unstated), on a GPU.
#
# **C2** (Supplementary Table 5): seconds to generate one image at batch 1; on a CPU, MNIST
# 72.6 s (uncached), 7.4 s (cached), 5.5 s (linear); CIFAR-10 8,651 s, 71.9 s, 45.1 s.
#
# What is measured here: seconds per image of each generation mode with random weights of the
# paper's sizes (the speed does not depend on the weights), through `replication.speed.measure`,
# the function behind `replication speed` and the study's workers. Beside each number, the
# roofline floor of this machine (bytes moved / measured bandwidth vs FLOPs / measured GEMM rate),
# so that "fast" has a reference. The ratios and verdicts come from `replication.summary` (the
# functions that write the report), against `replication/configs/claims.toml`.
#
# - `smoke = True`: the PyTorch backend in this process, the MNIST-sized model, short windows
#   (timed steps at a few positions, the per-step cost fitted and summed over the image, flagged
#   `extrapolated`); seconds.
# - `smoke = False`: reads a study's results folder (`make study`, every backend, both models,
#   the largest batch that fits the memory budget).

# %% tags=["parameters"]
smoke = True  # True: measure at toy settings here (CI); False: read a study's results folder
results_dir = None  # smoke=False: a results folder; None = the newest finished run in results/index.json
out_dir = None  # where results are written; None: a temporary folder (smoke) or RESULTS_DIR/notebooks
threads = None  # CPU threads; None: 1 in smoke mode (steady on a shared machine), all cores otherwise
# smoke measurements
models = ["mnist"]
modes = ["softmax-uncached", "softmax-cached", "linear-recurrent"]
batches = [1, 4]  # batches of the step modes
uncached_batches = [1]  # batches of softmax-uncached (a full forward per step: the slow one)
steps = 4  # steps per timed window (step modes)
repeats = 1
validation_steps = 16  # the uncached extrapolation checked against a full run of this many steps

# %%
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm.auto in Jupyter without ipywidgets

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display

from replication import notebook, roofline, summary
from replication.claims import generation
from replication.paper import load_paper
from replication.run import write_json
from replication.speed import measure, summary_line, validate_uncached

claims = load_paper()

threads, out_dir, results_dir = notebook.setup("nb02", smoke, threads, out_dir, results_dir)

# %% [markdown]
# ## 2.1 The measurements

# %%
if smoke:
    machine = roofline.measure_machine(threads)
    throughput = []
    for model in models:
        for mode in modes:
            for batch in uncached_batches if mode == "softmax-uncached" else batches:
                r = measure("torch", model, mode, batch, repeats=repeats, threads=threads, machine=machine,
                            steps=None if mode == "softmax-uncached" else steps)
                write_json(out_dir / "02_generation_speed" / f"torch-{model}-{mode}-b{batch}.json", r)
                print(summary_line(r))
                # the row shape of summary.json's "throughput" list
                throughput.append({"backend": "torch", "status": "ok", "reason": None, "model": model, "mode": mode,
                                   "batch": batch, **{k: r[k] for k in (
                                       "seconds_per_image", "images_per_second", "extrapolated", "method",
                                       "roofline_seconds_per_image", "bound", "iqr", "warmup_seconds", "compile_seconds")}})
    latency = [r for r in throughput if r["batch"] == 1 and r["mode"] != "softmax-uncached"]
    validation = [{"backend": "torch", "status": "ok",
                   **validate_uncached("torch", models[0], threads=threads, limit_T=validation_steps)}]
    backends = {"torch": {"status": "ok"}}
else:
    s = summary.load_summary(results_dir)
    throughput, latency, validation, backends = s["throughput"], s["latency"], s["uncached_validation"], s["backends"]
    machine = s["run"]["machine"]
    for r in throughput + latency:
        if r["status"] != "ok":
            print(f"{r['backend']} {r['model']} {r['mode']} batch {r['batch']}: {r['status']}: {r['reason']}")
print(f"machine: {machine['bandwidth_GBps']:.1f} GB/s, {machine['gemm_GFLOPs']:.1f} GFLOP/s")
for b, info in backends.items():
    if info.get("status") != "ok":
        print(f"backend {b} not measured: {info.get('reason')}")

# %%
def table(rows, columns):
    """A Markdown table of dict rows: columns is a list of (header, key or function, format)."""
    head = "| " + " | ".join(h for h, _, _ in columns) + " |\n|" + "---|" * len(columns) + "\n"
    body = ""
    for r in rows:
        cells = []
        for _, key, f in columns:
            x = key(r) if callable(key) else r.get(key)
            cells.append("n/a" if x is None else format(x, f) if f else str(x))
        body += "| " + " | ".join(cells) + " |\n"
    return Markdown(head + body)


ok = [r for r in throughput if r["status"] == "ok"]
display(table(sorted(ok, key=lambda r: (r["backend"], r["model"], r["mode"], r["batch"])), [
    ("backend", "backend", ""), ("model", "model", ""), ("mode", "mode", ""), ("batch", "batch", "d"),
    ("images/s", "images_per_second", ".4g"), ("s/image", "seconds_per_image", ".4g"),
    ("roofline s/image", "roofline_seconds_per_image", ".3g"),
    ("x floor", lambda r: r["seconds_per_image"] / r["roofline_seconds_per_image"], ".1f"),
    ("bound", "bound", ""), ("extrapolated", "extrapolated", ""),
    ("paper images/s (GPU)", lambda r: claims["C1"]["images_per_second"].get(r["model"], {}).get(r["mode"]), "g")]))

# %% [markdown]
# `x floor` is measured time over the roofline floor. At batch 1 every step reads every weight
# (25 MB for the MNIST-sized model), so the memory bandwidth sets the floor; larger batches share
# those reads until the matrix products bind. The uncached mode is timed at sampled prefix lengths
# and extrapolated (cost $a + bn + cn^2$ summed over the image); the check against a full run of
# the first steps:

# %%
for v in validation:
    if v.get("status") == "ok":
        print(f"{v['backend']}: {v['model']}, first {v['steps']} steps: extrapolated {v['extrapolated_seconds_per_image']:.3g} s, "
              f"measured {v['measured_seconds_per_image']:.3g} s, relative error {v['relative_error']:+.1%}")
    else:
        print(f"{v['backend']}: {v.get('status')}: {v.get('reason')}")

# %% [markdown]
# ## 2.2 Against the paper
#
# `replication.claims.generation.judge` takes, for each mode, the best batch measured and compares the
# ratio linear-recurrent / softmax with the paper's ("replicated": within a factor of 2; "direction
# only": linear faster but by a different factor). `decomposition` splits the total speed-up into
# what the cache buys (uncached -> cached) and what the constant-size state buys on top
# (cached -> linear).

# %%
s_view = {"throughput": throughput, "latency": latency}
for claim in generation.judge(claims, s_view):
    display(Markdown(f"**{claim['id']}: {claim['title']}** ({claim['source']})"))
    if claim["rows"]:
        display(table(claim["rows"], [("what", "what", ""), ("paper", "paper_text", ""), ("ours", "ours_text", ""),
                                      ("verdict", "verdict", "")]))
    else:
        print(claim.get("note"))
decomposition = generation.decomposition(throughput)
for key, d in decomposition.items():
    print(f"{key}: total {d['total']:.3g}x = cache {d['from_cache']:.3g}x * constant state {d['linear_over_cached']:.3g}x; "
          f"best batches {d['best_batch']}")

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
colors = {"softmax-uncached": "tab:red", "softmax-cached": "tab:orange", "linear-recurrent": "tab:blue"}
styles = {"torch": "o-", "jax": "s--", "julia": "^:"}
ax = axes[0]
for (backend, model, mode) in sorted({(r["backend"], r["model"], r["mode"]) for r in ok}):
    pts = sorted((r["batch"], r["images_per_second"]) for r in ok if (r["backend"], r["model"], r["mode"]) == (backend, model, mode))
    ax.plot([p[0] for p in pts], [p[1] for p in pts], styles.get(backend, "o-"), color=colors[mode],
            label=f"{mode} ({backend}, {model})")
for model in sorted({r["model"] for r in ok}):
    for mode, ips in claims["C1"]["images_per_second"][model].items():
        ax.axhline(ips, color=colors[mode], lw=0.8, ls=":")
ax.set_xscale("log", base=2)
ax.set_yscale("log")
ax.set_xlabel("batch (images generated together)")
ax.set_ylabel("images per second (higher is better)")
ax.set_title("C1: throughput vs batch (dotted: the paper's, on a GPU)", fontsize=9)
ax.legend(fontsize=7)
ax = axes[1]
for model in sorted({r["model"] for r in ok}):
    paper = claims["C2"]["seconds_per_image_cpu"][model]
    ours = {r["mode"]: r["seconds_per_image"] for r in ok if r["model"] == model and r["batch"] == 1 and r["backend"] == "torch"}
    ax.plot(list(colors), [paper[m] for m in colors], "s--", label=f"{model}: paper, CPU (Table 5)")
    ax.plot(list(colors), [ours.get(m, np.nan) for m in colors], "o-", label=f"{model}: ours, torch, {threads} thread(s)")
ax.set_yscale("log")
ax.set_ylabel("seconds per image at batch 1 (lower is better)")
ax.set_title("C2: latency at batch 1", fontsize=9)
ax.legend(fontsize=7)
fig.tight_layout()
fig.savefig(out_dir / "02_generation_speed.png", metadata={"Software": None})

# %% [markdown]
# How to read it: the paper's headline ratio (4,462x on CIFAR-10) multiplies two effects, the KV
# cache (about 80x in Table 4) and the constant-size state (about 56x), and is measured at a large
# batch on a GPU; its own Table 5 shows linear only 1.6x faster than the cached softmax at batch 1
# on a CPU. Our smoke numbers come from short windows on a shared machine: they show the method,
# not the final ratios, which come from `make study` (then run this notebook with `smoke = False`).

# %%
write_json(out_dir / "02_generation_speed.json", {
    "notebook": "02_generation_speed", "smoke": smoke, "source": None if smoke else str(results_dir), "machine": machine,
    "throughput": throughput, "latency": latency, "uncached_validation": validation,
    "claims": generation.judge(claims, s_view), "decomposition": decomposition})
print("wrote", out_dir / "02_generation_speed.json")
