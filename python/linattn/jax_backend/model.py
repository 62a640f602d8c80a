"""The model of DESIGN section 3 as pure functions of a parameter dict keyed by the weights format's
names (`linattn.weights`). One difference of layout, converted at one boundary (`from_format`,
`to_format`): a Linear weight is held as W^T, (in, out), not PyTorch's (out, in). A batch-1 step
streams every weight once per position, and XLA on CPU would otherwise copy each (out, in) matrix
into (in, out) inside the loop, at every step (twice the memory traffic).

`forward` is the parallel (training) form; `forward_step` is the recurrent form, one position at a
time with the attention's recurrent twin, used by the cached and recurrent generation modes.
The config is static: jit these with `static_argnames="config"`.

Shapes: B batch, T time, H heads, D head size, C width (d_model).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ..config import NORM_EPS, START_TOKEN, ModelConfig
from . import attention as attn



def input_tokens(data):
    """(B, T) bytes -> (B, T) inputs: the start token, then bytes 0..T-2."""
    start = jnp.full(data.shape[:-1] + (1,), START_TOKEN, dtype=jnp.int32)
    return jnp.concatenate([start, data[..., :-1].astype(jnp.int32)], axis=-1)


def position_code(T, dp, dtype):
    """pe[p, 2i] = sin(p / 10000^(2i/dp)), pe[p, 2i+1] = cos(p / 10000^(2i/dp)), p = 0..T-1.
    Computed in float64 numpy (as the torch backend does), then cast: a constant of the trace."""
    p = np.arange(T, dtype=np.float64)[:, None]
    angle = p / 10000.0 ** (np.arange(0, dp, 2, dtype=np.float64) / dp)
    return np.stack([np.sin(angle), np.cos(angle)], axis=-1).reshape(T, dp).astype(dtype)


def from_format(params, dtype):
    """Weights-format arrays (numpy, PyTorch layout) -> this module's params: jax arrays of
    `dtype`, every Linear weight transposed to (in, out) and contiguous."""
    return {n: jnp.asarray(np.ascontiguousarray(_layout(n, np.asarray(w, dtype=dtype)))) for n, w in params.items()}


def to_format(params, dtype=np.float32):
    """This module's params -> numpy arrays (float32: the weights format) in PyTorch layout."""
    return {n: np.ascontiguousarray(_layout(n, np.asarray(w, dtype=dtype))) for n, w in params.items()}


def _layout(name, w):
    """Transposes a Linear weight (2-D, named .weight, not the embedding; FAVOR+'s projection keeps
    its (m, D)); its own inverse."""
    return w.T if w.ndim == 2 and name.endswith(".weight") and name != "embed.weight" else w


def linear(x, params, name):
    """y = x W + b with W held as (in, out) (the weights format's W^T)."""
    return x @ params[f"{name}.weight"] + params[f"{name}.bias"]


def layer_norm(x, params, name):
    """(x - mean) / sqrt(var + 1e-5) * weight + bias over the last axis (biased variance)."""
    mu = x.mean(-1, keepdims=True)
    var = jnp.square(x - mu).mean(-1, keepdims=True)
    return (x - mu) * lax.rsqrt(var + NORM_EPS) * params[f"{name}.weight"] + params[f"{name}.bias"]


def dropout(x, rate, key):
    """Training only: each element kept with probability 1 - rate and scaled by 1/(1 - rate);
    the identity when `key` is None."""
    if key is None or rate == 0:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0.0)


def layer(params, config: ModelConfig, i, x, attend, key=None):
    """Post-LN: x = LN(x + drop(Attn(x))); x = LN(x + drop(W2 drop(relu(W1 x)))).
    x is (..., C); `attend(q, k, v, *feature_args)` mixes the heads, each (..., H, D). A
    feed-forward-only layer (PAR) is the second half alone."""
    p = f"layers.{i}"
    keys = (None,) * 3 if key is None else tuple(jax.random.split(key, 3))
    if config.has_attention(i):
        q, k, v = (_split_heads(linear(x, params, f"{p}.attn.{n}"), config) for n in "qkv")
        a = linear(attend(q, k, v, *feature_args(params, config, i)).reshape(x.shape), params, f"{p}.attn.o")
        x = layer_norm(x + dropout(a, config.dropout, keys[0]), params, f"{p}.norm1")
    h = dropout(jax.nn.relu(linear(x, params, f"{p}.ff1")), config.dropout, keys[1])
    f = linear(h, params, f"{p}.ff2")
    return layer_norm(x + dropout(f, config.dropout, keys[2]), params, f"{p}.norm2")


def feature_args(params, config: ModelConfig, i):
    """What layer i's attention passes to its feature map: FAVOR+'s projection (m, D), or nothing."""
    return (params[f"layers.{i}.attn.feature_projection"],) if attn.KINDS[config.attention_kind].projected else ()


def _split_heads(x, config):
    return x.reshape(x.shape[:-1] + (config.n_heads, config.d_head))


def forward(params, config: ModelConfig, tokens, dropout_key=None):
    """Parallel form: (B, T) input tokens -> (B, T, n_outputs). A `dropout_key` turns on the
    training-time dropout (config.dropout); without one the model is deterministic."""
    T = tokens.shape[1]
    e = params["embed.weight"][tokens]
    pe = position_code(T, config.d_model // 2, e.dtype)
    x = jnp.concatenate([e, jnp.broadcast_to(pe, e.shape)], axis=-1)
    return forward_embedded(params, config, x, dropout_key)


def forward_embedded(params, config: ModelConfig, x, dropout_key=None):
    """The layers and the head on embedded inputs: (B, T, C) -> (B, T, n_outputs).
    (Separate from `forward` so that the inputs can be differentiated, e.g. to test causality.)"""
    attend = attn.KINDS[config.attention_kind].parallel
    for i in range(config.n_layers):
        key = None if dropout_key is None else jax.random.fold_in(dropout_key, i)
        x = layer(params, config, i, x, attend, key)
    return linear(layer_norm(x, params, "norm"), params, "head")


# --- the recurrent form -------------------------------------------------------------------------


def empty_state(config: ModelConfig, batch, dtype, max_len):
    """Per layer: a preallocated key/value cache (K, V, 0) with room for `max_len` positions,
    or the linear state (S, z) (which has no length; S is F x D, F = config.d_feature); None for a
    feed-forward-only layer."""
    empty = attn.KINDS[config.attention_kind].empty_state
    return [empty(batch, config.n_heads, config.d_head, max_len, dtype, config.d_feature) if config.has_attention(i)
            else None for i in range(config.n_layers)]


def forward_step(params, config: ModelConfig, token, position, state):
    """Recurrent form: (B,) tokens at `position` (0-based, as in every backend; may be traced)
    -> (B, n_outputs), and the new state (a list with one entry per layer, as from `empty_state`).
    The position code is the config's T rows, a constant of the trace, read at `position`."""
    twin = attn.KINDS[config.attention_kind].recurrent
    e = params["embed.weight"][token]
    # jnp.take, not lax.dynamic_index_in_dim: the latter on this numpy constant gave wrong rows inside
    # the jitted generation scan (JAX 0.10.2, CPU); take also fills a position past T with NaN
    pe = jnp.take(jnp.asarray(position_code(config.seq_len, config.d_model // 2, e.dtype)), position, axis=0)
    x = jnp.concatenate([e, jnp.broadcast_to(pe, e.shape)], axis=-1)
    new_state = []
    for i in range(config.n_layers):

        def attend(q, k, v, *feature_args, i=i):
            o, s = twin(q, k, v, state[i], *feature_args)
            new_state.append(s)
            return o

        if not config.has_attention(i):
            new_state.append(None)  # a feed-forward-only layer carries nothing
        x = layer(params, config, i, x, attend)
    return linear(layer_norm(x, params, "norm"), params, "head"), new_state
