"""Measurement hygiene: was the machine quiet while a measurement ran?

Every worker reads the counters below before and after its task, and the driver decides from them
whether the measurement counts (the thresholds and their reasons are in replication/verdicts.py):

    own CPU share   = CPU seconds of the worker (all its threads, and its children)
                      / (wall seconds x threads)
    others' cores   = (CPU seconds the whole machine was busy, steal included - the worker's own)
                      / wall seconds: how many cores other processes (or the hypervisor) took
    load average    = /proc/loadavg before and after

The own share alone cannot tell contention from a step that simply does not use every thread
(batch-1 generation is mostly one thread), so the verdict rests on the others' cores, which the
machine's /proc/stat counts directly. Where /proc/stat cannot be read, nothing is judged contended
and the record says the counters are missing.
"""

from __future__ import annotations

import os
import time

from . import verdicts

TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _machine_busy_seconds() -> float | None:
    """Seconds all CPUs spent busy since boot (user, nice, system, irq, softirq, steal): /proc/stat."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    values = [int(v) for v in fields[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (values + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / TICK


def _own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def counters() -> dict:
    """A reading to pass to `contention` after the measurement."""
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    return {"wall": time.monotonic(), "own": _own_cpu_seconds(), "busy": _machine_busy_seconds(), "load": load}


def contention(before: dict, after: dict, threads: int) -> dict:
    """What the machine did between two readings, and whether that counts as contended."""
    wall = max(after["wall"] - before["wall"], 1e-9)
    own = after["own"] - before["own"]
    record = {"wall_seconds": wall, "cpu_seconds": own, "threads": threads, "cpus": os.cpu_count(),
              "own_cpu_share": own / (wall * max(threads, 1)),
              "load_before": before["load"], "load_after": after["load"]}
    if before["busy"] is None or after["busy"] is None:
        return {**record, "other_cores": None, "contended": False, "why": "no /proc/stat: contention not measured"}
    others = max(0.0, (after["busy"] - before["busy"]) - own) / wall
    contended = others > verdicts.CONTENDED_CORES
    why = (f"other processes used {others:.2f} cores on average (more than {verdicts.CONTENDED_CORES:g})"
           if contended else None)
    return {**record, "other_cores": others, "contended": contended, "why": why}


def busy_cores_now(seconds: float = 1.0) -> float | None:
    """Cores the whole machine keeps busy over the next `seconds` (this process is idle meanwhile)."""
    a = _machine_busy_seconds()
    time.sleep(seconds)
    b = _machine_busy_seconds()
    return None if a is None or b is None else (b - a) / seconds


def wait_for_quiet(max_seconds: float) -> float | None:
    """Wait (at most `max_seconds`) until other processes use fewer than CONTENDED_CORES cores;
    return the last reading of busy cores."""
    deadline = time.monotonic() + max_seconds
    busy = busy_cores_now(min(1.0, max_seconds) if max_seconds > 0 else 0.1)
    while busy is not None and busy > verdicts.CONTENDED_CORES and time.monotonic() < deadline:
        busy = busy_cores_now(1.0)
    return busy
