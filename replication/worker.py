"""One measurement in its own process: `python -m replication.worker TASK.json RESULT.json [RUN.json]`.

Each backend runs in a worker of its own (juliacall, torch and jax must not share a process, and
separate processes give clean timings and a clean peak-memory reading). The worker writes its own
result file (experiments/<id>.json in a study) atomically; a backend that cannot run writes
{"status": "unavailable", "reason": ...}. What it runs is the task of the claim module that planned
it (replication/claims/), looked up by the task's kind.
A worker that crashes or is killed leaves no result, and the driver records why. Every result
carries the worker's wall time and what the machine did meanwhile (`contention`, see hygiene.py).
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
import time
import traceback

from linattn.backends import BackendUnavailable, get_backend
from linattn.weights import atomic_write

from . import hygiene
from .claims import task_runner
from .speed import peak_rss_bytes


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


def run_task(task: dict) -> dict:
    """The result of one task: a probe of its backend, or the task of the claim it belongs to."""
    if task["kind"] == "probe":
        return {"info": get_backend(task["backend"]).info()}
    return task_runner(task["kind"])(task)


def main(argv=None):
    """`TASK.json RESULT.json [RUN.json]`: run the task, write its result; a timing task reads the
    machine description from RUN.json (measured once per run)."""
    die_with_driver()
    args = (argv or sys.argv[1:])[:3]
    task_path, out_path = args[:2]
    task = json.loads(open(task_path).read())
    if len(args) > 2 and "machine" not in task:
        machine = json.loads(open(args[2]).read()).get("machine")
        task = {**task, **({"machine": machine} if machine else {})}
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
    atomic_write(out_path, lambda f: f.write(json.dumps(result, indent=2).encode()))


if __name__ == "__main__":
    main()
