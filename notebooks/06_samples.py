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
# # 6. Samples, and the same image from every backend
#
# The paper shows unconditional samples and completions of occluded test images (Figures 3 and 4
# of Katharopoulos et al., 2020: MNIST and CIFAR-10, the lower half of each image generated from
# the upper half), to show that the much faster linear model's samples are "of similar quality"
# to softmax's.
#
# Here, from the trained models that ship with the repository (`trained/`, the quality profile's;
# nothing is trained first): unconditional samples and completions of the lower half of test
# images, through `replication.samples.make_samples` (the study's sample task, the fast generation
# mode of each attention), by every backend present. Then the study's parity check: every backend
# given the same weights and the same uniform noise must draw the **same bytes** (DESIGN section
# 3, "Sampling from noise"). Each backend samples in a process of its own through the command line
# (`replication sample --backend B`); a backend that cannot run here says why.
#
# - `models = "shipped"`: the trained models in trained/ (where the repository has none, the smoke
#   profile's tiny models are trained here for a few steps: their samples look like noise).
# - `models = "results"`: a study's results folder: its sample grids, and the parity check on its
#   checkpoints.
# - `smoke = True` keeps the numbers of images small (CI).

# %% tags=["parameters"]
smoke = True  # True: a few images, one thread (CI); False: more images, all cores
models = "shipped"  # "shipped": trained/; "results": a study's checkpoints and samples
results_dir = None  # models="results": a results folder; None = the newest finished run in results/index.json
out_dir = None  # where results are written; None: a temporary folder (smoke) or RESULTS_DIR/notebooks
profile = "smoke"  # where no model ships: the profile whose [quality] settings are trained here
threads = None  # CPU threads; None: 1 in smoke mode (steady on a shared machine), all cores otherwise
images = 4  # unconditional samples per model
completions = 2  # test images whose lower half is generated
sample_backends = ["torch", "jax", "julia"]  # every backend that runs here draws the grids
parity_backends = ["torch", "jax", "julia"]
parity_images = 2  # images drawn by each backend from the same noise
parity_modes = ["linear-recurrent", "softmax-cached"]  # add "softmax-uncached" for the slow mode (a forward per byte)
seed = 0

# %%
import os
import subprocess
import sys
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm.auto in Jupyter without ipywidgets

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import Markdown, display

from linattn import reference as ref
from linattn.config import MODES
from linattn.weights import load_checkpoint
from replication import data, notebook, summary, trained
from replication.profiles import load_profile, settings
from replication.provenance import ROOT
from replication.run import write_json
from replication.samples import grid, make_samples, parity as backend_parity
from replication.train import pick_dataset, train

threads, out_dir, results_dir = notebook.setup("nb06", models != "results", threads, out_dir, results_dir)

# %% [markdown]
# ## 6.1 Samples and completions

# %%
files, drawn, made_by = {}, {}, {}
if models == "shipped":
    shipped = trained.shipped()
    checkpoints = {a: m["path"] for a, m in shipped.items()}
    if shipped:
        dataset = next(iter(shipped.values()))["dataset"]
        record = next(iter(shipped.values()))["provenance"]
        steps_trained = {a: m["provenance"]["steps"] for a, m in shipped.items()}
        label = f"shipped models ({record['profile']} profile)"
    else:  # a copy without trained models: train the smoke profile's tiny ones here
        q = settings(load_profile(profile), "quality")
        q.pop("seeds", None)
        dataset = pick_dataset(q["dataset"])
        for attention in ("linear", "softmax"):
            checkpoints[attention] = out_dir / "checkpoints" / attention
            train({**q, "kind": "train", "attention": attention, "dataset": dataset, "data_dir": None,
                   "checkpoint_dir": str(checkpoints[attention]), "threads": threads})
        steps_trained, label = {a: q["steps"] for a in checkpoints}, f"{profile} profile, trained here"
    n_completions = completions if dataset == "synthetic" or data.available(dataset) else 0
    if not n_completions:
        print(f"{dataset} is not here: unconditional samples only (`replication data fetch --dataset {dataset}`)")
    for attention, ckpt in checkpoints.items():
        for backend in sample_backends:
            try:
                made = make_samples({"backend": backend, "checkpoint": str(ckpt), "out_dir": str(out_dir / "samples"),
                                     "images": images, "completions": n_completions, "dataset": dataset,
                                     "data_dir": None, "seed": seed, "threads": threads})
            except Exception as e:  # noqa: BLE001 - a backend that cannot run here (Julia without Julia) says why
                print(f"{attention} by {backend}: not run: {str(e).splitlines()[0]}")
                continue
            drawn.setdefault(attention, {})[backend] = made["arrays"]
            files.setdefault(attention, made["files"])
            made_by.setdefault(attention, backend)
            print(f"{attention} by {backend}: {made['n_images']} samples and {made['n_completions']} completions "
                  f"with {made['mode']}")
else:
    s = summary.load_summary(results_dir)
    dataset = s["quality"]["dataset"]
    checkpoints = {a: results_dir / "checkpoints" / a for a in ("linear", "softmax")
                   if (results_dir / "checkpoints" / a / "weights.npz").is_file()}
    for a, r in s["samples"].items():
        for b, e in r.get("backends", {}).items():
            if e.get("status") == "ok":
                files.setdefault(a, {k: str(results_dir / v) for k, v in e["files"].items()})
                made_by.setdefault(a, b)
                drawn.setdefault(a, {})[b] = {k: str(results_dir / v) for k, v in e.get("arrays", {}).items()}
            else:
                print(f"{a} by {b}: samples {e.get('status')}: {e.get('reason')}")
    steps_trained = {a: next((r["steps"] for r in rs if r.get("steps")), None) for a, rs in s["quality"]["runs"].items()}
    label = f"study {results_dir.name}"

for attention, by in drawn.items():
    for r in backend_parity(by):
        print(f"{attention}: {r['backend']} vs {r['against']} ({r['kind']}): {r['equal_images']} of {r['images']} images "
              f"equal, {r['equal_bytes']:.1%} of bytes")

fig, axes = plt.subplots(2, max(1, len(files)), figsize=(5 * max(1, len(files)), 5.5), squeeze=False)
for col, (attention, f) in enumerate(sorted(files.items())):
    for row, kind in enumerate(("unconditional", "completions")):
        ax = axes[row, col]
        ax.axis("off")
        if kind not in f:
            continue
        ax.imshow(plt.imread(f[kind]), cmap="gray", interpolation="nearest")
        ax.set_title(f"{attention} ({made_by[attention]}, {steps_trained.get(attention) or '?'} steps): {kind}" + ("\n(rows: occluded, completed, original)" if kind == "completions" else ""),
                     fontsize=9)
fig.suptitle(f"{dataset}, {label}", fontsize=10)
fig.tight_layout()
fig.savefig(out_dir / "06_samples.png", metadata={"Software": None})

# %% [markdown]
# ## 6.2 The same image from every backend
#
# One array of uniform noise, shape (N, T, 2), is saved; each backend generates from it with each
# checkpoint in each mode that fits the attention, in its own process. The float64 numpy reference
# (`linattn.reference.generate`, in this process) is the arbiter. Expected: identical bytes. A
# float32 backend may differ from the float64 reference where a uniform falls within rounding
# distance of a bin edge, so agreement is reported as the fraction of equal bytes; the backends'
# own tests check exact parity in float64.

# %%
parity = []
noise_file = out_dir / "06_noise.npy"
unavailable = {}
for attention, ckpt in checkpoints.items():
    config, params = load_checkpoint(ckpt)
    noise = np.random.default_rng(seed).random((parity_images, config.seq_len, 2))
    np.save(noise_file, noise)
    for mode in [m for m in parity_modes if MODES[m] == attention]:
        # uncached and cached softmax draw the same bytes (notebook 01); the cached form is far cheaper in numpy
        reference = ref.generate(params, config, "softmax-cached" if mode == "softmax-uncached" else mode, noise)
        for backend in parity_backends:
            if backend in unavailable:
                parity.append({"attention": attention, "mode": mode, "backend": backend, "status": "unavailable",
                               "reason": unavailable[backend]})
                continue
            out = out_dir / "06_parity" / f"{attention}-{mode}-{backend}.npy"
            out.parent.mkdir(exist_ok=True)
            p = subprocess.run([sys.executable, "-m", "replication", "sample", "--checkpoint", str(ckpt), "--mode", mode,
                                "--noise", str(noise_file), "--out", str(out), "--backend", backend],
                               check=False, capture_output=True, text=True, cwd=ROOT, env={**os.environ, "TQDM_DISABLE": "1"})
            if p.returncode != 0:
                reason = (p.stderr.strip().splitlines() or [f"exit status {p.returncode}"])[-1]
                unavailable[backend] = reason
                parity.append({"attention": attention, "mode": mode, "backend": backend, "status": "unavailable", "reason": reason})
                continue
            drawn = np.load(out).reshape(parity_images, -1)
            parity.append({"attention": attention, "mode": mode, "backend": backend, "status": "ok",
                           "equal_to_reference": float(np.mean(drawn == reference)),
                           "first_difference": None if (drawn == reference).all() else int(np.argmax((drawn != reference).any(0)))})
for b, why in unavailable.items():
    print(f"{b}: not run: {why}")
display(Markdown("| checkpoint | mode | backend | bytes equal to the float64 reference | first differing position |\n|---|---|---|---|---|\n"
                 + "".join(f"| {r['attention']} | {r['mode']} | {r['backend']} | "
                           + (f"{r['equal_to_reference']:.2%} | {r['first_difference'] if r['first_difference'] is not None else '-'} |\n"
                              if r["status"] == "ok" else f"{r['status']} | - |\n")
                           for r in parity)))

# %%
shown = [r for r in parity if r["status"] == "ok"]
if shown:
    fig, axes = plt.subplots(1, len(shown), figsize=(1.8 * len(shown), 2.4), squeeze=False)
    for ax, r in zip(axes[0], shown):
        config, _ = load_checkpoint(checkpoints[r["attention"]])
        img = np.load(out_dir / "06_parity" / f"{r['attention']}-{r['mode']}-{r['backend']}.npy")
        ax.imshow(grid(img)[..., 0] if config.image_shape[2] == 1 else grid(img), cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"{r['attention']}\n{r['mode']}\n{r['backend']}", fontsize=7)
        ax.axis("off")
    fig.suptitle("the same noise, every backend", fontsize=9)
    fig.tight_layout()
    fig.savefig(out_dir / "06_parity.png", metadata={"Software": None})

# %%
write_json(out_dir / "06_samples.json", {"notebook": "06_samples", "smoke": smoke, "models": models,
                                         "source": str(results_dir) if models == "results" else label,
                                         "dataset": dataset, "sample_files": files, "parity": parity})
print("wrote", out_dir / "06_samples.json")
