"""What each experiment should cost, written down before it runs (the report's section 3.6
compares these with the measured values). Time from the roofline model of the measured machine
times an overhead factor; memory from the tensors the experiment must hold.
"""

from __future__ import annotations

from . import roofline
from .presets import config_for_mode

OVERHEAD = 3.0  # our prior: framework overhead over the roofline at small sizes
STARTUP_SECONDS = 4.0  # a worker process importing its backend
RUNTIME_BYTES = 300e6  # a worker's resident memory before any tensor: Python, numpy, the framework
FLOAT = 4


def _seconds(flops, bytes_, machine):
    return max(flops / (machine["gemm_GFLOPs"] * 1e9), bytes_ / (machine["bandwidth_GBps"] * 1e9))


def memory_per_image(config, mode) -> float:
    """Bytes each image of a generation batch holds: the recurrent state, the key/value cache,
    or (uncached) the activations and one head's scores of a full forward pass."""
    T, L, C, H, D = config.seq_len, config.n_layers, config.d_model, config.n_heads, config.d_head
    if mode == "linear-recurrent":
        return L * H * (D * D + D) * FLOAT + 16 * C * FLOAT
    if mode == "softmax-cached":
        return 2 * L * T * C * FLOAT + 16 * C * FLOAT
    return (12 * T * C + 2 * H * T * T) * FLOAT


def weights_bytes(config) -> float:
    return roofline.matmul_params(config) * FLOAT


def largest_batch(config, mode, budget_bytes, cap) -> int:
    """The largest batch whose estimated memory fits the budget (at most `cap`)."""
    fits = int((budget_bytes - 4 * weights_bytes(config)) // memory_per_image(config, mode))
    return max(1, min(cap, fits))


def speed(task, config, machine) -> dict:
    r = roofline.roofline_seconds_per_image(config, task["mode"], task["batch"], machine)
    T, B = config.seq_len, task["batch"]
    if task["mode"] == "softmax-uncached":
        sampled = len(roofline_lengths(T)) * (task["repeats"]) + 1  # steps timed, each near the mean cost
        seconds = OVERHEAD * sampled * r["roofline_seconds_per_image"] * B / T * 1.5
    elif task.get("steps"):
        windows = 4 * task["repeats"] + 1
        seconds = OVERHEAD * r["roofline_seconds_per_image"] * B * windows * task["steps"] / T
    else:
        seconds = OVERHEAD * r["roofline_seconds_per_image"] * B * (task["repeats"] + 1)
    memory = 2 * weights_bytes(config) + B * memory_per_image(config, task["mode"])
    return {"seconds": STARTUP_SECONDS + seconds, "memory_bytes": RUNTIME_BYTES + memory,
            "method": f"{OVERHEAD:g}x the roofline time of the steps timed, plus start-up"}


def roofline_lengths(T):
    from .speed import uncached_lengths

    return uncached_lengths(T)


def uncached_validation(task, machine) -> dict:
    config = config_for_mode(task["model"], "softmax-uncached")
    bytes_, flops = roofline.step_costs(config, "softmax-uncached", 1)
    n = task["steps"]
    full = sum(_seconds(f, b, machine) for f, b in zip(flops[:n], bytes_[:n]))
    sampled = sum(_seconds(flops[k - 1], bytes_[k - 1], machine) for k in roofline_lengths(n))
    return {"seconds": STARTUP_SECONDS + OVERHEAD * (full + 2 * sampled), "memory_bytes": RUNTIME_BYTES + 2 * weights_bytes(config)
            + memory_per_image(config, "softmax-uncached"), "method": "roofline of a full run plus the sampled steps"}


def attention(task, machine) -> dict:
    """Forward + backward of one causal attention on (B, T, H, D): about 3x the forward's FLOPs."""
    B, T, H, D = task["batch"], task["T"], task["n_heads"], task["d_head"]
    kind = task["attention"]
    if kind == "linear":
        C = min(64, T)
        flops = B * H * (4 * T * C * D + 6 * T * D * D)
        memory = B * H * (T * C + (T // C + 1) * D * D + 12 * T * D) * FLOAT * 3
    elif kind == "softmax-fused":
        flops = B * H * 4 * T * T * D
        # torch's scaled_dot_product_attention: blocks of scores made and dropped inside the kernel,
        # no T x T kept; a log-sum-exp per query for the backward, and the inputs, outputs, grads.
        memory = B * H * T * FLOAT + 12 * B * T * H * D * FLOAT
    else:
        flops = B * H * 4 * T * T * D
        chunk = min(256, T) if kind == "softmax-chunked" else T
        # two T x T matrices per head: scores and probabilities kept for the backward (the
        # materialised "softmax" of every backend); the chunked form's autograd keeps every chunk's
        # probabilities, so it holds T x T too.
        memory = (B * H * T * T * FLOAT * 2
                  + B * H * T * chunk * FLOAT + 12 * B * T * H * D * FLOAT)
    seconds = OVERHEAD * 3 * flops / (machine["gemm_GFLOPs"] * 1e9) * (task["repeats"] + 1)
    return {"seconds": STARTUP_SECONDS + seconds, "memory_bytes": RUNTIME_BYTES + float(memory),
            "method": "3x forward FLOPs at the measured GEMM rate, times the overhead; tensors autograd keeps"}


def training(task, machine) -> dict:
    from .train import model_config

    config = model_config(task)
    P = roofline.matmul_params(config)
    T, L, C = config.seq_len, config.n_layers, config.d_model
    tokens = task["batch_size"] * T
    attn = L * 4 * T * T * C * task["batch_size"] if config.attention == "softmax" else L * 6 * T * C * config.d_head * task["batch_size"]
    flops_step = 3 * (2 * P * tokens + attn)
    evals = task["steps"] // task["eval_every"] + 1
    eval_flops = evals * (task["eval_images"] * T * 2 * P) + task["test_images"] * T * 2 * P
    seconds = OVERHEAD * 2 * (task["steps"] * flops_step + eval_flops) / (machine["gemm_GFLOPs"] * 1e9)
    memory = 4 * P * FLOAT + 40 * tokens * C * FLOAT * L + (task["batch_size"] * config.n_heads * T * T * FLOAT * 3 * L
                                                              if config.attention == "softmax" else 0)
    return {"seconds": STARTUP_SECONDS + seconds, "memory_bytes": RUNTIME_BYTES + float(memory),
            "method": "3x forward FLOPs per step (x2 for small-matrix inefficiency) times the overhead"}


def samples(task, quality, machine) -> dict:
    from .train import model_config

    config = model_config({**quality, "attention": "linear"})
    r = roofline.roofline_seconds_per_image(config, "linear-recurrent", task["images"], machine)
    n = task["images"] + task["completions"]
    return {"seconds": STARTUP_SECONDS + OVERHEAD * 20 * r["roofline_seconds_per_image"] * n,
            "memory_bytes": RUNTIME_BYTES + float(2 * weights_bytes(config) + n * memory_per_image(config, "softmax-cached")),
            "method": "20x the roofline (batch-of-few generation is overhead-bound), times the overhead"}



