"""Sampling from given noise and the three generation modes (DESIGN section 3, "Generation modes"),
each one jit-compiled function with the loop over positions inside it (lax.scan).

Shapes stay static under jit, yet the work of a softmax step should grow with its position t, as
it does in the torch loop. softmax-cached gets that inside the attention step (it reads the cache
only up to t rounded up to a block, `attention.softmax_attention_recurrent`). softmax-uncached runs
the positions in segments of SEGMENT, one scan each: a step in the segment ending at position
`width` re-runs the model on the bytes so far zero-padded to `width` (causal, so the padding cannot
reach position t).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from jax import lax

from ..config import START_TOKEN, ModelConfig, check_mode
from .loss import split_mixture
from .model import empty_state, forward, forward_step, input_tokens

SEGMENT = 128  # positions per segment of the softmax-uncached loop


def sample_from_head(out, config: ModelConfig, u):
    """One byte per row from head outputs (B, n_outputs) and uniforms u (B, 2): the component is
    the first k whose cumulative weight exceeds u1 (the last if none), the value
    mu_k + s_k (log u2 - log(1 - u2)) clipped to [-1, 1], the byte round((x+1)/2 * 255)
    (half to even) clipped to 0..255. A categorical head draws the byte by u1 alone."""
    if config.head == "categorical":
        return _first_above(jax.nn.softmax(out, axis=-1), u[:, 0])
    logits, mu, log_s = split_mixture(out, config)
    k = _first_above(jax.nn.softmax(logits, axis=-1), u[:, 0])[:, None]
    u2 = u[:, 1]
    mu_k = jnp.take_along_axis(mu, k, axis=1)[:, 0]
    s_k = jnp.exp(jnp.take_along_axis(log_s, k, axis=1)[:, 0])
    x = mu_k + s_k * (jnp.log(u2) - jnp.log(1.0 - u2))
    return jnp.clip(jnp.round((jnp.clip(x, -1.0, 1.0) + 1.0) / 2.0 * 255.0), 0, 255).astype(jnp.int32)


def _first_above(weights, u1):
    """Index of the first cumulative weight > u1, clamped to the last index."""
    cum = jnp.cumsum(weights, axis=-1)
    return jnp.minimum((cum <= u1[:, None]).sum(-1), weights.shape[-1] - 1).astype(jnp.int32)


def segments(steps, T):
    """(start, stop, width) for each segment of the loop over positions 0..steps-1: SEGMENT
    positions each (the last maybe fewer), worked on a buffer of width min(start + SEGMENT, T)."""
    return [(s, min(s + SEGMENT, steps), min(s + SEGMENT, T)) for s in range(0, steps, SEGMENT)]


def uncached_width(n, T):
    """The buffer width of the softmax-uncached step whose forward pass reads n input tokens
    (the step at position n - 1): the end of its segment."""
    return min(T, -(-n // SEGMENT) * SEGMENT)


@partial(jax.jit, static_argnames=("config", "mode", "steps"))
def generate(params, config: ModelConfig, mode, noise, given, steps=None):
    """(B, T, 2) uniforms -> (B, T) int32 bytes. `given` (B, T) int32 holds, where >= 0, a byte
    kept instead of sampled (completing a partly given image), else -1. `steps` stops after that
    many positions (the rest stay 0). One compiled program per (config, mode, shapes, steps)."""
    check_mode(mode, config)
    B, T = noise.shape[:2]
    steps = T if steps is None else steps
    u = noise.astype(params["embed.weight"].dtype).swapaxes(0, 1)  # (T, B, 2): scanned over time
    g = given.astype(jnp.int32).swapaxes(0, 1)  # (T, B)
    if mode == "softmax-uncached":
        return _generate_uncached(params, config, u, g, steps)
    positions = jnp.arange(steps, dtype=jnp.int32)
    token = jnp.full((B,), START_TOKEN, jnp.int32)
    state = empty_state(config, B, u.dtype, max_len=T)
    ys, _ = run_steps(params, config, token, state, positions, u[:steps], g[:steps])
    return jnp.pad(ys.T, ((0, 0), (0, T - steps)))


def _choose(out, config, u_t, given_t):
    """The given byte where there is one, else a byte sampled from the head outputs."""
    return jnp.where(given_t >= 0, given_t, sample_from_head(out, config, u_t))


def _generate_uncached(params, config, u, g, steps):
    """Every step re-runs the parallel form on the bytes so far, padded to its segment's width,
    and samples position t from it."""
    T, B = u.shape[:2]
    data = jnp.zeros((B, T), jnp.int32)
    for start, stop, width in segments(steps, T):

        def body(data, xs, width=width):
            t, u_t, given_t = xs
            out = forward(params, config, input_tokens(data[:, :width]))
            byte = _choose(lax.dynamic_index_in_dim(out, t, axis=1, keepdims=False), config, u_t, given_t)
            return lax.dynamic_update_index_in_dim(data, byte, t, axis=1), None

        data, _ = lax.scan(body, data, (jnp.arange(start, stop), u[start:stop], g[start:stop]))
    return data


def run_steps(params, config: ModelConfig, token, state, positions, u, given):
    """The loop of softmax-cached and linear-recurrent: one `forward_step` per entry of `positions`
    (n,) (0-based), u (n, B, 2) and given (n, B), from the last byte `token` (B,) and `state` (the key/value cache,
    or S and z per layer), both the carry of one scan. Returns the n bytes (n, B) and the final
    (token, state)."""

    def body(carry, xs):
        token, state = carry
        position, u_t, given_t = xs
        out, state = forward_step(params, config, token, position, state)
        token = _choose(out, config, u_t, given_t)
        return (token, state), token

    carry, ys = lax.scan(body, (token, state), (positions, u, given))
    return ys, carry
