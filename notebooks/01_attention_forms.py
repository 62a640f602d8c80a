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
# # 1. Attention forms: one computation, two shapes
#
# Katharopoulos et al. (ICML 2020, arXiv 2006.16236, Sec. 3) write causal linear attention two ways:
#
# - **parallel** (training): $o_i = \phi(q_i)^\top S_i \,/\, \phi(q_i)^\top z_i$ for all $i$ at once, with
#   $S_i = \sum_{j \le i} \phi(k_j) v_j^\top$, $z_i = \sum_{j \le i} \phi(k_j)$ and $\phi(x) = \mathrm{elu}(x) + 1$;
# - **recurrent** (generation, eqs. 16-20): $S_i = S_{i-1} + \phi(k_i) v_i^\top$, $z_i = z_{i-1} + \phi(k_i)$,
#   a constant-size state per layer and head.
#
# Softmax attention has a recurrent twin too: a cache of all past keys and values (the paper's
# "stateful-softmax", Supplementary C.1), whose state grows with the position.
#
# This notebook checks that every pair of forms computes the same numbers (the float64 numpy
# reference `linattn.reference` and the PyTorch backend), that the three generation modes
# draw the same image from the same noise, and then measures what each form costs **per generated
# byte as the position grows**: the root of claims C1 and C2. Nothing here defines a model: it calls
# `linattn` and `replication`.

# %% tags=["parameters"]
smoke = True  # True: toy sizes, seconds (CI); False: the paper's CIFAR-10 model
seed = 0
threads = None  # CPU threads; None: 1 in smoke mode (steady on a shared machine), all cores otherwise
out_dir = None  # where results are written; None: a temporary folder (smoke) or results/notebooks/
# equivalence checks (always small: they run the float64 reference)
B, T, H, D = 2, 37, 2, 8  # batch, time, heads, head size (T not a multiple of the chunk size on purpose)
chunk_size = 8  # the chunkwise-parallel form's chunk (GLA, arXiv 2312.06635)
tiny_model = {"n_layers": 2, "n_heads": 2, "d_model": 16, "n_mixtures": 3, "image_shape": [6, 6, 1]}
# cost per step vs position; None: the smoke value (first) or the full one (second)
cost_model = None  # "mnist" / "cifar": a preset of the paper's sizes (replication/configs/models.toml)
cost_batch = None  # 4 / 8
cost_positions = None  # 4 / 9 positions sampled between 0 and T
cost_steps = None  # 4 / 16 steps timed at each position
cost_repeats = None  # 1 / 3

# %%
import os
import tempfile
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm.auto in Jupyter without ipywidgets

import matplotlib.pyplot as plt
import numpy as np

from linattn import reference as ref
from linattn.backends import get_backend
from linattn.config import MODES, ModelConfig
from linattn.weights import init_params
from replication import forms, roofline, speed
from replication.presets import config_for_mode
from replication.provenance import provenance
from replication.run import RESULTS, write_json

threads = threads or (1 if smoke else os.cpu_count())
speed.pin_threads(threads)  # this process and the backends it starts
cost_model = cost_model or ("mnist" if smoke else "cifar")
cost_batch = cost_batch or (4 if smoke else 8)
cost_positions = cost_positions or (4 if smoke else 9)
cost_steps = cost_steps or (4 if smoke else 16)
cost_repeats = cost_repeats or (1 if smoke else 3)
torch_backend = get_backend("torch")
torch_backend.set_threads(threads)
out_dir = Path(out_dir or (tempfile.mkdtemp(prefix="nb01-") if smoke else RESULTS / "notebooks"))
out_dir.mkdir(parents=True, exist_ok=True)
print(f"writing to {out_dir}; torch {torch_backend.info()['version']}, {threads} thread(s)")
record = {"notebook": "01_attention_forms", "smoke": smoke, "seed": seed, "provenance": provenance()}

# %% [markdown]
# ## 1.1 Parallel and recurrent forms agree
#
# Random $q, k, v$ of shape (B, T, H, D). The recurrent forms are run step by step from an empty
# state; the parallel forms all at once (`replication.forms.attention_forms`: the reference's, and
# every kind of the PyTorch backend's table). The reference is float64 numpy, written for clarity;
# the PyTorch backend runs here in float64 too, so the differences should be at rounding level
# (~1e-15), not float32's ~1e-7. The PyTorch linear attention is the **chunkwise** form: masked
# quadratic inside a chunk, the states $S, z$ carried between chunks, so it never holds a
# $T \times D \times D$ tensor. Its "softmax" holds the $T \times T$ scores, "softmax-fused" is
# PyTorch's `scaled_dot_product_attention`, "softmax-chunked" the memory-efficient form of Rabe &
# Staats; all three share one recurrent twin, the key/value cache.

# %%
rng = np.random.default_rng(seed)
q, k, v = (rng.standard_normal((B, T, H, D)) for _ in range(3))
equivalence = forms.differences(forms.attention_forms(q, k, v, chunk_size))
for e in equivalence:
    print(f"{e['form']:46s} max |o - reference parallel| = {e['max_abs_difference']:.1e}")
worst = max(e["max_abs_difference"] for e in equivalence)
assert worst < 1e-10, f"forms disagree: {worst:.1e}"
record["attention_equivalence"] = {"B": B, "T": T, "H": H, "D": D, "dtype": "float64", "rows": equivalence}

# %% [markdown]
# ## 1.2 The whole model: parallel forward = step-by-step forward, and the three generation modes agree
#
# `reference.forward` runs the model of DESIGN section 3 over a whole sequence (training form);
# `reference.forward_step` runs it one byte at a time carrying the per-layer state. Their head
# outputs must agree position by position, for both attention kinds. Then the three generation
# modes (`softmax-uncached`, `softmax-cached`, `linear-recurrent`) draw images from the same
# uniform noise: uncached and cached softmax must give **identical bytes**, and the PyTorch
# backend (float32) must reproduce the reference's bytes.

# %%
model_rows = []
for attention in ("linear", "softmax"):
    config = ModelConfig(attention=attention, **tiny_model)
    tokens = ref.input_tokens(rng.integers(0, 256, (B, config.seq_len)))
    diff = forms.step_by_step_difference(init_params(config, seed), config, tokens)
    model_rows.append({"attention": attention, "max_abs_difference": diff})
    print(f"{attention:8s} model: max |step-by-step - parallel| over {config.seq_len} positions = {diff:.1e}")
    assert diff < 1e-9

noise = rng.random((B, ModelConfig(**tiny_model).seq_len, 2))
images = {}
for mode, attention in MODES.items():
    config = ModelConfig(attention=attention, **tiny_model)
    params = init_params(config, seed)
    images[f"{mode} (reference)"] = ref.generate(params, config, mode, noise)
    images[f"{mode} (torch)"] = torch_backend.generate(torch_backend.prepare(config, params), mode, noise)
same = images["softmax-uncached (reference)"] == images["softmax-cached (reference)"]
torch_same = {m: float(np.mean(images[f"{m} (reference)"] == images[f"{m} (torch)"])) for m in MODES}
print("softmax uncached == cached (reference):", bool(same.all()))
print("fraction of bytes where torch float32 equals the float64 reference:", torch_same)
assert same.all()
record["model_equivalence"] = {"config": tiny_model, "rows": model_rows, "uncached_equals_cached": bool(same.all()),
                               "torch_bytes_equal_reference": torch_same}

fig, axes = plt.subplots(1, len(images), figsize=(1.6 * len(images), 2.2))
for ax, (name, img) in zip(axes, images.items()):
    ax.imshow(img[0].reshape(tiny_model["image_shape"][:2]), cmap="gray", vmin=0, vmax=255)
    ax.set_title(name.replace(" (", "\n("), fontsize=7)
    ax.axis("off")
fig.suptitle("same weights, same noise: the first image of each mode (random untrained weights)", fontsize=8)
fig.tight_layout()
fig.savefig(out_dir / "01_generation_modes.png", metadata={"Software": None})

# %% [markdown]
# A float32 backend can differ from the float64 reference in a byte where a uniform falls within
# rounding distance of a mixture-bin boundary; after that byte the two sequences may diverge,
# since every later byte is conditioned on it. The tests check the exact parity in float64
# (`tests/test_backend_parity.py`, for PyTorch and JAX alike).
#
# ## 1.3 Cost per generated byte vs position
#
# With the paper's model sizes and random weights (`replication.speed.cost_per_step`), the PyTorch
# backend's `time_window` times `cost_steps` generation steps starting at position $t$, from the state
# those positions see (a key/value cache holding $t$ entries, or the $(S, z)$ state). `uncached_step`
# times one step of the uncached mode: a full forward pass over the $t$-byte prefix, as the
# authors' `prediction.py` does without `--recurrent`.
#
# Beside the measurements: the roofline floor of each step on this machine
# (`replication.roofline`: bytes moved / measured bandwidth vs FLOPs / measured GEMM rate, the
# larger), and the size of the state each image carries.
#
# Expected shapes (Sec. 3.4): linear-recurrent is **flat** (constant state, $O(1)$ per step);
# softmax-cached grows **linearly** in $t$ (it reads $t$ cached keys and values); softmax-uncached
# grows **linearly to quadratically** (a forward over $t$ positions, whose attention is
# $O(t^2)$): summed over $T$ steps, $O(T)$, $O(T^2)$ and $O(T^2)$ to $O(T^3)$ per image.

# %%
machine = roofline.measure_machine(threads)
print(f"machine: {machine['bandwidth_GBps']:.1f} GB/s streaming read, {machine['gemm_GFLOPs']:.1f} GFLOP/s float32 GEMM")
cost = {}
for mode in MODES:
    cost[mode] = speed.cost_per_step("torch", cost_model, mode, cost_batch, cost_positions, cost_steps, cost_repeats,
                                     machine, threads=threads, seed=seed)
    print(f"{mode:17s} seconds per step (batch {cost_batch}) at t = {cost[mode]['positions']}: "
          + ", ".join(f"{x:.2e}" for x in cost[mode]["seconds_per_step"]))
record["cost_per_step"] = {"model": cost_model, "batch": cost_batch, "steps": cost_steps, "repeats": cost_repeats,
                           "threads": threads, "machine": machine, "modes": cost}

# %%
colors = {"softmax-uncached": "tab:red", "softmax-cached": "tab:orange", "linear-recurrent": "tab:blue"}
fig, (ax, ax2) = plt.subplots(1, 2, figsize=(10, 3.6))
for mode, c in cost.items():
    ax.plot(c["positions"], c["seconds_per_step"], "o-", color=colors[mode], label=f"{mode} (measured)")
    ax.plot(np.arange(c["T"]), c["roofline_seconds_per_step"], ":", color=colors[mode], label=f"{mode} (roofline floor)")
ax.set_yscale("log")
ax.set_xlabel("position t of the generated byte")
ax.set_ylabel(f"seconds per step, batch {cost_batch}")
ax.set_title(f"{cost_model} model (paper size), torch, {threads} thread(s)", fontsize=9)
ax.legend(fontsize=7)
cfg = config_for_mode(cost_model, "softmax-cached")
t = np.arange(cfg.seq_len)
ax2.plot(t, roofline.state_bytes(cfg, "softmax-cached", t) / 2**20, color=colors["softmax-cached"],
         label="softmax-cached: K and V of t+1 bytes")
ax2.plot(t, roofline.state_bytes(cfg, "linear-recurrent", t) / 2**20, color=colors["linear-recurrent"],
         label="linear-recurrent: S and z")
ax2.set_xlabel("position t")
ax2.set_ylabel("state per image (MiB, float32)")
ax2.set_title("what each image carries between steps", fontsize=9)
ax2.legend(fontsize=7)
fig.tight_layout()
fig.savefig(out_dir / "01_cost_per_step.png", metadata={"Software": None})

# %% [markdown]
# Reading the plot: at batch sizes this small every step reads all weights once (25 MB for the
# MNIST model, 51 MB for CIFAR-10), so the three curves start close together, a few times above
# the bandwidth floor (a step is dozens of small products, each paying the framework's overhead);
# the cached softmax's extra reads of its growing cache and the uncached forward's growing work
# separate them as $t$ grows. That is why the paper's throughput ratios (Tables 1, 2, 4) depend
# on the batch size and sequence length: the 4,462x of Table 2 is linear-recurrent vs the uncached
# mode at T = 3072; against the cache it is 56x, and at batch 1 on a CPU 1.6x (Table 5). The
# measured ratios are in notebook 02.

# %%
write_json(out_dir / "01_attention_forms.json", record)
print("wrote", out_dir / "01_attention_forms.json")
