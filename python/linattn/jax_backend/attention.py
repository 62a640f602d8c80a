"""Causal softmax and linear attention in JAX, each as a parallel form and a recurrent twin, and
`KINDS`: the table of attention kinds (parallel form, recurrent twin, empty state) that the model
and the timing look up by name.

Shapes: q, k, v are (B, T, H, D) in the parallel forms and (B, H, D) for one step; F is the size
of a linear kind's features phi(x) (D for elu + 1, m for FAVOR+).
Pure functions of arrays; the callers jit whole models and generation loops.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Callable

import jax
import jax.numpy as jnp
from jax import lax

from ..config import LINEAR_CHUNK, LINEAR_EPS, SOFTMAX_CHUNK


def elu_feature_map(x):
    """phi(x) = elu(x) + 1."""
    return jax.nn.elu(x) + 1.0


def favor_feature_map(x, projection):
    """FAVOR+: phi(x) = exp(W x' - |x'|^2 / 2) / sqrt(m), x' = x / D^(1/4), W = `projection` (m, D);
    (..., D) -> (..., m). No max subtracted before exp, so that the parallel form and the
    recurrent twin compute the same numbers (the reference's docstring says more)."""
    D, m = x.shape[-1], projection.shape[0]
    x = x * D**-0.25
    return jnp.exp(x @ projection.T - 0.5 * jnp.square(x).sum(-1, keepdims=True)) * (1.0 / math.sqrt(m))


def softmax_attention(q, k, v):
    """o_i = sum_{j<=i} softmax_j(q_i . k_j / sqrt(D)) v_j, max-subtracted: the (B, H, T, T)
    scores materialised, as in every backend's "softmax"."""
    T = q.shape[1]
    return _query_block(q, k, v, jnp.arange(T))


def softmax_attention_chunked(q, k, v, chunk_size=SOFTMAX_CHUNK):
    """Memory-efficient causal softmax attention (Rabe & Staats, seed 001): `softmax_attention`'s
    o_i, with no T x T scores held.

    Queries in chunks of C = `chunk_size` (the last padded with zero rows, whose outputs are
    dropped), one chunk after another by lax.map; each chunk's rows see all their keys in one
    softmax, future keys masked (`_query_block`), so this is the plain masked softmax. Each
    chunk's function runs under jax.checkpoint: the forward keeps only its inputs (the chunk's
    queries; k and v are shared by all chunks) and its output, and the backward, a loop over the
    chunks as well, recomputes one chunk's (B, H, C, T) scores at a time before differentiating
    them. Memory O(T D + C T) per head, forward and backward; time: the forward twice and the
    backward. The loop keeps shapes static, so every chunk takes all T keys (as "softmax" does):
    no work is saved on the key chunks the causal mask empties.
    """
    B, T, H, D = q.shape
    C = min(chunk_size, T)
    N = -(-T // C)
    qc = jnp.pad(q, ((0, 0), (0, N * C - T), (0, 0), (0, 0))).reshape(B, N, C, H, D).swapaxes(0, 1)  # (N, B, C, H, D)
    rows = jnp.arange(N * C).reshape(N, C)  # the positions of each chunk's queries
    chunk = jax.checkpoint(lambda qr: _query_block(qr[0], k, v, qr[1]))
    o = lax.map(chunk, (qc, rows))  # (N, B, C, H, Dv)
    return o.swapaxes(0, 1).reshape(B, N * C, H, -1)[:, :T]


def _query_block(q, k, v, rows):
    """Causal softmax attention of the queries q (B, R, H, D) at positions `rows` (R) over all the
    keys and values k, v (B, T, H, D): softmax_j(q_i . k_j / sqrt(D) + (0 if j <= row_i else
    -inf)) v_j."""
    scale = 1.0 / math.sqrt(q.shape[-1])
    scores = jnp.einsum("bihd,bjhd->bhij", q, k) * scale
    causal = jnp.arange(k.shape[1])[None, :] <= rows[:, None]
    p = jax.nn.softmax(jnp.where(causal, scores, -jnp.inf), axis=-1)
    return jnp.einsum("bhij,bjhd->bihd", p, v)


def softmax_attention_recurrent(q, k, v, state, block_size=256):
    """One step with a key/value cache. state = (K, V, t): K, V preallocated (B, H, W, D) with
    W > t, filled up to position t-1; this step's key and value are written at t
    (dynamic_update_slice). o = sum_{j<=t} softmax_j(q . K_j / sqrt(D)) V_j, returned with
    (K, V, t + 1).

    The scores are computed over the first t+1 positions rounded up to a multiple of
    `block_size` (lax.switch over the possible widths, one branch each, masked beyond t): shapes
    stay static, yet a step's work grows with t as it does over a growing cache.
    """
    K, V, t = state
    K = lax.dynamic_update_slice_in_dim(K, k[:, :, None], t, axis=2)
    V = lax.dynamic_update_slice_in_dim(V, v[:, :, None], t, axis=2)
    W = K.shape[2]
    scale = 1.0 / math.sqrt(q.shape[-1])

    def attend(width):
        def over(q, K, V, t):
            scores = jnp.einsum("bhd,bhjd->bhj", q, K[:, :, :width]) * scale
            scores = jnp.where(jnp.arange(width) <= t, scores, -jnp.inf)
            return jnp.einsum("bhj,bhjd->bhd", jax.nn.softmax(scores, axis=-1), V[:, :, :width])

        return over

    widths = list(range(block_size, W, block_size)) + [W]
    o = lax.switch(t // block_size, [attend(w) for w in widths], q, K, V, t)
    return o, (K, V, t + 1)


def linear_attention(q, k, v, *feature_args, feature_map=elu_feature_map, chunk_size=LINEAR_CHUNK):
    """o_i = phi(q_i)^T S_i / (phi(q_i)^T z_i + eps), S_i = sum_{j<=i} phi(k_j) v_j^T, z_i = sum phi(k_j),
    phi(x) = feature_map(x, *feature_args) (FAVOR+ takes the layer's projection), of size F.

    Chunkwise-parallel form (GLA, arXiv 2312.06635): within a chunk of c steps the masked
    quadratic form, across chunks the states S and z at chunk boundaries (an exclusive cumsum,
    shifted rather than subtracted so that no later chunk enters an earlier one even by rounding).
    Memory O(T c + (T/c) F D) per head, never a T x F x D tensor; exact, not an approximation.
    """
    B, T, H, D = q.shape
    c = min(chunk_size, T)
    pad = (-T) % c
    fq, fk = feature_map(q, *feature_args), feature_map(k, *feature_args)
    if pad:  # padded keys get phi = 0 and padded values 0, so they add nothing
        fq, fk, v = (jnp.pad(x, ((0, 0), (0, pad), (0, 0), (0, 0))) for x in (fq, fk, v))
    N = (T + pad) // c
    fq, fk, v = (x.reshape(B, N, c, H, x.shape[-1]) for x in (fq, fk, v))  # (B, N, c, H, D)
    A = jnp.einsum("bnihd,bnjhd->bnhij", fq, fk)
    A = jnp.where(jnp.tril(jnp.ones((c, c), dtype=bool)), A, 0.0)  # (B, N, H, c, c)
    kv = jnp.einsum("bnjhd,bnjhe->bnhde", fk, v)  # each chunk's sum of phi(k) v^T
    S = _exclusive_cumsum(kv)  # (B, N, H, F, Dv): the state before each chunk
    z = _exclusive_cumsum(fk.sum(2))  # (B, N, H, F)
    num = jnp.einsum("bnihd,bnhde->bnihe", fq, S) + jnp.einsum("bnhij,bnjhe->bnihe", A, v)
    den = jnp.einsum("bnihd,bnhd->bnih", fq, z) + A.sum(-1).swapaxes(-1, -2) + LINEAR_EPS
    o = (num / den[..., None]).reshape(B, N * c, H, -1)
    return o[:, :T]


def _exclusive_cumsum(x):
    """Sums over the chunk axis (1) of everything before each chunk: 0, x0, x0 + x1, ..."""
    return jnp.concatenate([jnp.zeros_like(x[:, :1]), jnp.cumsum(x[:, :-1], axis=1)], axis=1)


def linear_attention_recurrent(q, k, v, state, *feature_args, feature_map=elu_feature_map):
    """One RNN step: S += phi(k) v^T, z += phi(k), o = phi(q)^T S / (phi(q)^T z + eps), phi as in
    `linear_attention`. state = (S (B, H, F, Dv), z (B, H, F)); returns o (B, H, Dv) and the new state."""
    S, z = state
    fq, fk = feature_map(q, *feature_args), feature_map(k, *feature_args)
    S = S + fk[..., :, None] * v[..., None, :]
    z = z + fk
    num = jnp.einsum("bhd,bhde->bhe", fq, S)
    den = jnp.einsum("bhd,bhd->bh", fq, z)[..., None] + LINEAR_EPS
    return num / den, (S, z)


def kv_cache(batch, n_heads, d_head, max_len, dtype, d_feature=None):
    """A preallocated key/value cache (K, V, 0) with room for `max_len` positions (`d_feature` is not
    used: a cache holds keys, not features)."""
    zeros = jnp.zeros((batch, n_heads, max_len, d_head), dtype)
    return (zeros, zeros, jnp.zeros((), jnp.int32))


def linear_state(batch, n_heads, d_head, max_len, dtype, d_feature=None):
    """The linear state (S (B, H, F, D), z (B, H, F)), zero, F = `d_feature` (default: d_head, the
    size of elu + 1's features); it has no length."""
    F = d_feature or d_head
    return (jnp.zeros((batch, n_heads, F, d_head), dtype), jnp.zeros((batch, n_heads, F), dtype))


@dataclass(frozen=True)
class Kind:
    parallel: Callable  # (q, k, v, *feature_args) (B, T, H, D) -> o (B, T, H, D)
    recurrent: Callable  # (q, k, v, state, *feature_args) one step (B, H, D) -> (o, state)
    empty_state: Callable  # (batch, n_heads, d_head, max_len, dtype, d_feature) -> the state before the first step
    projected: bool = False  # the forms take the layer's FAVOR+ projection (m, D) as their feature_args


# The attention kinds, by name (a model's: `ModelConfig.attention_kind`); a linear kind with another
# feature map is one more entry.
KINDS = {
    "softmax": Kind(softmax_attention, softmax_attention_recurrent, kv_cache),
    "softmax-chunked": Kind(softmax_attention_chunked, softmax_attention_recurrent, kv_cache),
    "linear": Kind(partial(linear_attention, feature_map=elu_feature_map),
                   partial(linear_attention_recurrent, feature_map=elu_feature_map), linear_state),
    "linear-favor": Kind(partial(linear_attention, feature_map=favor_feature_map),
                         partial(linear_attention_recurrent, feature_map=favor_feature_map), linear_state,
                         projected=True),
}
