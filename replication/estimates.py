"""The cost model every claim's estimates share (each claim module estimates its own experiments
with it; the report's section 3.6 compares the estimates with the measured values). Time from the
roofline model of the measured machine times an overhead factor; memory from the tensors the
experiment must hold.
"""

from __future__ import annotations

from . import roofline

OVERHEAD = 3.0  # our prior: framework overhead over the roofline at small sizes
STARTUP_SECONDS = 4.0  # a worker process importing its backend
# Seconds a backend spends compiling its generation step ahead of timing (`compile_generation`), by
# backend: measured, inductor compiles PyTorch's step in about a minute on 2 cores. JAX and Julia
# compile on the first call instead, inside the warm-up the speed harness already counts.
COMPILE_SECONDS = {"torch": 90.0}
RUNTIME_BYTES = 300e6  # a worker's resident memory before any tensor: Python, numpy, the framework
FLOAT = roofline.FLOAT


def seconds(flops, bytes_, machine):
    """The roofline time of work of `flops` FLOPs moving `bytes_` bytes."""
    return max(flops / (machine["gemm_GFLOPs"] * 1e9), bytes_ / (machine["bandwidth_GBps"] * 1e9))


def gemm_seconds(flops, machine):
    return flops / (machine["gemm_GFLOPs"] * 1e9)


def memory_per_image(config, mode) -> float:
    """Bytes each image of a generation batch holds: the recurrent state, the key/value cache,
    or (uncached) the activations and one head's scores of a full forward pass."""
    T, L, C, H, D = config.seq_len, config.n_attention_layers, config.d_model, config.n_heads, config.d_head
    Fd = config.d_feature  # the size of phi(x): D, or FAVOR+'s m
    if mode == "linear-recurrent":  # the state of each attention layer (PAR's feed-forward layers hold none)
        return L * H * (Fd * D + Fd) * FLOAT + 16 * C * FLOAT
    if mode == "softmax-cached":
        return 2 * L * T * C * FLOAT + 16 * C * FLOAT
    return (12 * T * C + 2 * H * T * T) * FLOAT


def weights_bytes(config) -> float:
    return roofline.matmul_params(config) * FLOAT


def largest_batch(config, mode, budget_bytes, cap) -> int:
    """The largest batch whose estimated memory fits the budget (at most `cap`)."""
    fits = int((budget_bytes - 4 * weights_bytes(config)) // memory_per_image(config, mode))
    return max(1, min(cap, fits))


def estimate(seconds_, memory_bytes, method) -> dict:
    """An estimate as recorded: start-up and the runtime's memory added."""
    return {"seconds": STARTUP_SECONDS + seconds_, "memory_bytes": RUNTIME_BYTES + float(memory_bytes), "method": method}
