"""The generation step of softmax-cached and linear-recurrent compiled by inductor (torch.compile):
token in, token out, one program per step.

Why: at batch 1 a step streams every weight once (51 MB for the CIFAR model) through ~200 small
operations. Eagerly each is a framework call, and MKL's matrix-vector product streams at about half
the memory bandwidth. Compiled, the step is a few fused C++ loop nests, and a Linear at batch 1 is a
multiply-and-sum over its input axis (`rowsum_linear`: W as (out, in), each row contiguous), which
inductor vectorises into one pass over W at memory speed. Larger batches keep the matrix product
(W as (in, out), MKL), where the arithmetic is worth it. The weights are packed once, every layer's
matrix of one kind stacked into one tensor: few inputs for the compiled program to check on each
call. They are inputs, not constants, so one program serves every model of the same sizes. The
cached softmax attention stays one call per layer to `attention.cached_softmax_attention`, an
operator of its own (BLAS, as eagerly): inductor's loops over a length known only at run time were
a hundred times slower. Measured (CIFAR, batch 1, 2 cores, `replication speed --interleaved 3`,
README "What one run found"): 0.99x the roofline floor for linear-recurrent, 1.41x for
softmax-cached; eagerly 2.48x and 2.15x.

The math is `Transformer.step` followed by `generate.sample_from_head`, with the attention kind's
own recurrent twin (`attention.KINDS`); only the order of float32 sums differs. tests/ check the
bytes against the numpy reference, as they check the eager step.

Inductor needs a C++ compiler. Where it is missing or compilation fails, `compile_step` says why
and generation keeps the eager step (`Transformer.step`).
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn

from ..config import NORM_EPS
from .generate import sample_from_head
from .model import Transformer

# torch.compile's options for the step: the program's wrapper in C++ (inductor's default wrapper
# is Python, one call per kernel and buffer: overhead of the order of a batch-1 step's data time).
OPTIONS = {"cpp_wrapper": True}
DESCRIPTION = "torch.compile (inductor, C++ wrapper), weights packed per batch"
RECOMPILE_LIMIT = 64  # compiled steps (two programs each) one process may hold


def rowsum_linear(x, w, b):
    """x W^T + b with W as (out, in): sum_j x_j W_ij per output i. Compiled at batch 1 this is one
    vectorised pass over the rows of W; eagerly it would materialise x * W (use a matrix product)."""
    return (x.unsqueeze(-2) * w).sum(-1) + b


def matmul_linear(x, w_t, b):
    """x W^T + b with W^T as (in, out): the matrix product (MKL), for batches above 1."""
    return torch.addmm(b, x, w_t)


class CompiledStep(nn.Module):
    """One generation step for `batch` images, its weights packed for that batch: every layer's q, k,
    v matrices as one (3C, C) matrix, each kind of matrix stacked over the layers that have it (q, k,
    v, o, norm1 and a FAVOR+ projection over the attention layers, the feed-forward over all), as
    (out, in) at batch 1 (`rowsum_linear`), else (in, out) (`matmul_linear`); the position code of
    the config's T positions. The state is a flat tuple of every attention layer's tensors
    (`empty_state`); a feed-forward-only layer (PAR's "f") has none."""

    def __init__(self, model: Transformer, batch: int):
        super().__init__()
        c = model.config
        self.config, self.kind, self.batch = c, model.kind, batch
        self.linear = rowsum_linear if batch == 1 else matmul_linear
        rows = batch == 1

        self.attends = tuple(l.attn is not None for l in model.layers)  # PAR: False for an "f" layer
        attending = [l for l in model.layers if l.attn is not None]

        def stack(layers, *pick):
            weights = [torch.cat([p(layer).weight for p in pick]) for layer in layers]
            biases = [torch.cat([p(layer).bias for p in pick]) for layer in layers]
            w = torch.stack(weights if rows else [w.t() for w in weights]).contiguous()
            return w, torch.stack(biases)

        packed = {
            "qkv": stack(attending, lambda l: l.attn.q, lambda l: l.attn.k, lambda l: l.attn.v),
            "o": stack(attending, lambda l: l.attn.o),
            "ff1": stack(model.layers, lambda l: l.ff1),
            "ff2": stack(model.layers, lambda l: l.ff2),
            "head": (model.head.weight if rows else model.head.weight.t(), model.head.bias),
        }
        for name, (w, b) in packed.items():
            self.register_buffer(f"{name}_w", w.detach().clone().contiguous())
            self.register_buffer(f"{name}_b", b.detach().clone())
        for name, layers in (("norm1", attending), ("norm2", model.layers)):
            self.register_buffer(f"{name}_w", torch.stack([getattr(l, name).weight for l in layers]).detach().clone())
            self.register_buffer(f"{name}_b", torch.stack([getattr(l, name).bias for l in layers]).detach().clone())
        if model.kind.projected:  # FAVOR+: each attention layer's projection (m, D), stacked
            self.register_buffer("projection", torch.stack([l.attn.feature_projection for l in attending]).detach().clone())
        self.register_buffer("norm_w", model.norm.weight.detach().clone())
        self.register_buffer("norm_b", model.norm.bias.detach().clone())
        self.register_buffer("embed", model.embed.weight.detach().clone())
        self.register_buffer("pe", model.position_code(c.seq_len))
        self._slots = tuple(torch.is_tensor(x) for x in model.kind.empty_state(1, 1, 1, 1, self.embed, 1))

    def empty_state(self):
        """The kind's empty state for the config's T positions, each layer's own tensors one after the
        other in one flat tuple: (S, z) as (B, H, D, Dv) and (B, H, D), or the key/value cache (K, V)
        as (B, H, T + 1, D) each (a cache's fill position is the step's position). Not stacked over
        the layers: each layer writes its state in place, and the compiled program copies a whole
        tensor that one layer writes part of and the next layer reads (the whole cache, L times a
        step). The cache's spare position keeps the slice a step reads (its first t + 1 positions)
        shorter than the cache at every t: the program would otherwise assume so, and compile again
        for the last position."""
        c = self.config
        state = []
        for _ in range(sum(self.attends)):
            one = self.kind.empty_state(self.batch, c.n_heads, c.d_head, c.seq_len + 1, self.embed, c.d_feature)
            state += [x for x in one if torch.is_tensor(x)]
        for x in state:  # static sizes: another model's state in this process makes its own program
            torch._dynamo.mark_static(x)
        return tuple(state)

    def _layer_state(self, state, i, position):
        """The i-th attention layer's state as the kind's recurrent twin takes it: its tensors, and the
        position where the kind's empty state holds a number (a cache's fill position)."""
        n = sum(self._slots)
        tensors = iter(state[i * n : (i + 1) * n])
        return tuple(next(tensors) if is_tensor else position for is_tensor in self._slots)

    def forward(self, token, position: int, u, *state):
        """(B,) tokens at `position` (0-based) and uniforms u (B, 2) -> the next (B,) bytes; the
        state is updated in place."""
        c = self.config
        B, C, H = token.shape[0], c.d_model, c.n_heads
        x = torch.cat([self.embed[token], self.pe[position].expand(B, -1)], dim=-1)
        j = 0  # the attention layers' index (PAR's "f" layers have no attention)
        for i in range(c.n_layers):
            if self.attends[i]:
                q, k, v = self.linear(x, self.qkv_w[j], self.qkv_b[j]).view(B, 3, H, -1).unbind(1)
                feature_args = (self.projection[j],) if self.kind.projected else ()
                a, _ = self.kind.recurrent(q, k, v, self._layer_state(state, j, position), *feature_args)
                x = F.layer_norm(self.linear(a.reshape(B, C), self.o_w[j], self.o_b[j]) + x, (C,), self.norm1_w[j],
                                 self.norm1_b[j], NORM_EPS)
                j += 1
            f = self.linear(self.linear(x, self.ff1_w[i], self.ff1_b[i]).relu(), self.ff2_w[i], self.ff2_b[i])
            x = F.layer_norm(f + x, (C,), self.norm2_w[i], self.norm2_b[i], NORM_EPS)
        out = self.linear(F.layer_norm(x, (C,), self.norm_w, self.norm_b, NORM_EPS), self.head_w, self.head_b)
        return sample_from_head(out, c, u)


def compile_step(model: Transformer, batch: int) -> dict:
    """Compile the step for `batch` images and keep it in `model.compiled_steps[batch]`, where
    `generate` and `time_window` find it. Two warm-up calls compile it: at position 0, then at
    position 1, after which the position is a symbolic integer and no later position compiles
    again. Returns how the step runs: {"step": "compiled" or "eager", "how", "reason" (why eager,
    else None), "compile_seconds"}; a failure (no C++ compiler, an inductor error) leaves the eager
    step in place, with the reason."""
    t0 = time.perf_counter()
    try:
        step = CompiledStep(model, batch).eval()
        fn = torch.compile(step, fullgraph=True, options=OPTIONS)
        # Every kind, size and batch compiled in this process is an entry of one code object's cache
        # (CompiledStep.forward), two each: room for more than dynamo's default 8.
        with torch.inference_mode(), torch._dynamo.config.patch(recompile_limit=RECOMPILE_LIMIT):
            state = step.empty_state()
            u = torch.full((batch, 2), 0.5, dtype=step.embed.dtype, device=step.embed.device)
            token = torch.zeros(batch, dtype=torch.long, device=step.embed.device)
            for position in (0, 1):
                fn(token, position, u, *state)
    except Exception as e:  # any failure to compile means: run eagerly, and say why
        model.compiled_steps.pop(batch, None)
        reason = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"[:300]
        return {"step": "eager", "how": "Transformer.step (eager)", "reason": f"compiling failed ({reason})",
                "compile_seconds": time.perf_counter() - t0}
    model.compiled_steps[batch] = (step, fn)
    return {"step": "compiled", "how": DESCRIPTION, "reason": None, "compile_seconds": time.perf_counter() - t0}
