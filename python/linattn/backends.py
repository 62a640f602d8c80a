"""The backends and their common interface; find one by name.

Each backend module (`linattn.torch_backend`, `linattn.jax_backend`, `linattn.julia_backend`)
implements every method of `Backend`, numpy in and out (tests/test_backends.py checks the Python
ones against this protocol, tests/test_julia_static.py the Julia one without starting Julia).
Every backend times generation by the same methods: `timed_generate` for whole images,
`time_window` for windows of steps from a late state, `uncached_step` for one uncached step, after
`compile_generation` (PyTorch compiles its step there; JAX and Julia compile on the first call).

Each is imported only when asked for, and only one per process (juliacall, torch and jax in one
process are a known source of crashes: notes/julia.md section 3).
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol, runtime_checkable

BACKENDS = ("torch", "jax", "julia")

# The attention kinds each backend's `time_attention` offers (the scaling study plans only these):
# "softmax" materialises the T x T scores everywhere; "softmax-fused" is PyTorch's
# scaled_dot_product_attention; "softmax-chunked" takes queries in chunks and recomputes each in the
# backward; "linear-favor" is linear attention with FAVOR+'s features (config.N_FEATURES of them)
# instead of elu + 1. Each backend's own table of kinds (its attention module's KINDS) must list
# these: tests/test_backends.py checks it.
TIME_ATTENTION_KINDS = {
    "torch": ("softmax", "softmax-fused", "softmax-chunked", "linear", "linear-favor"),
    "jax": ("softmax", "softmax-chunked", "linear", "linear-favor"),
    "julia": ("softmax", "softmax-chunked", "linear", "linear-favor"),
}


@runtime_checkable
class Backend(Protocol):
    """What every backend module offers. Shapes are Python's: tokens and bytes (B, T), noise
    (B, T, 2) uniforms, attention inputs (B, T, H, D)."""

    NAME: str  # "torch", "jax" or "julia"

    def prepare(self, config, params, device: str = "cpu", dtype: str = "float32") -> Any:
        """A model of `config` with the weights format's `params`, on `device`."""

    def params_of(self, model) -> dict:
        """The model's weights in the weights format (numpy, float32)."""

    def forward(self, model, tokens):
        """(B, T) input tokens -> (B, T, n_outputs): the parallel form."""

    def bits_per_dim(self, model, data, batch_size: int = 32) -> float:
        """Mean bits per byte of `data` (N, T) under the model."""

    def generate(self, model, mode: str, noise, steps: int | None = None, prefix=None):
        """(B, T) uint8 sampled with `noise`; `steps` stops early; `prefix` (B, P) bytes kept as given."""

    def compile_generation(self, model, mode: str, batch: int) -> dict:
        """Make `generate` and `time_window` of `mode` at `batch` run the backend's compiled step, before
        they are timed. Returns {"step": "compiled" or "eager", "how", "reason" (why eager, else None),
        "compile_seconds"}: what ran, for the results."""

    def timed_generate(self, model, mode: str, noise, steps: int | None = None) -> tuple:
        """(`generate`'s bytes, its wall-clock seconds), the work finished before the clock stops."""

    def time_window(self, model, mode: str, batch: int, start: int, steps: int, seed: int = 0) -> float:
        """Seconds to generate positions start .. start+steps-1 (0-based) from the state they see."""

    def uncached_step(self, model, prefix) -> None:
        """The work of one softmax-uncached step after `prefix` (B, t) bytes: a full forward pass."""

    def time_attention(self, kind: str, batch: int, T: int, n_heads: int, d_head: int, repeats: int,
                       device: str = "cpu") -> list:
        """Seconds of each of `repeats` forward+backward passes of one causal attention, after a warm-up."""

    def attention_peak_bytes(self) -> int | None:
        """Memory of the last `time_attention`, measured inside the backend; None: measure the process."""

    def warm_up(self) -> None:
        """Start the runtime (Julia) before a memory baseline is taken."""

    def set_threads(self, threads: int) -> None:
        """Use `threads` CPU threads for what follows (where the runtime allows it after start-up)."""

    def info(self, device: str = "cpu") -> dict:
        """Versions, threads, the device (a GPU by its name) and how timings are taken."""


METHODS = tuple(n for n in Backend.__dict__ if not n.startswith("_") and callable(Backend.__dict__[n]))


class BackendUnavailable(RuntimeError):
    """The backend cannot run here; the message says why and how to make it available."""


def get_backend(name: str) -> Backend:
    if name not in BACKENDS:
        raise BackendUnavailable(f"unknown backend {name!r}; choose one of {list(BACKENDS)}")
    try:
        return importlib.import_module(f"linattn.{name}_backend")
    except ModuleNotFoundError as e:
        raise BackendUnavailable(
            f"backend {name!r} needs the Python package {e.name!r}, which is not installed; "
            "run `make setup` (or `pip install -r requirements.txt`)"
        ) from None
