"""The machine's floor for generation: memory bandwidth and matrix throughput, and the bytes and
FLOPs each generation step needs.

At batch 1 a step reads every weight once, so bandwidth sets the floor; at large batches the
matrix products do. The roofline time of a step is max(bytes / bandwidth, FLOPs / throughput),
summed over the steps of an image and divided by the batch.

Run as `python -m replication.roofline --threads N` it prints the measured machine numbers as
JSON; `speed` runs it in a subprocess so that the measurement never shares a process with a
backend (juliacall and torch must not meet).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np

from linattn.config import ModelConfig
from linattn.weights import param_shapes

FLOAT = 4  # bytes per float32


def measure_machine(threads: int) -> dict:
    """Streaming read bandwidth (sum of a 512 MB array) and float32 GEMM throughput (2048^3),
    each the median of 5 runs after a warm-up, with torch on `threads` threads."""
    import torch

    torch.set_num_threads(threads)
    x = torch.ones(128 * 1024 * 1024)
    a = torch.randn(2048, 2048)

    def median_seconds(f):
        f()
        times = []
        for _ in range(5):
            t = time.perf_counter()
            f()
            times.append(time.perf_counter() - t)
        return float(np.median(times))

    bw = x.numel() * FLOAT / median_seconds(lambda: x.sum().item()) / 1e9
    gemm = 2 * 2048**3 / median_seconds(lambda: (a @ a)[0, 0].item()) / 1e9
    return {"bandwidth_GBps": bw, "gemm_GFLOPs": gemm, "threads": threads, "measured_with": f"torch {torch.__version__}"}


def machine_in_subprocess(threads: int) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "replication.roofline", "--threads", str(threads)],
        capture_output=True, text=True, check=True, timeout=300,
    )
    return json.loads(out.stdout)


def matmul_params(config: ModelConfig) -> int:
    """Weights read by every step: all Linear weights and biases (the embedding row is negligible)."""
    return sum(int(np.prod(s)) for n, s in param_shapes(config).items() if not n.startswith("embed"))


def step_costs(config: ModelConfig, mode: str, batch: int):
    """Bytes moved and FLOPs of each of the T steps of generating `batch` images: arrays (T,)."""
    T, L, C, H, D = config.seq_len, config.n_layers, config.d_model, config.n_heads, config.d_head
    La = config.n_attention_layers  # layers that attend (PAR: fewer than L)
    Fd = config.d_feature  # the size of phi(x): D, or FAVOR+'s m
    P = matmul_params(config)
    t = np.arange(T, dtype=np.float64)  # the position being generated
    if mode == "linear-recurrent":  # read and write S (F x D) and z per head and attention layer
        state = batch * La * H * (Fd * D + Fd) * FLOAT * 2
        bytes_ = P * FLOAT + state + 0 * t
        favor = 4 * Fd * D if config.feature_map == "favor" else 0  # W q and W k per head
        flops = batch * (2 * P + La * H * (6 * Fd * D + favor)) + 0 * t
    elif mode == "softmax-cached":  # read the t+1 cached keys and values of every attention layer
        bytes_ = P * FLOAT + batch * La * 2 * (t + 1) * C * FLOAT
        flops = batch * (2 * P + La * 4 * (t + 1) * C)
    elif mode == "softmax-uncached":  # a full forward over t+1 positions (causal: half the scores)
        n = t + 1
        bytes_ = P * FLOAT + batch * n * L * 12 * C * FLOAT
        flops = batch * (2 * P * n + La * 2 * n * n * C)
    else:
        raise ValueError(f"unknown mode {mode!r}")
    return bytes_, flops


def step_seconds(config: ModelConfig, mode: str, batch: int, machine) -> np.ndarray:
    """The floor of each of the T steps on `machine`: max(bytes / bandwidth, FLOPs / throughput), (T,)."""
    bytes_, flops = step_costs(config, mode, batch)
    return np.maximum(bytes_ / (machine["bandwidth_GBps"] * 1e9), flops / (machine["gemm_GFLOPs"] * 1e9))


def state_bytes(config: ModelConfig, mode: str, t) -> np.ndarray:
    """What one image carries from step to step after generating position(s) t (float32): the keys
    and values of t+1 positions in every attention layer (softmax-cached), S and z of every head and
    attention layer (linear-recurrent, the same at every t), nothing (softmax-uncached keeps only the
    bytes). A feed-forward-only layer (PAR) carries nothing."""
    t = np.asarray(t, dtype=np.float64)
    L, C, H, D, Fd = config.n_attention_layers, config.d_model, config.n_heads, config.d_head, config.d_feature
    if mode == "linear-recurrent":
        return L * H * (Fd * D + Fd) * FLOAT + 0 * t
    if mode == "softmax-cached":
        return 2 * L * (t + 1) * C * FLOAT
    if mode == "softmax-uncached":
        return 0 * t
    raise ValueError(f"unknown mode {mode!r}")


def roofline_seconds_per_image(config, mode, batch, machine) -> dict:
    bytes_, flops = step_costs(config, mode, batch)
    per_step = step_seconds(config, mode, batch, machine)
    return {
        "roofline_seconds_per_image": float(per_step.sum() / batch),
        "bytes_per_image": float(bytes_.sum() / batch),
        "flops_per_image": float(flops.sum() / batch),
        "bound": "memory" if (bytes_ / machine["bandwidth_GBps"]).sum() > (flops / machine["gemm_GFLOPs"]).sum() else "compute",
    }


def main(argv=None):
    p = argparse.ArgumentParser(description="measure memory bandwidth and GEMM throughput")
    p.add_argument("--threads", type=int, default=1)
    print(json.dumps(measure_machine(p.parse_args(argv).threads)))


if __name__ == "__main__":
    main()
