"""Log-likelihood of bytes under the head, and bits/dim (the same math as `linattn.reference.log_prob`)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from ..config import LOG_SCALE_MIN, ModelConfig

BIN = 1.0 / 255.0


def split_mixture(out, config: ModelConfig):
    """(..., 3M) -> logits, means, log-scales clamped below at -7."""
    M = config.n_mixtures
    return out[..., :M], out[..., M : 2 * M], jnp.maximum(out[..., 2 * M :], LOG_SCALE_MIN)


def log_prob(out, config: ModelConfig, data):
    """(B, T, n_outputs), (B, T) bytes -> (B, T) log-probabilities in nats.

    Mixture bin probability in logs, a = (x - mu + 1/255)/s, c = (x - mu - 1/255)/s:
    log(sigmoid(a) - sigmoid(c)) = -softplus(-a) - softplus(c) + log(-expm1(c - a));
    the bin of byte 0 reaches -inf (-softplus(-a)), that of 255 reaches +inf (-softplus(c)).
    """
    data = data.astype(jnp.int32)
    if config.head == "categorical":
        lp = jax.nn.log_softmax(out, axis=-1)
        return jnp.take_along_axis(lp, data[..., None], axis=-1)[..., 0]
    logits, mu, log_s = split_mixture(out, config)
    x = (2.0 * data.astype(out.dtype) / 255.0 - 1.0)[..., None]
    inv_s = jnp.exp(-log_s)
    a = (x - mu + BIN) * inv_s
    c = (x - mu - BIN) * inv_s
    middle = -jax.nn.softplus(-a) - jax.nn.softplus(c) + jnp.log(-jnp.expm1(c - a))
    lp = jnp.where(x <= -1.0, -jax.nn.softplus(-a), jnp.where(x >= 1.0, -jax.nn.softplus(c), middle))
    return jax.nn.logsumexp(jax.nn.log_softmax(logits, axis=-1) + lp, axis=-1)


def nats_per_dim(out, config: ModelConfig, data):
    """Mean negative log-likelihood per byte in nats (the training loss)."""
    return -log_prob(out, config, data).mean()


def bits(nats):
    return nats / math.log(2.0)
