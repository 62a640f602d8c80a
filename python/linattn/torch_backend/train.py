"""One training step, mirrored by the JAX and Julia backends.

Optimiser: RAdam with decoupled weight decay, as the authors' image-generation code (its bundled
radam.py: lr 1e-4, weight_decay 0.01 applied to the weights directly). Loss: nats per byte.
"""

from __future__ import annotations

import torch

from .loss import nats_per_dim
from .model import Transformer, input_tokens

LEARNING_RATE = 1e-4  # paper, Sec. 4.2.1 (MNIST); the authors' README uses 2e-4 for CIFAR-10
WEIGHT_DECAY = 0.01  # authors' code (radam.py default argument)


def make_optimizer(model: Transformer, lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY):
    return torch.optim.RAdam(model.parameters(), lr=lr, weight_decay=weight_decay, decoupled_weight_decay=True)


def train_step(model: Transformer, optimizer, data, autocast_dtype=None) -> float:
    """One update on (B, T) bytes; returns the batch's loss in nats per byte before the update.

    `model` may be wrapped in DistributedDataParallel (its `.module` is the Transformer): the
    backward pass then averages the gradients over the processes. `autocast_dtype`
    (torch.bfloat16 on GPUs) runs the forward pass under torch.autocast; the parameters, the
    optimiser state and the loss stay float32."""
    model.train()
    config = getattr(model, "module", model).config
    if autocast_dtype is None:
        loss = nats_per_dim(model(input_tokens(data)), config, data)
    else:
        with torch.autocast(device_type=data.device.type, dtype=autocast_dtype):
            out = model(input_tokens(data))
        loss = nats_per_dim(out.float(), config, data)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item()
