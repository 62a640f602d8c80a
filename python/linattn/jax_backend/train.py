"""One training step, mirroring the torch backend's (`linattn.torch_backend.train`).

Optimiser: RAdam with decoupled weight decay, as the authors' image-generation code (its bundled
radam.py: lr 1e-4, weight_decay 0.01 applied to the weights directly): the update is
p <- p - lr * (radam(g) + weight_decay * p), on every parameter as torch does. Loss: nats per byte,
with dropout (config.dropout) from a key folded with the step number.

Weights that are never trained (`linattn.weights.is_trained`: FAVOR+'s projections) are kept out of
the optimiser, as torch keeps its buffers out of `model.parameters()`: each step splits the params
into the trained and the fixed ones (`partition`, the partition/combine idiom of equinox), takes
gradients and optimiser state for the trained ones alone and puts the fixed ones back unchanged.
(A zero gradient would not do: the decoupled weight decay would still shrink them.)
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from ..config import ModelConfig
from ..weights import is_trained
from .loss import nats_per_dim
from .model import forward, input_tokens

LEARNING_RATE = 1e-4  # paper, Sec. 4.2.1 (MNIST); the authors' README uses 2e-4 for CIFAR-10
WEIGHT_DECAY = 0.01  # authors' code (radam.py default argument)


def make_optimizer(lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY) -> optax.GradientTransformation:
    """p <- p - lr * (radam(g) + weight_decay * p): torch.optim.RAdam(decoupled_weight_decay=True)."""
    return optax.chain(scale_by_radam(), optax.add_decayed_weights(weight_decay), optax.scale(-lr))


def scale_by_radam(b1=0.9, b2=0.999, eps=1e-8, threshold=5.0) -> optax.GradientTransformation:
    """RAdam's direction exactly as torch.optim.RAdam (and the authors' radam.py) compute it.

    m <- b1 m + (1 - b1) g, v <- b2 v + (1 - b2) g^2, m_hat = m / (1 - b1^t),
    rho_t = rho_inf - 2 t b2^t / (1 - b2^t) with rho_inf = 2 / (1 - b2) - 1; the direction is
    m_hat * r_t * sqrt(1 - b2^t) / (sqrt(v) + eps),
    r_t = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t)),
    once rho_t > threshold, else m_hat. (optax.scale_by_radam adds eps to sqrt(v / (1 - b2^t))
    instead, and switches at rho_t >= threshold: not the same step where sqrt(v) is near eps.)
    """
    rho_inf = 2.0 / (1.0 - b2) - 1.0

    def init(params):
        mu, nu = (jax.tree.map(jnp.zeros_like, params) for _ in range(2))  # two buffers: donated
        return optax.ScaleByAdamState(count=jnp.zeros((), jnp.int32), mu=mu, nu=nu)

    def update(grads, state, params=None):
        mu = jax.tree.map(lambda m, g: b1 * m + (1.0 - b1) * g, state.mu, grads)
        nu = jax.tree.map(lambda v, g: b2 * v + (1.0 - b2) * g * g, state.nu, grads)
        count = state.count + 1
        t = count.astype(jax.tree.leaves(grads)[0].dtype)  # float64 models: rho_t cancels digits
        b2t = b2**t
        rho = rho_inf - 2.0 * t * b2t / (1.0 - b2t)
        rect = rho > threshold
        r = jnp.sqrt(jnp.where(rect, (rho - 4.0) * (rho - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho), 1.0))
        bc1, sqrt_bc2 = 1.0 - b1**t, jnp.sqrt(1.0 - b2t)

        def direction(m, v):
            m_hat = m / bc1
            adaptive = r * sqrt_bc2 / (jnp.sqrt(v) + eps)
            return jnp.where(rect, m_hat * adaptive, m_hat)

        return jax.tree.map(direction, mu, nu), optax.ScaleByAdamState(count=count, mu=mu, nu=nu)

    return optax.GradientTransformation(init, update)


@partial(
    jax.tree_util.register_dataclass,
    data_fields=["params", "opt_state", "key", "step"],
    meta_fields=["config", "optimizer"],
)
@dataclasses.dataclass(frozen=True)
class TrainState:
    """Everything a step changes (params, optimiser state, step number) and what it needs to know
    (config, optimizer: static, so part of the compiled program's identity)."""

    params: dict
    opt_state: Any
    key: jax.Array
    step: jax.Array
    config: ModelConfig
    optimizer: optax.GradientTransformation


def partition(params) -> tuple[dict, dict]:
    """(trained, fixed): the params split by `is_trained`; {**trained, **fixed} gives them back."""
    trained = {n: w for n, w in params.items() if is_trained(n)}
    return trained, {n: w for n, w in params.items() if n not in trained}


def init_state(config: ModelConfig, params, optimizer=None, seed=0) -> TrainState:
    """The state before the first step; `params` a dict of jax arrays (e.g. a prepared model's).
    The optimiser state covers the trained params alone (`partition`)."""
    optimizer = make_optimizer() if optimizer is None else optimizer
    return TrainState(
        params=params,
        opt_state=optimizer.init(partition(params)[0]),
        key=jax.random.key(seed),
        step=jnp.zeros((), jnp.int32),
        config=config,
        optimizer=optimizer,
    )


def _train_step(state: TrainState, data):
    """One update on (B, T) bytes; returns the new state and the batch's loss in nats per byte
    before the update (a jax scalar: block on it, or float() it, to time the step)."""

    trained, fixed = partition(state.params)

    def loss_fn(trained):
        key = jax.random.fold_in(state.key, state.step)
        return nats_per_dim(forward({**trained, **fixed}, state.config, input_tokens(data), key), state.config, data)

    loss, grads = jax.value_and_grad(loss_fn)(trained)
    updates, opt_state = state.optimizer.update(grads, state.opt_state, trained)
    params = {**optax.apply_updates(trained, updates), **fixed}
    return dataclasses.replace(state, params=params, opt_state=opt_state, step=state.step + 1), loss


train_step = jax.jit(_train_step, donate_argnames=("state",))


def data_mesh(devices) -> Mesh:
    """A one-axis mesh ("data") over `devices` (e.g. the local GPUs, or the CPU devices that
    XLA_FLAGS=--xla_force_host_platform_device_count=N makes)."""
    return Mesh(np.asarray(devices), ("data",))


def data_parallel(mesh: Mesh):
    """Data parallelism with jax.sharding: returns (step, place_state, place_batch).

    `place_state` replicates a TrainState on every device of the mesh, `place_batch` splits a
    (B, T) batch along B (B a multiple of the mesh size), and `step` is `train_step` compiled for
    those shardings: XLA partitions the program, each device computing its rows' part of the loss
    and gradient, and sums the gradients across devices (the loss is a mean over the global batch,
    so the step equals the one-device step up to the order of floating-point sums). Dropout masks
    are drawn for the global batch (jax_threefry_partitionable, JAX's default), so they do not
    depend on the number of devices either."""
    replicated, rows = NamedSharding(mesh, P()), NamedSharding(mesh, P("data"))
    step = jax.jit(_train_step, in_shardings=(replicated, rows), out_shardings=(replicated, replicated),
                   donate_argnames=("state",))
    return step, partial(jax.device_put, device=replicated), partial(jax.device_put, device=rows)


def state_arrays(state: TrainState) -> dict:
    """The arrays of a TrainState by name (numpy, on the host), for `np.savez`: params/NAME,
    opt/PATH (the optimiser state's leaves, by their path in its tree) and step. The config,
    optimizer and key are rebuilt from the run's settings (the key from its seed)."""
    out = {f"params/{n}": np.asarray(w) for n, w in state.params.items()}
    for path, leaf in jax.tree_util.tree_flatten_with_path(state.opt_state)[0]:
        out["opt/" + jax.tree_util.keystr(path)] = np.asarray(leaf)
    out["step"] = np.asarray(state.step)
    return out


def restore_state(state: TrainState, arrays) -> TrainState:
    """`state` (a fresh `init_state` of the same config and optimiser) with the params, optimiser
    state and step of `state_arrays`. Raises KeyError naming an array the file lacks."""
    params = {n: jnp.asarray(arrays[f"params/{n}"], w.dtype) for n, w in state.params.items()}
    leaves, tree = jax.tree_util.tree_flatten_with_path(state.opt_state)
    opt = [jnp.asarray(arrays["opt/" + jax.tree_util.keystr(path)], leaf.dtype) for path, leaf in leaves]
    return dataclasses.replace(state, params=params, opt_state=jax.tree_util.tree_unflatten(tree, opt),
                               step=jnp.asarray(arrays["step"], jnp.int32))
