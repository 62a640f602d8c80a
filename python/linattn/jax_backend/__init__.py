"""The JAX backend: the model as pure jit-compiled functions. The same functions as every backend
module (see `linattn.torch_backend`), numpy in and out:

    prepare(config, params, device="cpu", dtype="float32") -> model
    forward(model, tokens) -> (B, T, n_outputs)          parallel form
    bits_per_dim(model, data, batch_size) -> float        data: (N, T) bytes
    generate(model, mode, noise, steps=None) -> (B, T) uint8
    uncached_step(model, prefix)                          one softmax-uncached step (timing)
    info() -> dict                                         versions, threads, device

Each function compiles on its first call with new shapes (the speed harness times a warm-up call
apart, as compile time); later calls with the same shapes reuse the compiled program.
float64 needs JAX's 64-bit mode, switched on before `prepare`: `jax.config.update(
"jax_enable_x64", True)`, the `jax.enable_x64(True)` context, or JAX_ENABLE_X64=1.
Matrix products run at full float32 precision on every device (no TF32), as torch's default.
"""

from __future__ import annotations

import dataclasses
import os
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from ..config import ConfigError, ModelConfig, check_mode
from ..weights import check_params
from . import generate as _gen
from . import model as _model
from .loss import bits, nats_per_dim

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


@partial(jax.jit, static_argnames=("config",))
def _nats(params, config, data):
    return nats_per_dim(_model.forward(params, config, _model.input_tokens(data)), config, data)


def forward(model: Model, tokens):
    with jax.default_matmul_precision("float32"):
        return np.asarray(_forward(model.params, model.config, jnp.asarray(np.asarray(tokens), jnp.int32)))


def bits_per_dim(model: Model, data, batch_size=32) -> float:
    data = np.asarray(data)
    total = 0.0
    with jax.default_matmul_precision("float32"):
        for i in range(0, len(data), batch_size):
            chunk = jnp.asarray(data[i : i + batch_size], jnp.int32)
            total += float(_nats(model.params, model.config, chunk)) * len(chunk)
    return bits(total / len(data))


def generate(model: Model, mode, noise, steps=None):
    check_mode(mode, model.config)
    noise = np.asarray(noise)
    if noise.ndim != 3 or noise.shape[2] != 2:
        raise ConfigError(f"noise must have shape (B, T, 2), got {noise.shape}")
    if steps is not None and not 0 < steps <= noise.shape[1]:
        raise ConfigError(f"steps must be in 1..{noise.shape[1]} (the noise's T), got {steps}")
    with jax.default_matmul_precision("float32"):
        data = _gen.generate(model.params, model.config, mode, jnp.asarray(noise), steps)
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


def info() -> dict:
    device = jax.devices()[0]
    return {
        "backend": NAME,
        "version": jax.__version__,
        "device": f"{device.platform}: {device.device_kind}",
        "threads": len(os.sched_getaffinity(0)),
        "x64": bool(jax.config.jax_enable_x64),
    }
