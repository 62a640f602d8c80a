"""How numbers, tables and names look in the summary, the report and the notebooks: defined once."""

from __future__ import annotations

import json
import math
from pathlib import Path

DASH = "–"
BACKEND_NAMES = {"torch": "PyTorch", "jax": "JAX", "julia": "Julia (Flux)"}  # in figures and tables
SHORT_NAMES = {"torch": "PyTorch", "jax": "JAX", "julia": "Julia"}  # in sentences


def read_json(path):
    with open(path) as f:
        return json.load(f)


def fmt(x, unit=""):
    """A display string for a number: 3 significant digits, thousands separated."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    ax = abs(x)
    s = f"{x:,.0f}" if ax >= 1000 else f"{x:.3g}" if ax >= 0.01 else f"{x:.2e}"
    return f"{s}{unit}"


def times(x):
    return DASH if x is None else fmt(x, "×")


def seconds(x):
    if x is None:
        return DASH
    s = fmt(x, " s")
    return s + (f" ({x / 3600:.1f} h)" if x >= 3600 else f" ({x / 60:.1f} min)" if x >= 120 else "")


def memory(b):
    if b is None:
        return DASH
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if b >= size:
            return f"{b / size:.3g} {unit}"
    return f"{b:.0f} B"


def value(v):
    """A hyperparameter value as a short string."""
    if isinstance(v, dict):
        return ", ".join(f"{k} {value(x)}" for k, x in v.items() if k != "sources")
    if isinstance(v, list):
        return ", ".join(value(x) for x in v) or "(none)"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def table(header, rows, note=None):
    """A report table: a header and rows of strings."""
    return {"header": list(header), "rows": [[str(c) for c in r] for r in rows], "note": note}


def short_reason(reason) -> str:
    """The first clause of a recorded reason (install hints follow after '; ')."""
    return str(reason).split("; ")[0] if reason else "no reason recorded"


def relative(folder: Path, path) -> str:
    return str(Path(path).resolve().relative_to(Path(folder).resolve()))
