"""Sampling from given noise and the three generation modes (DESIGN section 3, "Generation modes")."""

from __future__ import annotations

import torch

from ..config import ModelConfig, check_mode
from .loss import split_mixture
from .model import Transformer, input_tokens, start_tokens


def sample_from_head(out, config: ModelConfig, u):
    """One byte per row from head outputs (B, n_outputs) and uniforms u (B, 2): the component is
    the first k whose cumulative weight exceeds u1 (the last if none), the value
    mu_k + s_k (log u2 - log(1 - u2)) clipped to [-1, 1], the byte round((x+1)/2 * 255)."""
    if config.head == "categorical":
        return _first_above(torch.softmax(out, -1), u[:, 0])
    logits, mu, log_s = split_mixture(out, config)
    k = _first_above(torch.softmax(logits, -1), u[:, 0]).unsqueeze(1)
    u2 = u[:, 1]
    x = mu.gather(1, k).squeeze(1) + log_s.gather(1, k).squeeze(1).exp() * (u2.log() - (1.0 - u2).log())
    return torch.round((x.clamp(-1.0, 1.0) + 1.0) / 2.0 * 255.0).clamp(0, 255).long()


def _first_above(weights, u1):
    cum = torch.cumsum(weights, dim=-1)
    return (cum <= u1.unsqueeze(1)).sum(1).clamp(max=weights.shape[-1] - 1)


@torch.inference_mode()
def generate(model: Transformer, mode, noise, steps=None, prefix=None):
    """(B, T, 2) uniforms -> (B, T) bytes. `steps` stops early (for timing a prefix); `prefix`
    (B, P) bytes are kept as given at positions t < P (completion of a partly given image)."""
    config = model.config
    check_mode(mode, config)
    noise = noise.to(model.embed.weight.dtype)
    B, T = noise.shape[:2]
    steps = T if steps is None else steps
    device = noise.device
    data = torch.zeros(B, T, dtype=torch.long, device=device)
    P = 0 if prefix is None else prefix.shape[1]
    if mode == "softmax-uncached":
        for t in range(steps):
            out = model(input_tokens(data[:, : t + 1]))[:, -1]
            data[:, t] = prefix[:, t] if t < P else sample_from_head(out, config, noise[:, t])
        return data
    step = stepper(model, B, T)
    # (T, B, 2) uniforms and (P, B) given bytes, with the strides of new tensors (a compiled step
    # checks strides, those of size-1 axes too): each step's rows contiguous
    u = noise.transpose(0, 1).clone(memory_format=torch.contiguous_format)
    given = None if prefix is None else prefix.t().long().clone(memory_format=torch.contiguous_format)
    token = start_tokens(B, device)
    for t in range(steps):
        token = step(token, t, u[t])
        if t < P:
            token = given[t]
        data[:, t] = token
    return data


class EagerStep:
    """The loop's step, eagerly: `Transformer.step` (state per layer, weights packed once), then
    the byte sampled from its outputs. `state` is a list of the layers' states."""

    def __init__(self, model: Transformer, batch, max_len):
        self.model, self.state, self.packed = model, model.empty_state(batch, max_len), model.packed(max_len)

    def __call__(self, token, position, u):
        return sample_from_head(self.model.step(token, position, self.state, self.packed), self.model.config, u)


class CompiledStepRun:
    """The loop's step by the step compiled for this batch (`compiled.compile_step`): token,
    position and uniforms in, the next byte out. `state` is a list of one tuple, the layers stacked."""

    def __init__(self, step, fn):
        self.fn, self.state = fn, [step.empty_state()]

    def __call__(self, token, position, u):
        return self.fn(token, position, u, *self.state[0])


def stepper(model: Transformer, batch, max_len):
    """The step for `batch` images: the compiled one where `compiled.compile_step` made one for this
    batch (it holds the config's T positions, so `max_len` must not exceed it), else the eager one."""
    if batch in model.compiled_steps and max_len <= model.config.seq_len:
        return CompiledStepRun(*model.compiled_steps[batch])
    return EagerStep(model, batch, max_len)
