"""The model of DESIGN section 3 as a torch.nn.Module whose state_dict names are the weights format's.

`Transformer.forward` is the parallel (training) form; `Transformer.step` is the recurrent form,
one position at a time with the attention's recurrent twin, used by the cached and recurrent
generation modes.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import NORM_EPS, START_TOKEN, VOCAB, ModelConfig
from ..weights import favor_projection
from . import attention as attn


def position_code(T, dp, dtype=torch.float32):
    """pe[p, 2i] = sin(p / 10000^(2i/dp)), pe[p, 2i+1] = cos(p / 10000^(2i/dp))."""
    p = torch.arange(T, dtype=torch.float64)[:, None]
    angle = p / 10000.0 ** (torch.arange(0, dp, 2, dtype=torch.float64) / dp)
    return torch.stack([angle.sin(), angle.cos()], dim=-1).reshape(T, dp).to(dtype)


class Attention(nn.Module):
    """H heads and the kind of attention of the config (`attention.KINDS`). A FAVOR+ kind keeps
    its projection W (m, D) as a buffer, `feature_projection`: saved in the state_dict (so in the
    weights format), moved and cast with the module, but no parameter, so never trained. Drawn here
    from torch's generator (`favor_projection`); `prepare` overwrites it with the checkpoint's."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        C = config.d_model
        self.q, self.k, self.v, self.o = (nn.Linear(C, C) for _ in range(4))
        self.n_heads, self.kind = config.n_heads, attn.KINDS[config.attention_kind]
        if self.kind.projected:
            seed = int(torch.randint(2**62, ()))
            w = favor_projection(config.n_features, config.d_head, np.random.default_rng(seed))
            self.register_buffer("feature_projection", torch.as_tensor(w, dtype=torch.float32))

    @property
    def feature_args(self) -> tuple:
        """What the kind's forms take after their inputs: FAVOR+'s projection, or nothing."""
        return (self.feature_projection,) if self.kind.projected else ()

    def forward(self, x):  # (B, T, C)
        B, T, C = x.shape
        q, k, v = (f(x).view(B, T, self.n_heads, -1) for f in (self.q, self.k, self.v))
        return self.o(self.kind.parallel(q, k, v, *self.feature_args).reshape(B, T, C))


class Layer(nn.Module):
    """Post-LN: x = LN(x + drop(Attn(x))); x = LN(x + drop(W2 drop(relu(W1 x)))). Without attention
    (a feed-forward-only layer of PAR, `attends=False`) the second half alone: attn and norm1 are None."""

    def __init__(self, config: ModelConfig, attends: bool = True):
        super().__init__()
        C = config.d_model
        self.attn = Attention(config) if attends else None
        self.norm1 = nn.LayerNorm(C, eps=NORM_EPS) if attends else None
        self.norm2 = nn.LayerNorm(C, eps=NORM_EPS)
        self.ff1, self.ff2 = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x):
        if self.attn is not None:
            x = self.norm1(x + self.drop(self.attn(x)))
        return self.norm2(x + self.drop(self.ff2(self.drop(F.relu(self.ff1(x))))))


class Transformer(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        C = config.d_model
        self.config = config
        self.kind = attn.KINDS[config.attention_kind]  # looked up once: parallel form, recurrent twin, empty state
        self.embed = nn.Embedding(VOCAB, C // 2)
        self.layers = nn.ModuleList(Layer(config, config.has_attention(i)) for i in range(config.n_layers))
        self.norm = nn.LayerNorm(C, eps=NORM_EPS)
        self.head = nn.Linear(C, config.n_outputs)
        self.compiled_steps = {}  # batch -> (CompiledStep, its compiled form), filled by compiled.compile_step

    def position_code(self, T):
        """(T, C/2) in the parameters' dtype and device, computed in float64."""
        w = self.embed.weight
        return position_code(T, self.config.d_model // 2, w.dtype).to(w.device)

    def forward(self, tokens):
        """(B, T) input tokens -> (B, T, n_outputs)."""
        e = self.embed(tokens)
        return self.forward_embedded(torch.cat([e, self.position_code(tokens.shape[1]).expand_as(e)], dim=-1))

    def forward_embedded(self, x):
        """The layers and the head on embedded inputs: (B, T, C) -> (B, T, n_outputs).
        (Separate from `forward` so that the inputs can be differentiated, e.g. to test causality.)"""
        for layer in self.layers:
            x = layer(x)
        return self.head(self.norm(x))

    # --- the recurrent form ---------------------------------------------------------------------

    def empty_state(self, batch, max_len=None):
        """Per layer: the kind's empty state (a preallocated key/value cache (K, V, 0), or (S, z));
        None for a feed-forward-only layer."""
        c = self.config
        return [self.kind.empty_state(batch, c.n_heads, c.d_head, max_len or c.seq_len, self.embed.weight, c.d_feature)
                if l.attn is not None else None for l in self.layers]

    def packed(self, max_len=None):
        """Weights rearranged for the step, once per generation: every Linear as (bias, W^T) with
        W^T contiguous (in, out), which streams twice as fast as (out, in) at batch 1 on CPU BLAS;
        q, k and v stacked into one (C, 3C) matrix per layer; and the position code of `max_len`
        positions (default: the config's T), from which each step takes its row."""

        def t(*linears):
            return torch.cat([l.bias for l in linears]), torch.cat([l.weight for l in linears]).t().contiguous()

        layers = [
            (t(l.attn.q, l.attn.k, l.attn.v), t(l.attn.o), t(l.ff1), t(l.ff2), l.norm1, l.norm2) if l.attn is not None
            else (None, None, t(l.ff1), t(l.ff2), None, l.norm2)  # a feed-forward-only layer
            for l in self.layers
        ]
        return layers, t(self.head), self.position_code(max_len or self.config.seq_len)

    def step(self, token, position, state, packed):
        """Recurrent form: (B,) tokens at `position` (0-based, as in every backend) -> (B, n_outputs);
        the state is updated in place. `packed` comes from `packed()`."""
        c = self.config
        B, C, H = token.shape[0], c.d_model, c.n_heads
        twin = self.kind.recurrent
        layers, head, pe = packed
        x = torch.cat([self.embed.weight[token], pe[position].expand(B, -1)], dim=-1)
        for i, (qkv, o, ff1, ff2, norm1, norm2) in enumerate(layers):
            if qkv is not None:  # not a feed-forward-only layer
                q, k, v = _split(torch.addmm(qkv[0], x, qkv[1]), B, H)
                a, state[i] = twin(q, k, v, state[i], *self.layers[i].attn.feature_args)
                x = F.layer_norm(torch.addmm(o[0], a.reshape(B, C), o[1]).add_(x), (C,), norm1.weight, norm1.bias, NORM_EPS)
            f = torch.addmm(ff2[0], torch.addmm(ff1[0], x, ff1[1]).relu_(), ff2[1])
            x = F.layer_norm(f.add_(x), (C,), norm2.weight, norm2.bias, NORM_EPS)
        return torch.addmm(head[0], F.layer_norm(x, (C,), self.norm.weight, self.norm.bias, NORM_EPS), head[1])


def _split(qkv, B, H):
    """(B, 3C) -> q, k, v each (B, H, D)."""
    return qkv.view(B, 3, H, -1).unbind(1)


def start_tokens(batch, device):
    return torch.full((batch,), START_TOKEN, dtype=torch.long, device=device)


def input_tokens(data):
    """(B, T) bytes -> (B, T) inputs: the start token, then bytes 0..T-2."""
    start = torch.full_like(data[:, :1], START_TOKEN, dtype=torch.long)
    return torch.cat([start, data[:, :-1].long()], dim=1)


