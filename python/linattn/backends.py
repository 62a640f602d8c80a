"""The backends and their common interface; find one by name.

Each backend module (`linattn.torch_backend`, `linattn.jax_backend`, `linattn.julia_backend`)
offers the same functions, numpy in and out:

    NAME                                                   "torch", "jax" or "julia"
    prepare(config, params, device="cpu", dtype="float32") -> model
    params_of(model) -> dict                               the weights format's arrays
    forward(model, tokens) -> (B, T, n_outputs)            parallel form
    bits_per_dim(model, data, batch_size) -> float         data: (N, T) bytes
    generate(model, mode, noise, steps=None) -> (B, T) uint8
    uncached_step(model, prefix)                           one softmax-uncached step (timing)
    info(device="cpu") -> dict                             versions, threads, device (a GPU by
                                                           name), how timings are taken
    time_attention(kind, batch, T, n_heads, d_head, repeats, device="cpu") -> [seconds]
                                                           forward+backward of one attention
and optionally
    generate(..., prefix=None)                             (B, P) bytes kept as given: completions
    time_window(model, mode, batch, start, steps, seed=0) -> seconds
                                                           steps from the state at a late position
    timed_generate(model, mode, noise, steps=None) -> (data, seconds)
                                                           `generate` timed inside the backend
    warm_up()                                              start the runtime (Julia) before a
                                                           memory baseline is taken
    attention_peak_bytes() -> int | None                   memory of the last time_attention,
                                                           measured inside the backend

Each is imported only when asked for, and only one per process (juliacall, torch and jax in one
process are a known source of crashes: notes/julia.md section 3).
"""

from __future__ import annotations

import importlib

BACKENDS = ("torch", "jax", "julia")

# The attention kinds each backend's `time_attention` offers (the scaling study plans only these):
# "softmax" materialises the T x T scores everywhere; "softmax-fused" is PyTorch's
# scaled_dot_product_attention; "softmax-chunked" takes queries in blocks.
TIME_ATTENTION_KINDS = {
    "torch": ("softmax", "softmax-fused", "softmax-chunked", "linear"),
    "jax": ("softmax", "softmax-chunked", "linear"),
    "julia": ("softmax", "linear"),
}


class BackendUnavailable(RuntimeError):
    """The backend cannot run here; the message says why and how to make it available."""


def get_backend(name: str):
    if name not in BACKENDS:
        raise BackendUnavailable(f"unknown backend {name!r}; choose one of {list(BACKENDS)}")
    try:
        return importlib.import_module(f"linattn.{name}_backend")
    except ModuleNotFoundError as e:
        raise BackendUnavailable(
            f"backend {name!r} needs the Python package {e.name!r}, which is not installed; "
            "run `make setup` (or `pip install -r requirements.txt`)"
        ) from None
