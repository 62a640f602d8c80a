"""One measurement in its own process: `python -m replication.worker TASK.json OUT.json`.

Each backend runs in a worker of its own (juliacall, torch and jax must not share a process, and
separate processes give clean timings and a clean peak-memory reading). The worker writes its
result atomically; a backend that cannot run writes {"status": "unavailable", "reason": ...}.
A worker that crashes or is killed leaves no result, and the driver records why. Every result
carries the worker's wall time and what the machine did meanwhile (`contention`, see hygiene.py).
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import sys
import time
import traceback

from linattn.weights import atomic_write

from . import hygiene


DRIVER_PID = "REPLICATION_DRIVER_PID"  # set by the driver: the worker must not outlive it


def die_with_driver() -> None:
    """Ask the kernel to kill this worker when its driver dies, kill -9 included (Linux's
    PR_SET_PDEATHSIG); exit at once if the driver is already gone."""
    driver = os.environ.get(DRIVER_PID)
    if not driver:
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return  # not Linux: the driver still ends its workers when it stops normally
    if os.getppid() != int(driver):  # the driver died before the request took effect
        os._exit(1)


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB


def run_task(task: dict) -> dict:
    kind = task["kind"]
    if kind == "probe":
        from linattn.backends import get_backend

        return {"info": get_backend(task["backend"]).info()}
    if kind == "speed":
        from .speed import measure

        return measure(task["backend"], task["model"], task["mode"], task["batch"], repeats=task["repeats"],
                       steps=task.get("steps"), threads=task["threads"], device=task.get("device", "cpu"),
                       machine=task.get("machine"))
    if kind == "uncached_validation":
        from .speed import validate_uncached

        return validate_uncached(task["backend"], task["model"], threads=task["threads"], limit_T=task["steps"])
    if kind == "attention":
        from linattn.backends import get_backend

        from .speed import pin_threads

        pin_threads(task["threads"])
        backend = get_backend(task["backend"])
        if not hasattr(backend, "time_attention"):
            return {"status": "unavailable", "reason": f"backend {task['backend']} has no time_attention"}
        if hasattr(backend, "warm_up"):
            backend.warm_up()  # the runtime's start-up (Julia: libjulia, Flux) stays out of the baseline
        base = peak_rss_bytes()
        times = backend.time_attention(task["attention"], task["batch"], task["T"], task["n_heads"], task["d_head"],
                                       task["repeats"], device=task.get("device", "cpu"))
        inside = backend.attention_peak_bytes() if hasattr(backend, "attention_peak_bytes") else None
        peak = max(0, peak_rss_bytes() - base) if inside is None else inside
        return {"seconds": times, "peak_memory_bytes": peak, "peak_memory_method": "backend" if inside is not None
                else "process", "backend_info": backend.info(task.get("device", "cpu"))}
    if kind == "train":
        from .train import train

        return train(task)
    if kind == "samples":
        from .samples import make_samples

        return make_samples(task)
    raise ValueError(f"unknown task kind {kind!r}")


def main(argv=None):
    die_with_driver()
    task_path, out_path = (argv or sys.argv[1:])[:2]
    task = json.loads(open(task_path).read())
    from linattn.backends import BackendUnavailable

    before, started = hygiene.counters(), time.monotonic()
    try:
        result = {"status": "ok", **run_task(task)}
    except BackendUnavailable as e:
        result = {"status": "unavailable", "reason": str(e)}
    except MemoryError:
        result = {"status": "out of memory", "reason": "MemoryError"}
    except Exception as e:  # recorded, so that the study goes on; the traceback goes to stderr
        traceback.print_exc()
        result = {"status": "failed", "reason": f"{type(e).__name__}: {e}"}
    result.setdefault("peak_rss_bytes", peak_rss_bytes())
    result["worker_seconds"] = time.monotonic() - started
    result["contention"] = hygiene.contention(before, hygiene.counters(), task.get("threads") or 1)
    atomic_write(out_path, lambda f: f.write(json.dumps(result).encode()))


if __name__ == "__main__":
    main()
