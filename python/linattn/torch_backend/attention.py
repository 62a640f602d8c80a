"""Causal softmax and linear attention in PyTorch, each as a parallel form and a recurrent twin,
and `KINDS`: the table of attention kinds (parallel form, recurrent twin, empty state) that the
model and the timing look up by name.

Shapes: q, k, v are (B, T, H, D) in the parallel forms and (B, H, D) for one step; F is the size
of a linear kind's features phi(x) (D for elu + 1, m for FAVOR+).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Callable

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from ..config import LINEAR_CHUNK, LINEAR_EPS, SOFTMAX_CHUNK


def elu_feature_map(x):
    """phi(x) = elu(x) + 1."""
    return F.elu(x) + 1.0


def favor_feature_map(x, projection):
    """FAVOR+: phi(x) = exp(W x' - |x'|^2 / 2) / sqrt(m), x' = x / D^(1/4), W = `projection` (m, D);
    (..., D) -> (..., m). No max subtracted before exp, so that the parallel form and the
    recurrent twin compute the same numbers (the reference's docstring says more)."""
    D, m = x.shape[-1], projection.shape[0]
    x = x * D**-0.25
    return torch.exp(x @ projection.t() - 0.5 * x.square().sum(-1, keepdim=True)) * (1.0 / math.sqrt(m))


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
    """Memory-efficient causal softmax attention (Rabe & Staats, seed 001): o_i = sum_{j<=i}
    softmax_j(q_i . k_j / sqrt(D)) v_j, equal to `softmax_attention`, with no T x T scores held.

    Queries and keys in chunks of C = `chunk_size`; each query chunk takes the key chunks up to
    its own with a running max and sum (`_query_chunk`). The backward recomputes one query chunk
    at a time and differentiates it by autograd (checkpointing, `_ChunkedSoftmax`): the forward
    keeps only q, k, v. Memory O(T D + T C) per head, forward and backward (the recomputed chunk's
    C x C probabilities for each of its key chunks); time: the forward twice and the backward.
    """
    if torch.is_grad_enabled() and any(x.requires_grad for x in (q, k, v)):
        return _ChunkedSoftmax.apply(q, k, v, chunk_size)
    return _chunked_forward(q, k, v, chunk_size)


def _chunks(x, chunk_size):
    """(B, T, H, D) -> chunks (B, H, C, D) along T, views."""
    return x.transpose(1, 2).split(chunk_size, dim=2)


def _chunked_forward(q, k, v, chunk_size):
    scale = 1.0 / math.sqrt(q.shape[-1])
    qc, kc, vc = (_chunks(x, chunk_size) for x in (q, k, v))
    o = q.new_empty(q.shape[0], q.shape[2], q.shape[1], v.shape[-1])  # (B, H, T, Dv)
    for i, qi in enumerate(qc):
        o[:, :, i * chunk_size : i * chunk_size + qi.shape[2]] = _query_chunk(qi, i * chunk_size, scale, kc[: i + 1], vc[: i + 1])
    return o.transpose(1, 2)


class _ChunkedSoftmax(torch.autograd.Function):
    """`softmax_attention_chunked` with checkpointing by hand: the forward runs without a graph
    and saves q, k, v; the backward recomputes each query chunk's `_query_chunk` under autograd,
    one chunk at a time, and adds its gradients into dq, dk, dv. (torch.utils.checkpoint's
    non-reentrant form builds every chunk's graph during the forward; its many small nodes,
    scattered between the large freed tensors, kept glibc from reusing the heap: the process grew
    as T^1.6 where the tensors held grew as T.)"""

    @staticmethod
    def forward(ctx, q, k, v, chunk_size):
        ctx.save_for_backward(q, k, v)
        ctx.chunk_size = chunk_size
        return _chunked_forward(q, k, v, chunk_size)

    @staticmethod
    @once_differentiable
    def backward(ctx, do):
        q, k, v = ctx.saved_tensors
        C = ctx.chunk_size
        scale = 1.0 / math.sqrt(q.shape[-1])
        dq, dk, dv = (torch.zeros_like(x).transpose(1, 2) for x in (q, k, v))  # (B, H, T, D) views
        qc, kc, vc, doc = (_chunks(x, C) for x in (q, k, v, do))
        for i, qi in enumerate(qc):
            leaves = [x.detach().requires_grad_() for x in (qi, *kc[: i + 1], *vc[: i + 1])]
            with torch.enable_grad():
                oi = _query_chunk(leaves[0], i * C, scale, leaves[1 : i + 2], leaves[i + 2 :])
            grads = torch.autograd.grad(oi, leaves, doc[i])
            dq[:, :, i * C : i * C + qi.shape[2]] = grads[0]
            for j, (gk, gv) in enumerate(zip(grads[1 : i + 2], grads[i + 2 :])):
                dk[:, :, j * C : j * C + gk.shape[2]] += gk
                dv[:, :, j * C : j * C + gv.shape[2]] += gv
        return dq.transpose(1, 2), dk.transpose(1, 2), dv.transpose(1, 2), None


def _query_chunk(qc, qs, scale, kc, vc):
    """Causal softmax attention of the queries qc (B, H, C, D) at positions qs.. over the key and
    value chunks kc, vc (B, H, C, D each, from position 0; the last ends where qc ends): with s the
    scaled scores of a key chunk (future keys -inf), m' = max(m, max_j s), num = num e^(m - m') +
    e^(s - m') v, den = den e^(m - m') + sum_j e^(s - m'); the result is num / den.

    The running max m only shifts the exponents, and num / den does not depend on it, so it is
    taken from detached scores (its gradient is zero anyway), and the probabilities are made in
    place from the scores: autograd keeps one C x C tensor per key chunk."""
    qc = qc * scale
    rows = torch.arange(qs, qs + qc.shape[2], device=qc.device)[:, None]
    m = torch.full(qc.shape[:-1] + (1,), -torch.inf, dtype=qc.dtype, device=qc.device)
    num = qc.new_zeros(qc.shape[:-1] + (vc[0].shape[-1],))
    den = torch.zeros_like(m)
    ks = 0
    for kj, vj in zip(kc, vc):
        s = qc @ kj.transpose(-1, -2)
        if ks + s.shape[-1] > qs + 1:  # the chunk holds a key after some query: mask the future
            cols = torch.arange(ks, ks + s.shape[-1], device=qc.device)[None, :]
            s.masked_fill_(cols > rows, -torch.inf)
        m_new = torch.maximum(m, s.detach().amax(-1, keepdim=True))
        p = s.sub_(m_new).exp_()
        corr = torch.exp(m - m_new)
        num = num * corr + p @ vj
        den = den * corr + p.sum(-1, keepdim=True)
        m, ks = m_new, ks + s.shape[-1]
    return num / den


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


def linear_attention(q, k, v, *feature_args, feature_map=elu_feature_map, chunk_size=LINEAR_CHUNK):
    """o_i = phi(q_i)^T S_i / (phi(q_i)^T z_i + eps), S_i = sum_{j<=i} phi(k_j) v_j^T, z_i = sum phi(k_j),
    phi(x) = feature_map(x, *feature_args) (FAVOR+ takes the layer's projection), of size F.

    Chunkwise-parallel form (GLA, arXiv 2312.06635): within a chunk of C steps the masked
    quadratic form, across chunks the states S and z at chunk boundaries (an exclusive cumsum).
    Memory O(T C + (T/C) F D) per head, never a T x F x D tensor; exact, not an approximation.
    """
    B, T, H, D = q.shape
    C = min(chunk_size, T)
    pad = (-T) % C
    fq, fk = feature_map(q, *feature_args), feature_map(k, *feature_args)
    if pad:  # padded keys get phi = 0 and padded values 0, so they add nothing
        fq, fk, v = (F.pad(x, (0, 0, 0, 0, 0, pad)) for x in (fq, fk, v))
    N = (T + pad) // C
    fq, fk, v = (x.reshape(B, N, C, H, x.shape[-1]).permute(0, 3, 1, 2, 4) for x in (fq, fk, v))  # (B, H, N, C, D)
    mask = torch.ones(C, C, dtype=torch.bool, device=q.device).tril()
    A = (fq @ fk.transpose(-1, -2)).masked_fill(~mask, 0.0)  # (B, H, N, C, C)
    kv = fk.transpose(-1, -2) @ v  # (B, H, N, F, Dv): each chunk's sum of phi(k) v^T
    S = _exclusive_cumsum(kv)  # the state before each chunk
    z = _exclusive_cumsum(fk.sum(3))  # (B, H, N, F)
    num = fq @ S + A @ v
    den = (fq @ z.unsqueeze(-1)).squeeze(-1) + A.sum(-1) + LINEAR_EPS
    o = (num / den.unsqueeze(-1)).permute(0, 2, 3, 1, 4).reshape(B, N * C, H, -1)
    return o[:, :T]


def _exclusive_cumsum(x):
    """Sums over the chunks before each chunk (dim 2), by shifting: no later chunk enters an
    earlier one, not even by rounding (as it would in cumsum(x) - x)."""
    return torch.cumsum(F.pad(x, (0, 0) * (x.dim() - 3) + (1, 0))[:, :, :-1], dim=2)


def linear_attention_recurrent(q, k, v, state, *feature_args, feature_map=elu_feature_map):
    """One RNN step: S += phi(k) v^T, z += phi(k), o = phi(q)^T S / (phi(q)^T z + eps), phi as in
    `linear_attention`. state = (S (B, H, F, Dv), z (B, H, F)), updated in place and returned."""
    S, z = state
    fq, fk = feature_map(q, *feature_args), feature_map(k, *feature_args)
    B, H, F_ = fk.shape
    S.view(B * H, F_, -1).baddbmm_(fk.reshape(B * H, F_, 1), v.reshape(B * H, 1, -1))
    z.add_(fk)
    num = (fq.reshape(B * H, 1, F_) @ S.view(B * H, F_, -1)).view(B, H, -1)
    den = (fq * z).sum(-1, keepdim=True) + LINEAR_EPS
    return num / den, (S, z)


def kv_cache(batch, n_heads, d_head, max_len, like, d_feature=None):
    """A preallocated key/value cache (K, V, 0) with room for `max_len` positions, like `like`
    (`d_feature` is not used: a cache holds keys, not features)."""
    return (like.new_zeros(batch, n_heads, max_len, d_head), like.new_zeros(batch, n_heads, max_len, d_head), 0)


def linear_state(batch, n_heads, d_head, max_len, like, d_feature=None):
    """The linear state (S (B, H, F, D), z (B, H, F)), zero, F = `d_feature` (default: d_head, the
    size of elu + 1's features); it has no length."""
    F_ = d_feature or d_head
    return (like.new_zeros(batch, n_heads, F_, d_head), like.new_zeros(batch, n_heads, F_))


@dataclass(frozen=True)
class Kind:
    parallel: Callable  # (q, k, v, *feature_args) (B, T, H, D) -> o (B, T, H, D)
    recurrent: Callable  # (q, k, v, state, *feature_args) one step (B, H, D) -> (o, state)
    empty_state: Callable  # (batch, n_heads, d_head, max_len, like, d_feature) -> the state before the first step
    projected: bool = False  # the forms take the layer's FAVOR+ projection (m, D) as their feature_args


# The attention kinds, by name (a model's: `ModelConfig.attention_kind`). A linear kind with another
# feature map is one more entry.
KINDS = {
    "softmax": Kind(softmax_attention, softmax_attention_recurrent, kv_cache),
    "softmax-fused": Kind(softmax_attention_fused, softmax_attention_recurrent, kv_cache),
    "softmax-chunked": Kind(softmax_attention_chunked, softmax_attention_recurrent, kv_cache),
    "linear": Kind(partial(linear_attention, feature_map=elu_feature_map),
                   partial(linear_attention_recurrent, feature_map=elu_feature_map), linear_state),
    "linear-favor": Kind(partial(linear_attention, feature_map=favor_feature_map),
                         partial(linear_attention_recurrent, feature_map=favor_feature_map), linear_state,
                         projected=True),
}
