"""One command for a user who has Julia (`make julia-check`): instantiate the Julia project, run its
`Pkg.test()`, run the Python-Julia parity tests, then print a Julia vs PyTorch vs JAX table of
generation speed for the three modes at batch 1 and at the best of BATCHES.

Each timing is one `replication speed` process (one backend per process: juliacall beside torch or
jax crashes), timed by the same method in every backend: windows of STEPS steps after a warm-up.
Where Julia is missing it says so in one line, with how to get it, and exits with 1.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from linattn.backends import BACKENDS, BackendUnavailable
from linattn.config import MODES

ROOT = Path(__file__).resolve().parents[1]
BATCHES = (1, 16, 64)
STEPS = 16  # steps per timed window (`replication speed --steps`)


def run(argv, **kwargs) -> subprocess.CompletedProcess:
    print("+", " ".join(map(str, argv)), file=sys.stderr, flush=True)
    return subprocess.run(list(map(str, argv)), cwd=ROOT, **kwargs)


def julia_exe() -> str:
    """The Julia executable, or exit with one line saying how to get one."""
    try:
        from linattn import julia_backend
    except BackendUnavailable as e:
        sys.exit(f"julia-check: {e}")
    return julia_backend.JULIA_EXE


def speed(backend, model, mode, batch, steps=STEPS) -> dict | None:
    proc = run([sys.executable, "-m", "replication", "speed", "--backend", backend, "--model", model, "--mode", mode,
                "--batch", batch, "--steps", steps, "--repeats", 1, "--json"], capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"{backend} {mode} batch {batch}: failed: {proc.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout)


def table(results: dict, model: str) -> str:
    """Rows backend x mode: images/s at batch 1 and at the best batch (with that batch)."""
    lines = [f"Generation speed, {model} at the paper's size (images/s; windows of {STEPS} steps after warm-up)",
             f"{'backend':8s} {'mode':17s} {'batch 1':>10s} {'best batch':>16s}"]
    for backend in BACKENDS:
        for mode in MODES:
            runs = [r for r in results.get((backend, mode), []) if r]
            one = next((r for r in runs if r["batch"] == 1), None)
            best = max(runs, key=lambda r: r["images_per_second"], default=None)
            first = f"{one['images_per_second']:.4g}" if one else "-"
            top = f"{best['images_per_second']:.4g} (b{best['batch']})" if best else "-"
            lines.append(f"{backend:8s} {mode:17s} {first:>10s} {top:>16s}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=["mnist", "cifar"], default="mnist")
    parser.add_argument("--skip-tests", action="store_true", help="only the timing table")
    args = parser.parse_args(argv)
    exe = julia_exe()
    if not args.skip_tests:
        if run([exe, "--project=julia", "-e", "using Pkg; Pkg.instantiate(); Pkg.test()"]).returncode != 0:
            sys.exit("julia-check: Pkg.test() failed (output above)")
        if run([sys.executable, "-m", "pytest", "-q", "tests/test_julia_backend.py"]).returncode != 0:
            sys.exit("julia-check: the Python-Julia parity tests failed (output above)")
    results = {}
    for backend in BACKENDS:
        for mode in MODES:
            batches = (1,) if mode == "softmax-uncached" else BATCHES  # uncached: the same per image at any batch
            results[backend, mode] = [speed(backend, args.model, mode, b) for b in batches]
    print(table(results, args.model))
    return 0


if __name__ == "__main__":
    sys.exit(main())
