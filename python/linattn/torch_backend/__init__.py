"""The PyTorch backend. Every backend module offers the same functions, numpy in and out:

    prepare(config, params, device="cpu", dtype="float32") -> model
    forward(model, tokens) -> (B, T, n_outputs)          parallel form
    bits_per_dim(model, data, batch_size) -> float        data: (N, T) bytes
    generate(model, mode, noise, steps=None) -> (B, T) uint8
    uncached_step(model, prefix)                          one softmax-uncached step (timing)
    info() -> dict                                         versions, threads, device
"""

from __future__ import annotations

import numpy as np
import torch

from ..config import ModelConfig
from ..weights import check_params
from . import generate as _gen
from .loss import bits, nats_per_dim
from .model import Transformer, input_tokens

NAME = "torch"
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def prepare(config: ModelConfig, params, device="cpu", dtype="float32") -> Transformer:
    check_params(config, params)
    model = Transformer(config)
    model.load_state_dict({n: torch.from_numpy(np.asarray(w)) for n, w in params.items()})
    return model.to(device=device, dtype=DTYPES[dtype]).eval()


def params_of(model: Transformer) -> dict:
    return {n: t.detach().cpu().float().numpy() for n, t in model.state_dict().items()}


def _device(model):
    return model.embed.weight.device


@torch.inference_mode()
def forward(model, tokens):
    return model(torch.as_tensor(np.asarray(tokens), device=_device(model))).cpu().numpy()


@torch.inference_mode()
def bits_per_dim(model, data, batch_size=32) -> float:
    model.eval()
    data = torch.as_tensor(np.asarray(data, dtype=np.int64))
    total = 0.0
    for i in range(0, len(data), batch_size):
        chunk = data[i : i + batch_size].to(_device(model))
        total += nats_per_dim(model(input_tokens(chunk)), model.config, chunk).item() * len(chunk)
    return bits(total / len(data))


def generate(model, mode, noise, steps=None):
    noise = torch.as_tensor(np.asarray(noise), device=_device(model))
    return _gen.generate(model, mode, noise, steps).cpu().numpy().astype(np.uint8)


@torch.inference_mode()
def uncached_step(model, prefix):
    """The work of one softmax-uncached step after `prefix` (B, t) bytes: a full forward pass."""
    tokens = input_tokens(torch.as_tensor(np.asarray(prefix, dtype=np.int64), device=_device(model)))
    model(tokens)[:, -1].sum().item()


def info() -> dict:
    return {"backend": NAME, "version": torch.__version__, "threads": torch.get_num_threads(), "device": "cpu"}
