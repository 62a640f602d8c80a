"""The set-up every notebook shares: threads pinned, the folder it writes to, the study it reads."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .run import newest_results
from .speed import pin_threads


def setup(name, smoke, threads=None, out_dir=None, results_dir=None):
    """Pin threads (one in smoke mode: steady on a shared machine; else all cores) for this process
    and the backends it starts. Smoke mode writes to `out_dir` or a new temporary folder; otherwise
    the notebook reads `results_dir` (default: the newest finished study) and writes to its
    notebooks/ folder. Returns (threads, out_dir, results_dir)."""
    threads = threads or (1 if smoke else os.cpu_count())
    pin_threads(threads)
    if smoke:
        out_dir = Path(out_dir or tempfile.mkdtemp(prefix=f"{name}-"))
    else:
        results_dir = Path(results_dir) if results_dir else newest_results()
        out_dir = Path(out_dir or results_dir / "notebooks")
    out_dir.mkdir(parents=True, exist_ok=True)
    print("writing to", out_dir, "" if smoke else f"; reading {results_dir}")
    return threads, out_dir, results_dir
