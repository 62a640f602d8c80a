"""The Julia backend: the Flux package `LinAttn` (julia/ in the repository), driven by juliacall.

It implements every method of `linattn.backends.Backend`: `time_window` (windows of steps after a
warm-up, the method of the PyTorch and JAX backends), `timed_generate` (timed by Julia after a
one-step warm-up; the warm-up's time, mostly compilation on the first call, is stored apart in
`model.compile_seconds[mode]`), and `warm_up` / `attention_peak_bytes` for the scaling task's
memory reading.

This module is the only importer of juliacall, and imports it lazily, on the first call that needs
Julia. Importing this module only looks for a Julia executable; where there is none it raises
`BackendUnavailable` with the ways to install one, before juliacall is imported (juliacall would
otherwise try to download Julia). The backend must run in its own process, never beside torch or
jax (notes/julia.md section 3: shared LLVM symbols crash): its first Julia call refuses to start
if either is already imported. `python -m replication ... --backend julia` is such a process.

Layout: a C-order numpy array (B, T, ...) is the same memory as a Julia array [..., T, B], so
arrays cross as `.T` views (`_to_julia`) and come back as copies transposed again
(`_from_julia`). Byte and token values are the same numbers on both sides.

Environment set before juliacall is imported (unless already set): PYTHON_JULIACALL_HANDLE_SIGNALS=yes
(Julia's signal handler, needed by its GC once threads > 1), PYTHON_JULIACALL_THREADS=1 (unless
JULIA_NUM_THREADS is set; the model code is not threaded, BLAS has its own threads), and
PYTHON_JULIAPKG_EXE=<the Julia found here>, so that juliapkg uses that Julia instead of downloading
another. PYTHON_JULIAPKG_OFFLINE is left to the user: the first run must install Flux and the other
Julia packages (network once); afterwards PYTHON_JULIAPKG_OFFLINE=yes keeps runs off the network.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .backends import TIME_ATTENTION_KINDS, BackendUnavailable
from .config import ConfigError, ModelConfig, check_mode
from .weights import check_params

NAME = "julia"
MIN_JULIA = (1, 10, 3)  # juliacall's requirement (its juliapkg.json: "^1.10.3")
DTYPES = ("float32", "float64")

INSTALL_HELP = (
    "the Julia backend needs Julia >= 1.10.3 and the Python package juliacall: install Julia with conda "
    "(`conda env create -f environment.yml`: julia and pyjuliacall from conda-forge), with juliaup "
    "(`curl -fsSL https://install.julialang.org | sh`, then a new shell) or from https://julialang.org/downloads "
    "(its bin/ folder on PATH), or set PYTHON_JULIAPKG_EXE to a julia executable; the first run installs "
    "Flux and the other Julia packages (internet needed once); see julia/README.md"
)


# --- finding Julia, before juliacall is imported --------------------------------------------------


def julia_version(exe) -> tuple | None:
    """(major, minor, patch) from `exe --version`, or None if it is not a working Julia."""
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    m = re.search(r"julia version (\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(g) for g in m.groups()) if m else None


def find_julia(env=os.environ, prefix=sys.prefix, home=Path.home()) -> tuple[str | None, str]:
    """Look for a Julia executable as juliapkg would, without downloading anything.

    Returns (path or None, where it was looked for). Order: PYTHON_JULIACALL_EXE and
    PYTHON_JULIAPKG_EXE; a Julia that juliapkg installed into this environment; `julia` on PATH
    (conda's, or juliaup's launcher); juliaup's default folder.
    """
    for var in ("PYTHON_JULIACALL_EXE", "PYTHON_JULIAPKG_EXE"):
        if env.get(var):
            return shutil.which(env[var]), f"{var}={env[var]}"
    depot = (env.get("JULIA_DEPOT_PATH") or "").split(os.pathsep)[0] or str(home / ".julia")
    projects = [env["PYTHON_JULIAPKG_PROJECT"]] if env.get("PYTHON_JULIAPKG_PROJECT") else []
    projects += [os.path.join(p, "julia_env") for p in (prefix, env.get("CONDA_PREFIX")) if p]
    projects.append(os.path.join(depot, "environments", "pyjuliapkg"))
    candidates = [os.path.join(p, "pyjuliapkg", "install", "bin", "julia") for p in projects]
    candidates += [shutil.which("julia", path=env.get("PATH")), str(home / ".juliaup" / "bin" / "julia")]
    for exe in candidates:
        if exe and os.path.isfile(exe) and os.access(exe, os.X_OK):
            return exe, exe
    return None, "PYTHON_JULIAPKG_EXE, juliapkg's install folder, PATH and ~/.juliaup/bin"


def require_julia(env=os.environ) -> str:
    """The Julia executable to use, or `BackendUnavailable` saying how to install one."""
    exe, where = find_julia(env)
    if exe is None:
        raise BackendUnavailable(f"Julia not found (looked at {where}); {INSTALL_HELP}")
    version = julia_version(exe)
    if version is None:
        raise BackendUnavailable(f"{exe} (from {where}) did not run as Julia (`{exe} --version` failed); {INSTALL_HELP}")
    if version < MIN_JULIA:
        raise BackendUnavailable(
            f"Julia {'.'.join(map(str, version))} at {exe} is too old: the Julia backend needs "
            f">= {'.'.join(map(str, MIN_JULIA))}; {INSTALL_HELP}"
        )
    if importlib.util.find_spec("juliacall") is None:
        raise BackendUnavailable(
            "the Julia backend needs the Python package juliacall: pip install -r requirements.txt "
            "(or pip install -e '.[julia]')"
        )
    return exe


def julia_package_dir(spec_file=Path(__file__).with_name("juliapkg.json")) -> Path:
    """The Julia package LinAttn that juliapkg.json develops, resolved now (its "path" is relative to
    the json's folder, so it exists only in a source checkout), or `BackendUnavailable` in one line."""
    spec = json.loads(spec_file.read_text())["packages"]["LinAttn"]
    folder = (spec_file.parent / spec["path"]).resolve()
    project = folder / "Project.toml"
    if not (project.is_file() and f'uuid = "{spec["uuid"]}"' in project.read_text()):
        raise BackendUnavailable(
            f"the Julia package LinAttn is not at {folder} (juliapkg.json's path resolves only in a source "
            "checkout): install this package from the repository with `pip install -e .`"
        )
    return folder


JULIA_EXE = require_julia()

_linattn_module = None  # the Julia module LinAttn, once juliacall has started
_jl_main = None


def _julia():
    """(Main, LinAttn) from juliacall, starting Julia on the first call."""
    global _linattn_module, _jl_main
    if _linattn_module is None:
        julia_package_dir()
        clash = [m for m in ("torch", "jax") if m in sys.modules]
        if clash:
            raise BackendUnavailable(
                f"the Julia backend must run in its own process, but {clash} is already imported here "
                "(juliacall beside torch or jax crashes: notes/julia.md section 3); run it in a worker "
                "process, e.g. `python -m replication ... --backend julia`"
            )
        os.environ.setdefault("PYTHON_JULIACALL_HANDLE_SIGNALS", "yes")
        if "JULIA_NUM_THREADS" not in os.environ:
            os.environ.setdefault("PYTHON_JULIACALL_THREADS", "1")
        if "PYTHON_JULIACALL_EXE" not in os.environ:
            os.environ.setdefault("PYTHON_JULIAPKG_EXE", JULIA_EXE)
        try:
            with _stdout_to_stderr():
                from juliacall import Main as jl

                jl.seval("using LinAttn")
        except Exception as e:  # juliacall raises plain Exceptions and JuliaErrors
            raise BackendUnavailable(
                f"juliacall could not load the Julia package LinAttn with {JULIA_EXE}: {e} "
                "(the first run needs the internet to install Julia packages, and PYTHON_JULIAPKG_OFFLINE "
                "must not be yes then)"
            ) from e
        _jl_main, _linattn_module = jl, jl.LinAttn
    return _jl_main, _linattn_module


@contextlib.contextmanager
def _stdout_to_stderr():
    """Send stdout to stderr meanwhile, at the file-descriptor level: juliapkg prints its progress,
    and lets Pkg print, to stdout, which the CLI keeps for its JSON."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


# --- the layout boundary ----------------------------------------------------------------------------


def _to_julia(x, dtype):
    """numpy (B, T, ...) -> a view that juliacall passes as a Julia array [..., T, B] (no copy)."""
    return np.ascontiguousarray(x, dtype=dtype).T


def _from_julia(x):
    """A Julia array [..., T, B] -> a numpy copy (B, T, ...), C-contiguous."""
    return np.ascontiguousarray(np.array(x).T)


# --- the backend API ----------------------------------------------------------------------------------


@dataclass
class JuliaModel:
    """A `LinAttn.Transformer` (a juliacall handle) with its config."""

    config: ModelConfig
    jl: object
    compile_seconds: dict = field(default_factory=dict)  # mode -> seconds of the warm-up step


def prepare(config: ModelConfig, params, device="cpu", dtype="float32") -> JuliaModel:
    if device != "cpu":
        raise ConfigError(f"the Julia backend runs on the CPU only, got device={device!r}")
    if dtype not in DTYPES:
        raise ConfigError(f"dtype must be one of {list(DTYPES)}, got {dtype!r}")
    check_params(config, params)
    jl, L = _julia()
    jconfig = L.ModelConfig(
        attention=config.attention,
        n_layers=config.n_layers,
        n_heads=config.n_heads,
        d_model=config.d_model,
        head=config.head,
        n_mixtures=config.n_mixtures,
        image_shape=tuple(int(n) for n in config.image_shape),
        dropout=float(config.dropout),
        feature_map=config.feature_map,
        n_features=config.n_features,
        layer_pattern=config.layer_pattern,
    )
    jparams = jl.seval("Dict{String,Any}")()
    for name, w in params.items():  # logical shapes: LinAttn.model_from_params is the boundary
        jparams[name] = np.ascontiguousarray(w, dtype=np.float32)
    float_type = jl.Float32 if dtype == "float32" else jl.Float64
    return JuliaModel(config, L.model_from_params(jconfig, jparams, float_type=float_type))


def params_of(model: JuliaModel) -> dict:
    _, L = _julia()
    return {str(n): np.ascontiguousarray(np.array(w), dtype=np.float32) for n, w in L.params_of(model.jl).items()}


def forward(model: JuliaModel, tokens):
    _, L = _julia()
    return _from_julia(L.forward(model.jl, _to_julia(tokens, np.int64)))


def bits_per_dim(model: JuliaModel, data, batch_size=32) -> float:
    _, L = _julia()
    return float(L.bits_per_dim(model.jl, _to_julia(data, np.int64), batch_size=int(batch_size)))


def generate(model: JuliaModel, mode, noise, steps=None, prefix=None):
    """As every backend's: (B, T) bytes drawn with `noise`; `prefix` (B, P) bytes are kept as given
    at positions t < P (completion of a partly given image) and fed through the model, and sampling
    starts after them, from the same noise positions as in the other backends."""
    check_mode(mode, model.config)
    noise = np.asarray(noise)
    if prefix is not None:
        if noise.ndim != 3 or noise.shape[2] != 2:
            raise ConfigError(f"noise must have shape (B, T, 2), got {noise.shape}")
        B, T = noise.shape[:2]
        prefix = np.asarray(prefix)
        if prefix.ndim != 2 or prefix.shape[0] != B or prefix.shape[1] > T:
            raise ConfigError(f"prefix must have shape (B={B}, P <= {T}), got {prefix.shape}")
        if prefix.size and (prefix.min() < 0 or prefix.max() > 255):
            raise ConfigError(f"prefix must hold bytes 0..255, got values {prefix.min()}..{prefix.max()}")
        prefix = _to_julia(prefix, np.int64)
    _, L = _julia()
    data = L.generate(model.jl, mode, _to_julia(noise, np.float64), steps=_steps(steps), prefix=prefix)
    return _from_julia(data).astype(np.uint8)


def compile_generation(model: JuliaModel, mode, batch) -> dict:
    """Nothing to do ahead: Julia compiles `generate` and `time_window` on their first call (the
    warm-up, whose time `timed_generate` stores apart)."""
    check_mode(mode, model.config)
    return {"step": "compiled", "how": "Julia (LinAttn), compiled on the first call", "reason": None,
            "compile_seconds": 0.0}


def timed_generate(model: JuliaModel, mode, noise, steps=None):
    """`generate` timed inside Julia after a one-step warm-up: returns (data, seconds); the warm-up's
    seconds (compilation, on the first call) go to `model.compile_seconds[mode]`."""
    check_mode(mode, model.config)
    _, L = _julia()
    data, seconds, compile_seconds = L.timed_generate(model.jl, mode, _to_julia(noise, np.float64), steps=_steps(steps))
    model.compile_seconds[mode] = float(compile_seconds)
    return _from_julia(data).astype(np.uint8), float(seconds)


def time_attention(kind, batch, T, n_heads, d_head, repeats, device="cpu"):
    """Seconds of `repeats` forward+backward passes (Zygote) of one causal attention on random
    (B, T, H, D) inputs, timed in Julia after a warm-up; kind one of `TIME_ATTENTION_KINDS["julia"]`
    (LinAttn's KINDS: "softmax", "softmax-chunked", "linear", "linear-favor"). The memory the passes
    took, measured inside Julia, is then `attention_peak_bytes()`."""
    global _attention_peak_bytes
    if device != "cpu":
        raise ConfigError(f"the Julia backend runs on the CPU only, got device={device!r}")
    if kind not in TIME_ATTENTION_KINDS[NAME]:
        raise BackendUnavailable(f"the Julia backend has no {kind!r} attention (only {', '.join(TIME_ATTENTION_KINDS[NAME])})")
    _, L = _julia()
    seconds, peak = L.time_attention_peak(kind, int(batch), int(T), int(n_heads), int(d_head), int(repeats))
    _attention_peak_bytes = int(peak)
    return [float(s) for s in seconds]


_attention_peak_bytes = None


def attention_peak_bytes() -> int | None:
    """Bytes the last `time_attention` took, measured inside Julia (growth of its peak resident size
    over the passes, compilation excluded); None before any."""
    return _attention_peak_bytes


def warm_up() -> None:
    """Start Julia and load LinAttn (and Flux), so that a memory baseline taken afterwards leaves out
    Julia's start-up."""
    _julia()


def time_window(model: JuliaModel, mode, batch, start, steps, seed=0) -> float:
    """Seconds to generate positions start .. start+steps-1 of `batch` images from the state those
    positions see (a cache of `start` random entries, or a random (S, z) state), timed in Julia; as
    the PyTorch and JAX backends' `time_window`. The first call for a batch compiles."""
    check_mode(mode, model.config)
    T = model.config.seq_len
    if not (0 <= start and 0 < steps and start + steps <= T):
        raise ConfigError(f"the window start={start}, steps={steps} must lie inside 0..{T}")
    _, L = _julia()
    return float(L.time_window(model.jl, mode, int(batch), int(start), int(steps), seed=int(seed)))


def uncached_step(model: JuliaModel, prefix):
    """The work of one softmax-uncached step after `prefix` (B, t) bytes: a full forward pass."""
    _, L = _julia()
    L.uncached_step(model.jl, _to_julia(prefix, np.int64))


def set_threads(threads) -> None:
    """Nothing to do now: Julia's threads are fixed when it starts (PYTHON_JULIACALL_THREADS, set by
    `replication.speed.pin_threads` before the first Julia call); BLAS follows OPENBLAS_NUM_THREADS."""


def info(device="cpu") -> dict:
    """Versions, threads and device; `device` is always the CPU (inputs.check_device refuses others)."""
    _, L = _julia()
    return {str(k): v for k, v in L.info().items()}


def _steps(steps):
    return None if steps is None else int(steps)
