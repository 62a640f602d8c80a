"""The PyTorch backend: every method of `linattn.backends.Backend`."""

from __future__ import annotations

import time

import numpy as np
import torch

from ..backends import BackendUnavailable
from ..config import ConfigError, ModelConfig, check_mode
from ..weights import check_params, timing_projection
from . import attention as attn
from . import compiled as _compiled
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


def generate(model, mode, noise, steps=None, prefix=None):
    noise = torch.as_tensor(np.asarray(noise), device=_device(model))
    if prefix is not None:
        prefix = torch.as_tensor(np.asarray(prefix, dtype=np.int64), device=_device(model))
    return _gen.generate(model, mode, noise, steps, prefix).cpu().numpy().astype(np.uint8)


def compile_generation(model, mode, batch) -> dict:
    """softmax-cached and linear-recurrent: compile the step for `batch` images (`compiled.py`:
    inductor, weights packed for the batch), so that `generate` and `time_window` at that batch run
    it; on a GPU, or where compiling fails (no C++ compiler), they keep the eager step and the result
    says why. softmax-uncached re-runs the eager parallel form."""
    check_mode(mode, model.config)
    if mode == "softmax-uncached":
        return {"step": "eager", "how": "Transformer.forward (eager)", "reason": "softmax-uncached is not compiled",
                "compile_seconds": 0.0}
    if _device(model).type != "cpu":
        return {"step": "eager", "how": "Transformer.step (eager)", "reason": "the compiled step is for the CPU",
                "compile_seconds": 0.0}
    return _compiled.compile_step(model, batch)


def timed_generate(model, mode, noise, steps=None):
    """`generate` and its wall-clock seconds (the bytes copied back to the host inside the clock)."""
    t = time.perf_counter()
    data = generate(model, mode, noise, steps)
    return data, time.perf_counter() - t


@torch.inference_mode()
def uncached_step(model, prefix):
    """The work of one softmax-uncached step after `prefix` (B, t) bytes: a full forward pass."""
    tokens = input_tokens(torch.as_tensor(np.asarray(prefix, dtype=np.int64), device=_device(model)))
    model(tokens)[:, -1].sum().item()


def info(device="cpu") -> dict:
    """Versions, threads and the device used (its name for a GPU) and how timings are taken."""
    out = {"backend": NAME, "version": torch.__version__, "threads": torch.get_num_threads(), "device": "cpu",
           "timer": "time.perf_counter"}
    if str(device).startswith("cuda"):
        dev = torch.device(device)
        out.update(device=f"{dev}: {torch.cuda.get_device_name(dev)}", cuda=torch.version.cuda,
                   timer="time.perf_counter after torch.cuda.synchronize (start and end)")
    return out


def _sync(dev):
    """Wait for the GPU's queued work, so that a clock read after it covers that work."""
    if torch.device(dev).type == "cuda":
        torch.cuda.synchronize(dev)


def set_threads(threads):
    torch.set_num_threads(threads)


def warm_up():
    """Nothing to start: importing this module started PyTorch."""


def attention_peak_bytes():
    """None: the driver measures the worker process's growth (PyTorch on the CPU keeps no count)."""
    return None


def time_attention(kind, batch, T, n_heads, d_head, repeats, device="cpu"):
    """Seconds of `repeats` forward+backward passes of one causal attention (after a warm-up) on
    random (B, T, H, D) inputs; kind is one of `attention.KINDS` ("softmax": the (T, T) scores
    materialised, as in every backend; "softmax-fused": PyTorch's scaled_dot_product_attention;
    "softmax-chunked"; "linear"; "linear-favor", with a FAVOR+ projection of N_FEATURES rows)."""
    if kind not in attn.KINDS:
        raise BackendUnavailable(f"the PyTorch backend has no {kind!r} attention (only {', '.join(attn.KINDS)})")
    fn = attn.KINDS[kind].parallel
    q, k, v = (torch.randn(batch, T, n_heads, d_head, device=device, requires_grad=True) for _ in range(3))
    args = [torch.as_tensor(timing_projection(d_head), device=device)] if attn.KINDS[kind].projected else []
    times = []
    for i in range(repeats + 1):
        _sync(device)
        t = time.perf_counter()
        fn(q, k, v, *args).sum().backward()
        _sync(device)
        q.grad = k.grad = v.grad = None
        if i:
            times.append(time.perf_counter() - t)
    return times


def _late(state, start, g):
    """A layer's state as position `start` sees it: random values (positive, as a normaliser must
    be), and a cache's fill position set to `start`."""
    return tuple(x.uniform_(1.0, 2.0, generator=g) if torch.is_tensor(x) else start for x in state)


@torch.inference_mode()
def time_window(model, mode, batch, start, steps, seed=0):
    """Seconds to generate positions start .. start+steps-1 of `batch` images from the state those
    positions see: a key/value cache holding `start` (random) entries, or an (S, z) state, whose
    cost does not depend on its content. Lets a speed run sample late positions cheaply."""
    config = model.config
    check_mode(mode, config)
    T = config.seq_len
    if not (0 <= start and 0 < steps and start + steps <= T):
        raise ConfigError(f"the window start={start}, steps={steps} must lie inside 0..{T}")
    g = torch.Generator().manual_seed(seed)
    dev, dtype = _device(model), model.embed.weight.dtype
    step = _gen.stepper(model, batch, T)  # the compiled step where compile_generation made one
    step.state = [None if s is None else _late(s, start, g) for s in step.state]
    u = torch.rand(steps, batch, 2, generator=g).to(dev, dtype)
    token = torch.randint(0, 256, (batch,), generator=g).to(dev)
    _sync(dev)
    t0 = time.perf_counter()
    for i in range(steps):
        token = step(token, start + i, u[i])
    _sync(dev)
    token.cpu()
    return time.perf_counter() - t0
