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
# # 5. Julia vs Python: the same model in Flux, PyTorch and JAX (C5)
#
# **C5** is the study's own question, not the paper's: the model of DESIGN section 3 is written
# three times, natively in Julia (Flux, `julia/`), in PyTorch and in JAX, all tested against one
# float64 numpy reference and one weights format. Does the language change the answer to C1 and C2?
# The only earlier Julia replication (Do and Bergner, 2022, Flux on the copy task) found linear
# attention much *slower* than softmax and blamed their implementation.
#
# What is measured: seconds per generated image at batch 1 (the paper's Table 5 setting) with
# random weights of the paper's sizes, by `replication speed`, **each backend in a process of its
# own**: juliacall, torch and jax must not share a process (their LLVM symbols clash), and a fresh
# process gives clean timings. Each run also measures the machine's bandwidth and GEMM rate and
# reports the roofline floor, so that backends are compared against the same floor. Compile time
# (JAX's XLA, Julia's JIT) is timed apart from the run and left out of the per-image time. A
# backend that cannot run here is listed with the reason it gives.
#
# That the three backends compute the same model, byte for byte from the same noise, is shown in
# notebook 06 (and tested in `tests/`).
#
# - `smoke = True`: one mode, windows of 4 steps (per-step cost fitted and summed over the image).
# - `smoke = False`: both step modes, longer windows, more repeats; and, where a study's results
#   folder exists, its C5 table (all modes, batches and the scaling runs).

# %% tags=["parameters"]
smoke = True  # True: a short measurement per backend (CI); False: longer, and the study's C5 table
results_dir = None  # smoke=False: a study's results folder for its C5 table; None = the newest finished run
out_dir = None  # where results are written; None: a temporary folder (smoke) or results/notebooks/
backends = ["torch", "jax", "julia"]
model = "mnist"  # "mnist" (T = 784) or "cifar" (T = 3072), the paper's sizes
modes = None  # None: ["linear-recurrent"] (smoke), ["softmax-cached", "linear-recurrent"] (full)
batch = 1
steps = None  # steps per timed window; None: 4 (smoke), 32 (full)
repeats = None  # None: 1 (smoke), 3 (full)
threads = None  # CPU threads; None: 1 in smoke mode (steady on a shared machine), all cores otherwise

# %%
import json
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm.auto in Jupyter without ipywidgets

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display

from replication import summary
from replication.claims import languages
from replication.paper import load_paper
from replication.provenance import ROOT, provenance
from replication.run import RESULTS, newest_results, write_json
from replication.speed import pin_threads

threads = threads or (1 if smoke else os.cpu_count())
pin_threads(threads)  # this process and the backends it starts
modes = modes or (["linear-recurrent"] if smoke else ["softmax-cached", "linear-recurrent"])
steps = steps or (4 if smoke else 32)
repeats = repeats or (1 if smoke else 3)
claims = load_paper()
out_dir = Path(out_dir or (tempfile.mkdtemp(prefix="nb05-") if smoke else RESULTS / "notebooks"))
out_dir.mkdir(parents=True, exist_ok=True)
print("writing to", out_dir)

# %% [markdown]
# ## 5.1 One process per backend

# %%
rows, status = [], {}
for backend in backends:
    for mode in modes:
        if status.get(backend, {}).get("status") == "unavailable":
            rows.append({"backend": backend, "model": model, "mode": mode, "batch": batch, **status[backend]})
            continue
        cmd = [sys.executable, "-m", "replication", "speed", "--backend", backend, "--model", model, "--mode", mode,
               "--batch", str(batch), "--steps", str(steps), "--repeats", str(repeats), "--threads", str(threads), "--json"]
        p = subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=ROOT, env={**os.environ, "TQDM_DISABLE": "1"})
        if p.returncode == 0:
            r = json.loads(p.stdout)
            write_json(out_dir / "05_julia_vs_python" / f"{backend}-{model}-{mode}-b{batch}.json", r)
            status[backend] = {"status": "ok", "reason": None, "info": r["backend_info"]}
            rows.append({"backend": backend, "status": "ok", "reason": None, "model": model, "mode": mode, "batch": batch,
                         **{k: r.get(k) for k in ("seconds_per_image", "images_per_second", "extrapolated", "method",
                                                  "roofline_seconds_per_image", "bound", "iqr", "warmup_seconds",
                                                  "compile_seconds", "backend_info")}})
            print(f"{backend:6s} {mode:17s} {r['seconds_per_image']:.4g} s/image ({r['seconds_per_image'] / r['roofline_seconds_per_image']:.1f}x "
                  f"the roofline floor), warm-up {r['warmup_seconds']:.2f} s; {r['backend_info']}")
        else:
            reason = (p.stderr.strip().splitlines() or [f"exit status {p.returncode}"])[-1]
            outcome = {"status": "unavailable" if p.returncode == 2 else "failed", "reason": reason}
            if status.get(backend, {}).get("status") != "ok":  # a backend that ran one mode stays "ok"
                status[backend] = outcome
            rows.append({"backend": backend, "model": model, "mode": mode, "batch": batch, **outcome})
            print(f"{backend:6s} {mode:17s} not measured: {reason}")

# %% [markdown]
# ## 5.2 Side by side
#
# `replication.claims.languages.languages` puts one row per measurement and one column per backend, each
# with its speed relative to PyTorch (above 1: faster than PyTorch); `replication.claims.languages.judge` lists which
# backends ran and why the others did not.

# %%
langs = languages.languages(rows, [r for r in rows if r["batch"] == 1], [])
c5 = languages.judge(claims, {"backends": status, "languages": langs})[0]
present = [b for b in backends if status.get(b, {}).get("status") == "ok"]
display(Markdown("| measurement | " + " | ".join(present) + " |\n|---|" + "---|" * len(present) + "\n" + "".join(
    f"| {r['what']} ({r['unit']}) | " + " | ".join(
        f"{r['values'][b]:.4g} (speed {(r['relative_to_torch'][b] if r['higher_is_better'] else 1 / r['relative_to_torch'][b]):.2f}x torch's)"
        if b in r["values"] and r["relative_to_torch"].get(b) else "n/a" for b in present) + " |\n"
    for r in langs if r["what"].startswith("latency"))))
display(Markdown(f"**{c5['id']}: {c5['title']}** ({c5['source']}). Measured: {', '.join(c5['backends_measured']) or 'none'}; "
                 f"not measured: {', '.join(c5['backends_missing']) or 'none'} (the reasons are printed above)."))

# %%
ok = [r for r in rows if r["status"] == "ok"]
paper = claims["C2"]["seconds_per_image_cpu"].get(model, {})
fig, axes = plt.subplots(1, len(modes), figsize=(5 * len(modes), 3.6), squeeze=False)
for ax, mode in zip(axes[0], modes):
    x = np.arange(len(backends))
    vals = [next((r["seconds_per_image"] for r in ok if r["backend"] == b and r["mode"] == mode), np.nan) for b in backends]
    ax.bar(x, vals, 0.6, color=[f"C{i}" for i in range(len(backends))])
    for i, v in enumerate(vals):
        if np.isnan(v):
            ax.text(i, 0.5, "not run:\n" + status.get(backends[i], {}).get("status", "?"), transform=ax.get_xaxis_transform(),
                    ha="center", va="center", fontsize=8, color="gray")
    floor = next((r["roofline_seconds_per_image"] for r in ok if r["mode"] == mode), None)
    if floor:
        ax.axhline(floor, color="black", lw=1, ls="--", label="roofline floor (this machine)")
    if mode in paper:
        ax.axhline(paper[mode], color="gray", lw=1, ls=":", label="paper, CPU (Table 5)")
    ax.set_xticks(x, backends)
    ax.set_xlim(-0.6, len(backends) - 0.4)
    ax.set_yscale("log")
    ax.set_title(mode, fontsize=9)
    ax.legend(fontsize=7)
axes[0, 0].set_ylabel(f"seconds per {model} image, batch {batch}")
fig.suptitle(f"each backend in its own process, {threads} thread(s)", fontsize=9)
fig.tight_layout()
fig.savefig(out_dir / "05_julia_vs_python.png", metadata={"Software": None})

# %% [markdown]
# ## 5.3 The study's comparison (`smoke = False`)
#
# A full study (`make study`) measures every backend on every experiment: throughput at the
# largest batch that fits, latency, and the scaling runs. Its C5 table, if a results folder exists:

# %%
study = None
if not smoke:
    try:
        results_dir = Path(results_dir) if results_dir else newest_results()
        study = summary.load_summary(results_dir)
    except FileNotFoundError:
        pass
if study:
    c5_study = next(c for c in study["claims"] if c["id"] == "C5")
    print(f"{results_dir}: measured {c5_study['backends_measured']}, missing {list(c5_study['backends_missing'])}")
    display(Markdown("| what | ours | verdict |\n|---|---|---|\n" + "".join(
        f"| {r['what']} | {r['ours_text']} | {r['verdict']} |\n" for r in c5_study["rows"])))
else:
    print("smoke run: no study read" if smoke else "no finished study in results/: run `make study`")

# %%
write_json(out_dir / "05_julia_vs_python.json", {
    "notebook": "05_julia_vs_python", "smoke": smoke, "model": model, "modes": modes, "batch": batch, "steps": steps,
    "repeats": repeats, "threads": threads, "backends": status, "rows": rows, "languages": langs, "claim": c5,
    "provenance": provenance()})
print("wrote", out_dir / "05_julia_vs_python.json")
