"""Log-likelihood of bytes under the head, and bits/dim (the same math as `linattn.reference.log_prob`)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..config import LOG_SCALE_MIN, ModelConfig

BIN = 1.0 / 255.0


def split_mixture(out, config: ModelConfig):
    """(..., 3M) -> logits, means, log-scales clamped below at -7."""
    M = config.n_mixtures
    return out[..., :M], out[..., M : 2 * M], out[..., 2 * M :].clamp(min=LOG_SCALE_MIN)


def log_prob(out, config: ModelConfig, data):
    """(B, T, n_outputs), (B, T) bytes -> (B, T) log-probabilities in nats.

    Mixture bin probability in logs, a = (x - mu + 1/255)/s, c = (x - mu - 1/255)/s:
    log(sigmoid(a) - sigmoid(c)) = -softplus(-a) - softplus(c) + log(-expm1(c - a));
    the bin of byte 0 reaches -inf (-softplus(-a)), that of 255 reaches +inf (-softplus(c)).
    """
    data = data.long()
    if config.head == "categorical":
        return torch.log_softmax(out, -1).gather(-1, data.unsqueeze(-1)).squeeze(-1)
    logits, mu, log_s = split_mixture(out, config)
    x = (2.0 * data.to(out.dtype) / 255.0 - 1.0).unsqueeze(-1)
    inv_s = torch.exp(-log_s)
    a = (x - mu + BIN) * inv_s
    c = (x - mu - BIN) * inv_s
    middle = -F.softplus(-a) - F.softplus(c) + torch.log(-torch.expm1(c - a))
    lp = torch.where(x <= -1.0, -F.softplus(-a), torch.where(x >= 1.0, -F.softplus(c), middle))
    return torch.logsumexp(torch.log_softmax(logits, -1) + lp, dim=-1)


def nats_per_dim(out, config, data):
    """Mean negative log-likelihood per byte in nats (the training loss)."""
    return -log_prob(out, config, data).mean()


def bits(nats):
    return nats / math.log(2.0)
