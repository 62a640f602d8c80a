"""The checkpoint format shared by every backend (DESIGN section 3, "Weights").

A checkpoint is a folder with `config.json` (a `ModelConfig`) and `weights.npz` (float32, C order,
PyTorch conventions: a Linear weight is (out, in)). Writes are atomic: a reader never sees a
half-written file, and an interrupted write leaves the old checkpoint intact.

Names and shapes (C = d_model, D = d_head, m = n_features, i = 0..n_layers-1):

    embed.weight (257, C/2)
    layers.{i}.attn.{q,k,v,o}.weight (C, C), .bias (C)
    layers.{i}.attn.feature_projection (m, D)   FAVOR+ only (feature_map = "favor"): W of its
                                                feature map, shared by the layer's heads; drawn
                                                once (`favor_projection`), never trained
    layers.{i}.norm1/norm2.{weight,bias} (C)
    layers.{i}.ff1.weight (4C, C), .bias (4C)   layers.{i}.ff2.weight (C, 4C), .bias (C)
    norm.{weight,bias} (C)                      head.weight (3M or 256, C), .bias

A feed-forward-only layer (an "f" of layer_pattern, PAR) has no attn.* and no norm1 entries: only
norm2, ff1 and ff2.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .config import N_FEATURES, VOCAB, ConfigError, ModelConfig

FIXED = ("feature_projection",)  # weights drawn once at initialisation and never trained (last part of the name)


def is_trained(name: str) -> bool:
    """Whether training updates the weight `name`: every one but those in FIXED."""
    return name.rsplit(".", 1)[-1] not in FIXED


def param_shapes(config: ModelConfig) -> dict[str, tuple]:
    """Every parameter's name and shape, in the order of the format's table."""
    C = config.d_model
    shapes = {"embed.weight": (VOCAB, C // 2)}
    for i in range(config.n_layers):
        p = f"layers.{i}"
        attends = config.has_attention(i)
        for n in "qkvo" if attends else "":
            shapes[f"{p}.attn.{n}.weight"] = (C, C)
            shapes[f"{p}.attn.{n}.bias"] = (C,)
        if attends and config.feature_map == "favor":
            shapes[f"{p}.attn.feature_projection"] = (config.n_features, config.d_head)
        for n in ("norm1", "norm2") if attends else ("norm2",):
            shapes[f"{p}.{n}.weight"] = (C,)
            shapes[f"{p}.{n}.bias"] = (C,)
        shapes[f"{p}.ff1.weight"] = (4 * C, C)
        shapes[f"{p}.ff1.bias"] = (4 * C,)
        shapes[f"{p}.ff2.weight"] = (C, 4 * C)
        shapes[f"{p}.ff2.bias"] = (C,)
    shapes["norm.weight"] = (C,)
    shapes["norm.bias"] = (C,)
    shapes["head.weight"] = (config.n_outputs, C)
    shapes["head.bias"] = (config.n_outputs,)
    return shapes


def init_params(config: ModelConfig, seed: int = 0) -> dict[str, np.ndarray]:
    """Random float32 parameters: Linear weights and biases U(-1/sqrt(in), 1/sqrt(in)) (PyTorch's
    default), the embedding N(0, 1), LayerNorm weight 1 and bias 0; FAVOR+'s projections
    (`favor_projection`, one per layer) drawn after all the others, so that the other weights are
    those of the elu model of the same seed."""
    rng = np.random.default_rng(seed)
    params = {}
    shapes = param_shapes(config)
    for name, shape in shapes.items():
        if not is_trained(name):
            continue
        if name == "embed.weight":
            w = rng.standard_normal(shape)
        elif ".norm" in name or name.startswith("norm."):
            w = np.ones(shape) if name.endswith("weight") else np.zeros(shape)
        else:
            fan_in = shapes[name.rsplit(".", 1)[0] + ".weight"][1]
            w = rng.uniform(-1.0, 1.0, shape) / np.sqrt(fan_in)
        params[name] = w.astype(np.float32)
    for name in (n for n in shapes if n.endswith(".feature_projection")):
        params[name] = favor_projection(config.n_features, config.d_head, rng).astype(np.float32)
    return {n: params[n] for n in shapes}  # in the format's order


def favor_projection(n_features: int, d_head: int, rng: np.random.Generator) -> np.ndarray:
    """FAVOR+'s W (n_features, d_head), positive orthogonal random features (Choromanski et al.
    2020, arXiv 2009.14794, Sec. 2.4): blocks of d_head orthogonal rows, each block the Q of the
    QR factorisation of a standard Gaussian (d_head, d_head) matrix with the signs of R's diagonal
    moved into Q (so Q is Haar-distributed and does not depend on the LAPACK in use), stacked and
    cut to n_features rows; then every row scaled to the length of an independent standard
    Gaussian d_head-vector (chi-distributed), so that each row alone is N(0, I) as in the
    unstructured estimator, while the rows of a block stay orthogonal (less variance)."""
    blocks = []
    for _ in range(-(-n_features // d_head)):
        q, r = np.linalg.qr(rng.standard_normal((d_head, d_head)))
        blocks.append((q * np.sign(np.diag(r))).T)  # rows orthonormal
    w = np.concatenate(blocks)[:n_features]
    return w * np.linalg.norm(rng.standard_normal((n_features, d_head)), axis=1, keepdims=True)


def timing_projection(d_head: int, seed: int = 0) -> np.ndarray:
    """The float32 FAVOR+ projection (N_FEATURES, d_head) with which every backend times the
    "linear-favor" attention alone (`time_attention`)."""
    return favor_projection(N_FEATURES, d_head, np.random.default_rng(seed)).astype(np.float32)


def check_params(config: ModelConfig, params: dict, source="weights") -> None:
    """Refuse parameters whose names or shapes do not match the config."""
    expected = param_shapes(config)
    missing = [n for n in expected if n not in params]
    extra = [n for n in params if n not in expected]
    if missing or extra:
        raise ConfigError(
            f"{source}: parameter names do not match the config "
            f"(missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {extra[:5]}{'...' if len(extra) > 5 else ''}); "
            "was the checkpoint written for another n_layers, layer_pattern, feature_map or head?"
        )
    for n, shape in expected.items():
        if tuple(np.shape(params[n])) != shape:
            raise ConfigError(
                f"{source}: {n} has shape {tuple(np.shape(params[n]))}, the config needs {shape}"
            )


def save_checkpoint(path, config: ModelConfig, params: dict) -> Path:
    """Write `config.json` and `weights.npz` into the folder `path`, each atomically."""
    check_params(config, params)
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    arrays = {n: np.ascontiguousarray(np.asarray(params[n], dtype=np.float32)) for n in param_shapes(config)}
    atomic_write(path / "weights.npz", lambda f: np.savez(f, **arrays))
    atomic_write(path / "config.json", lambda f: f.write(json.dumps(config.to_dict(), indent=2).encode()))
    return path


def load_checkpoint(path) -> tuple[ModelConfig, dict[str, np.ndarray]]:
    """Read a checkpoint folder; every fault is a `ConfigError` that names the file: a missing,
    empty or unreadable file, parameters that do not fit the config, weights that are not float32
    or not finite."""
    path = Path(path)
    if not path.is_dir():
        raise ConfigError(f"checkpoint {path} is not a folder; it should hold config.json and weights.npz")
    for name in ("config.json", "weights.npz"):
        if not (path / name).is_file():
            raise ConfigError(f"checkpoint {path} has no {name}")
    config = ModelConfig.from_json(path / "config.json")
    file = path / "weights.npz"
    if file.stat().st_size == 0:
        raise ConfigError(f"{file} is empty (0 bytes; a full disk or an interrupted copy?); "
                          "copy or write the checkpoint again")
    try:
        with np.load(file, allow_pickle=False) as z:
            params = {n: z[n] for n in z.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise ConfigError(f"{file} is not a readable .npz file: {e}") from None
    check_params(config, params, source=str(file))
    for n, w in params.items():
        if w.dtype != np.float32:
            raise ConfigError(f"{file}: {n} has dtype {w.dtype}; every weight must be float32 "
                              "(write checkpoints with linattn.weights.save_checkpoint)")
        if not np.isfinite(w).all():
            raise ConfigError(f"{file}: {n} holds {int((~np.isfinite(w)).sum())} NaN or infinite value(s); "
                              "the checkpoint is damaged or its training diverged")
    return config, params


def atomic_write(path, write) -> None:
    """Call `write(file)` on a temporary file beside `path`, then rename it over `path`."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; the final file gets the usual permissions
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
