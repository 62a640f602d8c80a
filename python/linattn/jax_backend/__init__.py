"""The JAX backend: the model as pure jit-compiled functions, with the interface of
`linattn.backends` (including `time_window`).

Each function compiles on its first call with new shapes (the speed harness times a warm-up call
apart, as compile time); later calls with the same shapes reuse the compiled program.
float64 needs JAX's 64-bit mode, switched on before `prepare`: `jax.config.update(
"jax_enable_x64", True)`, the `jax.enable_x64(True)` context, or JAX_ENABLE_X64=1.
Matrix products run at full float32 precision on every device (no TF32), as torch's default.
"""

from __future__ import annotations

import dataclasses
import os
import time
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ..backends import BackendUnavailable
from ..config import ConfigError, ModelConfig, check_mode
from ..weights import check_params, timing_projection
from . import attention as _attn
from . import generate as _gen
from . import model as _model
from .loss import bits, log_prob

NAME = "jax"
DTYPES = {"float32": jnp.float32, "float64": jnp.float64}
PLATFORMS = {"cpu": "cpu", "cuda": "gpu", "gpu": "gpu"}


@dataclasses.dataclass(frozen=True)
class Model:
    """A prepared model: the static config and the parameters as jax arrays on one device
    (the weights format's names; Linear weights transposed, see `model.from_format`)."""

    config: ModelConfig
    params: dict


def prepare(config: ModelConfig, params, device="cpu", dtype="float32") -> Model:
    check_params(config, params)
    if dtype not in DTYPES:
        raise ConfigError(f"dtype must be one of {list(DTYPES)}, got {dtype!r}")
    if dtype == "float64" and not jax.config.jax_enable_x64:
        raise ConfigError(
            "dtype float64 needs JAX's 64-bit mode: call jax.config.update('jax_enable_x64', True) "
            "(or use the jax.enable_x64(True) context, or set JAX_ENABLE_X64=1) before prepare"
        )
    with jax.default_device(_device(device)):
        return Model(config, _model.from_format(params, DTYPES[dtype]))


def _device(name):
    platform = PLATFORMS.get(str(name).split(":")[0])
    if platform is None:
        raise ConfigError(f"device must be one of {list(PLATFORMS)} (optionally ':index'), got {name!r}")
    try:
        devices = jax.devices(platform)
    except RuntimeError as e:
        raise ConfigError(f"JAX has no {platform} device here ({e})") from None
    index = int(str(name).split(":")[1]) if ":" in str(name) else 0
    return devices[index]


def params_of(model: Model) -> dict:
    return _model.to_format(model.params)


@partial(jax.jit, static_argnames=("config",))
def _forward(params, config, tokens):
    return _model.forward(params, config, tokens)


_log_prob = jax.jit(log_prob, static_argnames=("config",))


def forward(model: Model, tokens):
    with jax.default_matmul_precision("float32"):
        return np.asarray(_forward(model.params, model.config, jnp.asarray(np.asarray(tokens), jnp.int32)))


def bits_per_dim(model: Model, data, batch_size=32) -> float:
    data = np.asarray(data)
    total = 0.0
    with jax.default_matmul_precision("float32"):
        for i in range(0, len(data), batch_size):
            chunk = jnp.asarray(data[i : i + batch_size], jnp.int32)
            out = _forward(model.params, model.config, _model.input_tokens(chunk))
            total -= float(_log_prob(out, model.config, chunk).mean()) * len(chunk)
    return bits(total / len(data))


def generate(model: Model, mode, noise, steps=None, prefix=None):
    """`prefix` (B, P) bytes are kept as given at positions t < P (completion of a partly given
    image); the rest is sampled from `noise`."""
    check_mode(mode, model.config)
    noise = np.asarray(noise)
    if noise.ndim != 3 or noise.shape[2] != 2:
        raise ConfigError(f"noise must have shape (B, T, 2), got {noise.shape}")
    B, T = noise.shape[:2]
    if T > model.config.seq_len:  # the step reads the position code of the config's T positions
        raise ConfigError(f"noise has {T} positions, more than the model's T = {model.config.seq_len}")
    if steps is not None and not 0 < steps <= T:
        raise ConfigError(f"steps must be in 1..{T} (the noise's T), got {steps}")
    given = np.full((B, T), -1, dtype=np.int32)
    if prefix is not None:
        prefix = np.asarray(prefix)
        if prefix.ndim != 2 or prefix.shape[0] != B or prefix.shape[1] > T:
            raise ConfigError(f"prefix must have shape (B={B}, P <= {T}), got {prefix.shape}")
        given[:, : prefix.shape[1]] = prefix
    with jax.default_matmul_precision("float32"):
        data = _gen.generate(model.params, model.config, mode, jnp.asarray(noise), jnp.asarray(given), steps)
    return np.asarray(data).astype(np.uint8)


def uncached_step(model: Model, prefix):
    """The work of one softmax-uncached step after `prefix` (B, t) bytes as `generate` does it: a
    full forward pass on the prefix zero-padded to the end of its segment (`generate.SEGMENT`)."""
    prefix = np.asarray(prefix)
    B, n = prefix.shape
    width = _gen.uncached_width(n, model.config.seq_len)
    data = np.zeros((B, width), dtype=np.int32)
    data[:, :n] = prefix
    with jax.default_matmul_precision("float32"):
        tokens = _model.input_tokens(jnp.asarray(data))
        _forward(model.params, model.config, tokens)[:, n - 1].block_until_ready()


_run_steps = jax.jit(_gen.run_steps, static_argnames=("config",))


def time_window(model: Model, mode, batch, start, steps, seed=0):
    """Seconds to generate positions start .. start+steps-1 of `batch` images from the state those
    positions see: a key/value cache holding `start` (random) entries, or an (S, z) state, whose
    cost does not depend on its content. Lets a speed run sample late positions cheaply. The
    first call for a (mode, batch, steps) compiles; `start` is an argument, not a constant."""
    config = model.config
    check_mode(mode, config)
    T = config.seq_len
    if not (0 <= start and 0 < steps and start + steps <= T):
        raise ConfigError(f"the window start={start}, steps={steps} must lie inside 0..{T}")
    rng = np.random.default_rng(seed)
    dtype = model.params["embed.weight"].dtype
    # the state position `start` sees: random values (positive, as a normaliser must be), a cache's
    # fill position set to `start`
    state = [None if s is None else
             tuple(jnp.asarray(rng.uniform(1.0, 2.0, x.shape), dtype) if x.ndim else jnp.int32(start) for x in s)
             for s in _model.empty_state(config, batch, dtype, max_len=T)]
    positions = jnp.arange(start, start + steps, dtype=jnp.int32)
    u = jnp.asarray(rng.random((steps, batch, 2)), dtype)
    given = jnp.full((steps, batch), -1, jnp.int32)
    token = jnp.asarray(rng.integers(0, 256, batch), jnp.int32)
    jax.block_until_ready((state, positions, u, token))
    with jax.default_matmul_precision("float32"):
        t0 = time.perf_counter()
        jax.block_until_ready(_run_steps(model.params, config, token, state, positions, u, given))
        return time.perf_counter() - t0


def time_attention(kind, batch, T, n_heads, d_head, repeats, device="cpu"):
    """Seconds of `repeats` forward+backward passes of one causal attention (after a warm-up, which
    compiles) on random (B, T, H, D) inputs. kind: one of `attention.KINDS` ("softmax": the whole
    T x T scores at once; "softmax-chunked": queries in chunks, each recomputed in the backward;
    "linear": the chunkwise form; "linear-favor": the same with FAVOR+'s features, N_FEATURES of them)."""
    if kind not in _attn.KINDS:  # "softmax-fused" is PyTorch's kernel
        raise BackendUnavailable(f"the JAX backend has no {kind!r} attention (only {', '.join(_attn.KINDS)})")
    fn = _attn.KINDS[kind].parallel
    grads = jax.jit(jax.grad(lambda q, k, v, *args: fn(q, k, v, *args).sum(), argnums=(0, 1, 2)))
    with jax.default_device(_device(device)):
        q, k, v = jax.random.normal(jax.random.key(0), (3, batch, T, n_heads, d_head))
        args = [jnp.asarray(timing_projection(d_head))] if _attn.KINDS[kind].projected else []
    times = []
    for i in range(repeats + 1):
        t = time.perf_counter()
        jax.block_until_ready(grads(q, k, v, *args))
        if i:
            times.append(time.perf_counter() - t)
    return times


def compile_generation(model: Model, mode, batch) -> dict:
    """Nothing to do ahead: `generate` and `time_window` are jit-compiled on their first call with
    new shapes (the speed harness's warm-up), the loop over positions inside one lax.scan."""
    check_mode(mode, model.config)
    return {"step": "compiled", "how": "jax.jit (XLA), positions in one lax.scan, compiled on the first call",
            "reason": None, "compile_seconds": 0.0}


def timed_generate(model: Model, mode, noise, steps=None):
    """`generate` and its wall-clock seconds (the bytes copied back to the host inside the clock)."""
    t = time.perf_counter()
    data = generate(model, mode, noise, steps)
    return data, time.perf_counter() - t


def set_threads(threads):
    """Nothing to do now: XLA's CPU thread pool is set before JAX starts (XLA_FLAGS, `speed.pin_threads`)."""


def warm_up():
    """Nothing to start: importing this module started JAX."""


def attention_peak_bytes():
    """None: the driver measures the worker process's growth."""
    return None


def info(device=None) -> dict:
    """Versions, threads, the device (`device`, else JAX's default) and how timings are taken."""
    device = jax.devices()[0] if device is None else _device(device)
    return {
        "backend": NAME,
        "version": jax.__version__,
        "device": f"{device.platform}: {device.device_kind}",
        "timer": "time.perf_counter around jax.block_until_ready",
        # XLA's CPU thread pool has one thread per core, unless XLA_FLAGS turns it off (as
        # `replication speed --threads 1` does); a batch-1 step runs on one of them.
        "threads": 1 if "xla_cpu_multi_thread_eigen=false" in os.environ.get("XLA_FLAGS", "") else len(os.sched_getaffinity(0)),
        "x64": bool(jax.config.jax_enable_x64),
    }
