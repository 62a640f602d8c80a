"""`replication speed`: seconds per generated image, beside the roofline floor of the same machine.

Whole images are timed (median and IQR over repeats after a warm-up, whose time, compilation
included, is reported apart). Two cases are extrapolated and say so (`"extrapolated": true`):
- `softmax-uncached`: step n re-runs the model on n positions, hours per CIFAR image. A sample of
  steps at several prefix lengths is timed, the cost c(n) = a + b n + c n^2 is fitted by least
  squares and summed over n = 1..T. `validate_uncached` checks the method against a full run.
- `--steps K` (the step modes): windows of K steps are timed at several positions t (from the
  state those positions see: every backend's `time_window`), the per-step cost a + b t fitted and
  summed over the T steps: exact for a constant (recurrent) or linearly growing (cached) step cost.
Every backend times by the same method: whole images by its `timed_generate`, windows by its
`time_window`, uncached steps by `uncached_step` under the same Python clock.
"""

from __future__ import annotations

import json
import os
import resource
import time

import numpy as np

from linattn.backends import get_backend
from linattn.config import FEATURE_MAPS, MODES
from linattn.weights import init_params

from . import roofline
from .inputs import UsageError, check_device, positive_int
from .presets import config_for_mode
from .provenance import provenance

UNCACHED_SAMPLES = 8  # prefix lengths timed for the uncached fit
UNCACHED_MIN_REPEATS = 3  # each sampled length at least this often (median), against timing noise
WINDOWS = 4  # positions timed for the step modes' fit
# The "generation" of a result timed without `compile_generation` (PyTorch: the eager step).
NOT_COMPILED = {"step": "eager", "how": "generate as called plainly (PyTorch: eager; JAX, Julia: compiled on the first call)",
                "reason": "compile_generation not called", "compile_seconds": 0.0}


def add_parser(sub, common):
    s = sub.add_parser("speed", help="time image generation with random weights of the paper's sizes")
    s.add_argument("--model", choices=["mnist", "cifar"], required=True)
    s.add_argument("--mode", choices=list(MODES), required=True)
    s.add_argument("--feature-map", choices=list(FEATURE_MAPS), default="elu",
                   help="linear attention's feature map: elu + 1 (the paper's) or FAVOR+ (linear-recurrent only)")
    s.add_argument("--layer-pattern", default="",
                   help="PAR: one letter per layer, a (attention + feed-forward) or f (feed-forward only), "
                   "e.g. afafafaf for mnist's 8 layers; default: every layer attends")
    s.add_argument("--batch", type=positive_int, default=1)
    s.add_argument("--repeats", type=positive_int, default=3, help="timed runs after the warm-up")
    s.add_argument("--steps", type=int, default=None, help="time K-step prefixes and extrapolate to the image")
    s.add_argument("--threads", type=positive_int, default=None, help="CPU threads (default: all cores)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--eager", action="store_true",
                   help="time the step as generate runs it unasked: PyTorch's eager step, not the compiled one")
    s.add_argument("--interleaved", type=positive_int, default=None, metavar="ROUNDS",
                   help="time the plain and the compiled step in turn, ROUNDS times each, in one process (needs --steps)")
    s.add_argument("--json", action="store_true", help="print the result as JSON")
    common(s)
    s.set_defaults(func=cmd_speed)


def cmd_speed(args):
    if args.steps is not None and args.steps < 2:
        raise UsageError(f"--steps must be >= 2 (a prefix of two or more steps), got {args.steps}")
    if args.feature_map != "elu" and MODES[args.mode] != "linear":
        raise UsageError(f"--feature-map {args.feature_map} needs a linear-attention mode (linear-recurrent); "
                         f"--mode {args.mode} runs softmax attention")
    if args.interleaved and (args.steps is None or args.mode == "softmax-uncached"):
        raise UsageError("--interleaved times windows of steps: give --steps K, and a mode other than softmax-uncached")
    threads = args.threads or os.cpu_count()
    pin_threads(threads)  # before the backend is imported
    check_device(args.device, get_backend(args.backend))
    config_for_mode(args.model, args.mode, args.feature_map, args.layer_pattern)  # refuses a bad pattern first
    if args.interleaved:
        results = interleaved(args.backend, args.model, args.mode, args.batch, args.interleaved, args.steps,
                              repeats=args.repeats, threads=threads, seed=args.seed, device=args.device,
                              feature_map=args.feature_map, layer_pattern=args.layer_pattern)
        print(json.dumps(results, indent=2) if args.json else table(results))
        return
    result = measure(args.backend, args.model, args.mode, args.batch, repeats=args.repeats,
                     steps=args.steps, threads=threads, seed=args.seed, device=args.device,
                     feature_map=args.feature_map, layer_pattern=args.layer_pattern, compile=not args.eager)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(summary_line(result))


def pin_threads(threads: int):
    """Thread pools of every numeric library, set before a backend is imported."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "PYTHON_JULIACALL_THREADS"):
        os.environ[var] = str(threads)
    os.environ.setdefault("XLA_FLAGS", f"--xla_cpu_multi_thread_eigen={'true' if threads > 1 else 'false'}")


def measure(backend_name, model_name, mode, batch, repeats=3, steps=None, threads=1, seed=0, device="cpu",
            machine=None, feature_map="elu", layer_pattern="", compile=True) -> dict:
    """Time generation and return the result dict (see the module docstring). `feature_map`
    "favor" times a FAVOR+ model (linear-recurrent only), `layer_pattern` a PAR model (its config
    is in the result). With `compile` the backend's `compile_generation` runs first (PyTorch
    compiles its step there); the result's "generation" says which step ran, and why."""
    pin_threads(threads)
    machine = machine or roofline.machine_in_subprocess(threads)
    config = config_for_mode(model_name, mode, feature_map, layer_pattern)
    backend = get_backend(backend_name)
    backend.set_threads(threads)
    model = backend.prepare(config, init_params(config, seed), device=device)
    generation = backend.compile_generation(model, mode, batch) if compile else NOT_COMPILED
    noise = np.random.default_rng(seed).random((batch, config.seq_len, 2), dtype=np.float32)
    T = config.seq_len
    if mode == "softmax-uncached":
        timing = _time_uncached(backend, model, batch, T, repeats, seed)
    elif steps is not None and steps < T:
        timing = _time_windows(backend, model, mode, batch, T, steps, repeats)
    else:
        timing = _time_whole(backend, model, mode, noise, repeats)
    per_image = timing.pop("seconds_per_image")
    return {
        "backend": backend_name,
        "model": model_name,
        "mode": mode,
        "batch": batch,
        "seq_len": T,
        "seconds_per_image": per_image,
        "images_per_second": 1.0 / per_image,
        **timing,
        "generation": generation,
        **roofline.roofline_seconds_per_image(config, mode, batch, machine),
        "machine": machine,
        "config": config.to_dict(),
        "seed": seed,
        "threads": threads,
        "backend_info": backend.info(device),
        "provenance": provenance(),
    }


def interleaved(backend_name, model_name, mode, batch, rounds, steps, repeats=1, threads=1, seed=0, device="cpu",
                feature_map="elu", layer_pattern="") -> list:
    """The step as `generate` runs it plainly, then compiled (`compile_generation`), timed in turn in
    one process `rounds` times (windows of `steps` steps, as `--steps`), the machine's floor measured
    before every round: an A/B comparison that a busy machine, whose load changes from minute to
    minute, does not decide. Returns a result per step ("eager", "compiled") with the medians over
    the rounds of seconds per image and of the floor, and every round's values."""
    pin_threads(threads)
    config = config_for_mode(model_name, mode, feature_map, layer_pattern)
    backend = get_backend(backend_name)
    backend.set_threads(threads)
    params = init_params(config, seed)
    models = {"eager": backend.prepare(config, params, device=device), "compiled": backend.prepare(config, params, device=device)}
    generation = {"eager": NOT_COMPILED, "compiled": backend.compile_generation(models["compiled"], mode, batch)}
    T = config.seq_len
    rows = {name: {"seconds_per_image": [], "roofline_seconds_per_image": [], "bandwidth_GBps": []} for name in models}
    for _ in range(rounds):
        machine = roofline.machine_in_subprocess(threads)
        for name, model in models.items():
            timing = _time_windows(backend, model, mode, batch, T, steps, repeats)
            row = rows[name]
            row["seconds_per_image"].append(timing["seconds_per_image"])
            row["roofline_seconds_per_image"].append(
                roofline.roofline_seconds_per_image(config, mode, batch, machine)["roofline_seconds_per_image"])
            row["bandwidth_GBps"].append(machine["bandwidth_GBps"])
    bound = roofline.roofline_seconds_per_image(config, mode, batch, machine)["bound"]
    return [{"backend": backend_name, "model": model_name, "mode": mode, "batch": batch, "seq_len": T,
             "seconds_per_image": float(np.median(row["seconds_per_image"])),
             "roofline_seconds_per_image": float(np.median(row["roofline_seconds_per_image"])), "bound": bound,
             "machine": {"bandwidth_GBps": float(np.median(row["bandwidth_GBps"]))}, "extrapolated": True,
             "method": f"{rounds} rounds, each: the floor, then windows of {steps} steps of every step in turn",
             "rounds": row, "generation": generation[name], "threads": threads, "backend_info": backend.info(device),
             "provenance": provenance()}
            for name, row in rows.items()]


def measure_task(task) -> dict:
    """A study's speed task (claims.generation); the machine comes from the run, measured once. The
    step is compiled only where the task asks ("compile": true): compiling PyTorch's step takes about
    a minute per model and batch on 2 cores, more than the cpu profile's budget allows for its tasks."""
    result = measure(task["backend"], task["model"], task["mode"], task["batch"], repeats=task["repeats"],
                     steps=task.get("steps"), threads=task["threads"], device=task.get("device", "cpu"),
                     machine=task.get("machine"), feature_map=task.get("feature_map", "elu"),
                     layer_pattern=task.get("layer_pattern", ""), compile=task.get("compile", False))
    if task.get("machine"):
        result.pop("machine")  # stored once, in run.json
    return result


def validate_task(task) -> dict:
    """A study's uncached-validation task (claims.generation)."""
    return validate_uncached(task["backend"], task["model"], threads=task["threads"], limit_T=task["steps"])


def attention_task(task) -> dict:
    """A study's scaling task (claims.scaling): forward+backward passes of one attention kind, with
    the memory they took (measured inside the backend where it can, else the process's growth)."""
    pin_threads(task["threads"])
    backend = get_backend(task["backend"])
    backend.set_threads(task["threads"])
    backend.warm_up()  # the runtime's start-up (Julia: libjulia, Flux) stays out of the baseline
    base = peak_rss_bytes()
    times = backend.time_attention(task["attention"], task["batch"], task["T"], task["n_heads"], task["d_head"],
                                   task["repeats"], device=task.get("device", "cpu"))
    inside = backend.attention_peak_bytes()
    peak = max(0, peak_rss_bytes() - base) if inside is None else inside
    return {"seconds": times, "peak_memory_bytes": peak, "peak_memory_method": "process" if inside is None else "backend",
            "backend_info": backend.info(task.get("device", "cpu"))}


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def _stats(xs):
    xs = np.asarray(xs, dtype=np.float64)
    q1, med, q3 = np.percentile(xs, [25, 50, 75])
    return {"median": float(med), "iqr": float(q3 - q1)}


def _generate_seconds(backend, model, mode, noise, steps=None):
    """Wall time of one generation call, as every backend times it (`timed_generate`)."""
    return backend.timed_generate(model, mode, noise, steps)[1]


def _time_whole(backend, model, mode, noise, repeats):
    B = noise.shape[0]
    warm = _generate_seconds(backend, model, mode, noise)
    runs = [_generate_seconds(backend, model, mode, noise) / B for _ in range(repeats)]
    s = _stats(runs)
    return {"seconds_per_image": s["median"], "iqr": s["iqr"], "repeats": runs, "warmup_seconds": warm,
            "compile_seconds": max(0.0, warm - s["median"] * B), "extrapolated": False, "method": "whole images"}


def _time_windows(backend, model, mode, batch, T, steps, repeats):
    """Per-step cost at WINDOWS positions, each the median of `repeats` windows of `steps` steps;
    a + b t fitted by least squares and summed over t = 0..T-1."""
    starts = sorted({int(s) for s in np.linspace(0, T - steps, WINDOWS)})
    warm = backend.time_window(model, mode, batch, starts[-1], steps)
    for s in starts:  # first steps at a new position pay one-off costs (new shapes): not timed
        warm += backend.time_window(model, mode, batch, s, min(2, steps))
    per_step = [float(np.median([backend.time_window(model, mode, batch, s, steps, seed=r) for r in range(repeats)])) / steps
                for s in starts]
    centres = [s + (steps - 1) / 2 for s in starts]
    b, a = np.polyfit(centres, per_step, 1) if len(starts) > 1 else (0.0, per_step[0])
    t = np.arange(T)
    total = float(np.maximum(a + b * t, 0.0).sum())
    return {"seconds_per_image": total / batch, "iqr": None, "repeats": None, "warmup_seconds": warm,
            "compile_seconds": None, "extrapolated": True,
            "method": f"windows of {steps} steps at positions {starts}, per-step cost a + b t summed over {T} steps",
            "fit": {"starts": starts, "seconds_per_step": per_step, "a": float(a), "b": float(b)}}


def uncached_lengths(T, samples=UNCACHED_SAMPLES):
    return sorted({int(round(n)) for n in np.linspace(1, T, samples)})


def _time_uncached(backend, model, batch, T, repeats, seed):
    """Time single uncached steps at sampled prefix lengths, fit a + b n + c n^2, sum over n=1..T."""
    rng = np.random.default_rng(seed)
    lengths = uncached_lengths(T)
    prefix = rng.integers(0, 256, size=(batch, T))
    t0 = time.perf_counter()
    backend.uncached_step(model, prefix[:, :T])  # warm-up at the longest length (compiles in JAX)
    warm = time.perf_counter() - t0
    costs = []
    for n in lengths:
        runs = []
        for _ in range(max(repeats, UNCACHED_MIN_REPEATS)):
            t = time.perf_counter()
            backend.uncached_step(model, prefix[:, :n])
            runs.append(time.perf_counter() - t)
        costs.append(float(np.median(runs)))
    coef = np.polyfit(lengths, costs, 2)
    n = np.arange(1, T + 1)
    total = float(np.maximum(np.polyval(coef, n), 0.0).sum())
    return {"seconds_per_image": total / batch, "iqr": None, "repeats": None, "warmup_seconds": warm,
            "compile_seconds": None, "extrapolated": True,
            "method": f"{len(lengths)} prefix lengths timed ({max(repeats, UNCACHED_MIN_REPEATS)} repeats each), cost a + b n + c n^2 summed over n = 1..{T}",
            "fit": {"lengths": lengths, "seconds": costs, "coefficients": [float(c) for c in coef]}}


def validate_uncached(backend_name, model_name, batch=1, repeats=1, threads=1, seed=0, device="cpu", limit_T=None):
    """Extrapolated vs measured seconds per image for softmax-uncached on a model small enough to
    run whole: returns both and the relative error of the extrapolation."""
    pin_threads(threads)
    config = config_for_mode(model_name, "softmax-uncached")
    backend = get_backend(backend_name)
    model = backend.prepare(config, init_params(config, seed), device=device)
    T = config.seq_len if limit_T is None else limit_T
    extrapolated = _time_uncached(backend, model, batch, T, repeats, seed)["seconds_per_image"]
    noise = np.random.default_rng(seed).random((batch, config.seq_len, 2), dtype=np.float32)
    measured = _generate_seconds(backend, model, "softmax-uncached", noise, T) / batch
    return {"model": model_name, "steps": T, "extrapolated_seconds_per_image": extrapolated,
            "measured_seconds_per_image": measured, "relative_error": (extrapolated - measured) / measured}


def cost_per_step(backend_name, model_name, mode, batch, positions, steps, repeats, machine, threads=None, seed=0) -> dict:
    """Seconds of one generation step as the position grows (notebook 01), with random weights of
    the paper's sizes: at `positions` positions t spread over 0..T-steps, the step modes time
    `steps` steps from the state t sees (`time_window`, the median of `repeats` windows, after a
    warm-up), softmax-uncached one step (`uncached_step`: a forward over the t+1 bytes so far, long
    enough to time once, after a warm-up at the longest). Beside them the roofline floor of every
    step on `machine` (`roofline.step_seconds`)."""
    config = config_for_mode(model_name, mode)
    T = config.seq_len
    backend = get_backend(backend_name)
    if threads:  # None: as the process is set (notebook.setup pins it)
        backend.set_threads(threads)
    model = backend.prepare(config, init_params(config, seed))
    starts = sorted({int(s) for s in np.linspace(0, T - steps, positions)})
    if mode == "softmax-uncached":
        prefix = np.random.default_rng(seed).integers(0, 256, (batch, T))
        backend.uncached_step(model, prefix[:, : starts[-1] + 1])
        seconds = []
        for s in starts:
            t0 = time.perf_counter()
            backend.uncached_step(model, prefix[:, : s + 1])
            seconds.append(time.perf_counter() - t0)
    else:
        backend.time_window(model, mode, batch, starts[-1], steps)
        seconds = [float(np.median([backend.time_window(model, mode, batch, s, steps, seed=r) for r in range(repeats)])) / steps
                   for s in starts]
    return {"positions": starts, "seconds_per_step": seconds,
            "roofline_seconds_per_step": roofline.step_seconds(config, mode, batch, machine).tolist(), "T": T,
            "config": config.to_dict()}


def summary_line(r) -> str:
    ext = " (extrapolated)" if r["extrapolated"] else ""
    return (f"{r['backend']:6s} {r['model']:5s} {r['mode']:17s} batch {r['batch']:4d}: "
            f"{r['seconds_per_image']:.4g} s/image{ext}, {r['images_per_second']:.4g} images/s; "
            f"roofline {r['roofline_seconds_per_image']:.4g} s/image ({r['bound']}-bound), "
            f"{r['seconds_per_image'] / r['roofline_seconds_per_image']:.2f}x the floor; {_step(r)} step")


def _step(r) -> str:
    g = r.get("generation") or {}
    return g.get("step", "?") + (f" ({g['reason']})" if g.get("reason") else "")


TABLE_COLUMNS = ("backend", "model", "mode", "batch", "s/image", "floor s/image", "x floor", "bound", "GB/s",
                 "step", "method")


def table(results) -> str:
    """One text table of speed results (`measure`'s dicts): a row per backend, model, mode and batch,
    with seconds per image, the roofline floor measured in the same run, their ratio, the bandwidth
    the run measured, and which step ran (compiled or eager, and why)."""
    rows = [TABLE_COLUMNS]
    for r in sorted(results, key=lambda r: (r["backend"], r["model"], r["mode"], r["batch"])):
        machine = r.get("machine") or {}
        rows.append((r["backend"], r["model"], r["mode"], str(r["batch"]), f"{r['seconds_per_image']:.4g}",
                     f"{r['roofline_seconds_per_image']:.4g}", f"{r['seconds_per_image'] / r['roofline_seconds_per_image']:.2f}",
                     r["bound"], f"{machine['bandwidth_GBps']:.1f}" if machine else "-", _step(r),
                     "extrapolated" if r["extrapolated"] else "whole images"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(TABLE_COLUMNS))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join([lines[0], "  ".join("-" * w for w in widths), *lines[1:]])
