"""Causal softmax and linear attention in PyTorch, each as a parallel form and a recurrent twin,
and `KINDS`: the table of attention kinds (parallel form, recurrent twin, empty state) that the
model and the timing look up by name.

Shapes: q, k, v are (B, T, H, D) in the parallel forms and (B, H, D) for one step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Callable

import torch
import torch.nn.functional as F

from ..config import LINEAR_CHUNK, LINEAR_EPS, SOFTMAX_CHUNK


def elu_feature_map(x):
    """phi(x) = elu(x) + 1."""
    return F.elu(x) + 1.0


def softmax_attention(q, k, v):
    """o_i = sum_{j<=i} softmax_j(q_i . k_j / sqrt(D)) v_j, materialised: the (T, T) scores of each
    head are held, as in the JAX and Julia backends (q scaled first, an additive causal bias of -inf)."""
    T, D = q.shape[1], q.shape[-1]
    qh, kh, vh = (x.transpose(1, 2) for x in (q, k, v))  # (B, H, T, D)
    scores = (qh * (1.0 / math.sqrt(D))) @ kh.transpose(-1, -2)  # (B, H, T_query, T_key)
    bias = torch.full((T, T), -torch.inf, dtype=q.dtype, device=q.device).triu(1)  # key j > query i
    return (torch.softmax(scores + bias, dim=-1) @ vh).transpose(1, 2)


def softmax_attention_fused(q, k, v):
    """`softmax_attention` by PyTorch's fused kernel (scaled_dot_product_attention), which need not
    hold the (T, T) scores: timed as its own kind, "softmax-fused"."""
    o = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True)
    return o.transpose(1, 2)


def softmax_attention_chunked(q, k, v, chunk_size=SOFTMAX_CHUNK):
    """Memory-efficient causal softmax attention (Rabe & Staats, seed 001): queries and keys in
    chunks with a running max and sum, so that no T x T score matrix is held; O(T * chunk) memory.
    Equals `softmax_attention`."""
    B, T, H, D = q.shape
    scale = 1.0 / math.sqrt(D)
    qh, kh, vh = (x.transpose(1, 2) for x in (q, k, v))  # (B, H, T, D)
    outs = []
    for qs in range(0, T, chunk_size):
        qc = qh[:, :, qs : qs + chunk_size] * scale
        rows = torch.arange(qs, qs + qc.shape[2], device=q.device)[:, None]
        m = torch.full(qc.shape[:-1] + (1,), -torch.inf, dtype=q.dtype, device=q.device)
        num = torch.zeros_like(qc[..., :1].expand(*qc.shape[:-1], vh.shape[-1]))
        den = torch.zeros_like(m)
        for ks in range(0, qs + qc.shape[2], chunk_size):
            s = qc @ kh[:, :, ks : ks + chunk_size].transpose(-1, -2)
            cols = torch.arange(ks, ks + s.shape[-1], device=q.device)[None, :]
            s = s.masked_fill(cols > rows, -torch.inf)
            m_new = torch.maximum(m, s.amax(-1, keepdim=True))
            p = torch.exp(s - m_new)
            corr = torch.exp(m - m_new)
            num = num * corr + p @ vh[:, :, ks : ks + chunk_size]
            den = den * corr + p.sum(-1, keepdim=True)
            m = m_new
        outs.append(num / den)
    return torch.cat(outs, dim=2).transpose(1, 2)


def softmax_attention_recurrent(q, k, v, state):
    """One step with a key/value cache. state = (K, V, t): K, V preallocated (B, H, T_max, D),
    filled up to position t-1; this step's key and value are written at t in place.
    Returns o (B, H, D) = `cached_softmax_attention(q, K, V, t + 1)` and (K, V, t + 1)."""
    K, V, t = state
    K[:, :, t : t + 1] = k.unsqueeze(2)  # a slice, not K[:, :, t]: compiled, t stays symbolic (compiled.py)
    V[:, :, t : t + 1] = v.unsqueeze(2)
    return cached_softmax_attention(q, K, V, t + 1), (K, V, t + 1)


@torch.library.custom_op("linattn::cached_softmax_attention", mutates_args=())
def cached_softmax_attention(q: torch.Tensor, K: torch.Tensor, V: torch.Tensor, length: int) -> torch.Tensor:
    """o = sum_{j<length} softmax_j(q . K_j / sqrt(D)) V_j for one query per head: q (B, H, D), K and
    V (B, H, T_max, D) of which the first `length` positions count. An operator of its own
    (torch.library.custom_op), so that a compiled step (compiled.py) calls these two batched
    matrix-vector products (BLAS) as they run eagerly, rather than loops that inductor generates
    over a length only known at run time (a hundred times slower at the CIFAR model's size). As
    einsums they stream the cache about 1.5x faster than as `K @ q` (MKL, CIFAR model, t = 1535)."""
    scores = torch.einsum("bhjd,bhd->bhj", K[:, :, :length], q) * (1.0 / math.sqrt(q.shape[-1]))
    return torch.einsum("bhj,bhjd->bhd", torch.softmax(scores, dim=-1), V[:, :, :length])


@cached_softmax_attention.register_fake
def _(q, K, V, length):
    return torch.empty_like(q)


def linear_attention(q, k, v, feature_map=elu_feature_map, chunk_size=LINEAR_CHUNK):
    """o_i = phi(q_i)^T S_i / (phi(q_i)^T z_i + eps), S_i = sum_{j<=i} phi(k_j) v_j^T, z_i = sum phi(k_j),
    phi = `feature_map`.

    Chunkwise-parallel form (GLA, arXiv 2312.06635): within a chunk of C steps the masked
    quadratic form, across chunks the states S and z at chunk boundaries (an exclusive cumsum).
    Memory O(T C + (T/C) D^2) per head, never a T x D x D tensor; exact, not an approximation.
    """
    B, T, H, D = q.shape
    C = min(chunk_size, T)
    pad = (-T) % C
    fq, fk = feature_map(q), feature_map(k)
    if pad:  # padded keys get phi = 0 and padded values 0, so they add nothing
        fq, fk, v = (F.pad(x, (0, 0, 0, 0, 0, pad)) for x in (fq, fk, v))
    N = (T + pad) // C
    fq, fk, v = (x.reshape(B, N, C, H, x.shape[-1]).permute(0, 3, 1, 2, 4) for x in (fq, fk, v))  # (B, H, N, C, D)
    mask = torch.ones(C, C, dtype=torch.bool, device=q.device).tril()
    A = (fq @ fk.transpose(-1, -2)).masked_fill(~mask, 0.0)  # (B, H, N, C, C)
    kv = fk.transpose(-1, -2) @ v  # (B, H, N, D, Dv): each chunk's sum of phi(k) v^T
    S = _exclusive_cumsum(kv)  # the state before each chunk
    z = _exclusive_cumsum(fk.sum(3))  # (B, H, N, D)
    num = fq @ S + A @ v
    den = (fq @ z.unsqueeze(-1)).squeeze(-1) + A.sum(-1) + LINEAR_EPS
    o = (num / den.unsqueeze(-1)).permute(0, 2, 3, 1, 4).reshape(B, N * C, H, -1)
    return o[:, :T]


def _exclusive_cumsum(x):
    """Sums over the chunks before each chunk (dim 2), by shifting: no later chunk enters an
    earlier one, not even by rounding (as it would in cumsum(x) - x)."""
    return torch.cumsum(F.pad(x, (0, 0) * (x.dim() - 3) + (1, 0))[:, :, :-1], dim=2)


def linear_attention_recurrent(q, k, v, state, feature_map=elu_feature_map):
    """One RNN step: S += phi(k) v^T, z += phi(k), o = phi(q)^T S / (phi(q)^T z + eps).
    state = (S (B, H, D, Dv), z (B, H, D)), updated in place and returned."""
    S, z = state
    fq, fk = feature_map(q), feature_map(k)
    B, H, D = fk.shape
    S.view(B * H, D, -1).baddbmm_(fk.reshape(B * H, D, 1), v.reshape(B * H, 1, -1))
    z.add_(fk)
    num = (fq.reshape(B * H, 1, D) @ S.view(B * H, D, -1)).view(B, H, -1)
    den = (fq * z).sum(-1, keepdim=True) + LINEAR_EPS
    return num / den, (S, z)


def kv_cache(batch, n_heads, d_head, max_len, like):
    """A preallocated key/value cache (K, V, 0) with room for `max_len` positions, like `like`."""
    return (like.new_zeros(batch, n_heads, max_len, d_head), like.new_zeros(batch, n_heads, max_len, d_head), 0)


def linear_state(batch, n_heads, d_head, max_len, like):
    """The linear state (S, z), zero; it has no length."""
    return (like.new_zeros(batch, n_heads, d_head, d_head), like.new_zeros(batch, n_heads, d_head))


@dataclass(frozen=True)
class Kind:
    parallel: Callable  # (q, k, v) (B, T, H, D) -> o (B, T, H, D)
    recurrent: Callable  # (q, k, v, state) one step (B, H, D) -> (o, state)
    empty_state: Callable  # (batch, n_heads, d_head, max_len, like) -> the state before the first step


# The attention kinds, by name. A linear kind with another feature map is one more entry, e.g.
# "linear-favor": Kind(partial(linear_attention, feature_map=favor), partial(linear_attention_recurrent,
# feature_map=favor), linear_state).
KINDS = {
    "softmax": Kind(softmax_attention, softmax_attention_recurrent, kv_cache),
    "softmax-fused": Kind(softmax_attention_fused, softmax_attention_recurrent, kv_cache),
    "softmax-chunked": Kind(softmax_attention_chunked, softmax_attention_recurrent, kv_cache),
    "linear": Kind(partial(linear_attention, feature_map=elu_feature_map),
                   partial(linear_attention_recurrent, feature_map=elu_feature_map), linear_state),
}
