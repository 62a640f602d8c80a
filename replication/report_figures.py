"""The report's figure toolkit: matplotlib set up for deterministic SVG, the colours and line
styles every figure shares, and the one figure that belongs to no claim (estimated vs measured
compute). Each claim draws its own figures (replication/claims/) with these.

A figure function returns its file name, or None where its results are missing (the template then
says so instead of showing an empty plot). Every axis carries its unit, every line a legend entry.
The files are byte-identical for the same summary (fixed SVG hash salt, no date).
"""

from __future__ import annotations

from pathlib import Path

from linattn.backends import BACKENDS
from linattn.config import MODES

from . import verdicts
from .formatting import BACKEND_NAMES

MODE_COLORS = {"softmax-uncached": "#c0392b", "softmax-cached": "#e67e22", "linear-recurrent": "#2471a3"}
ATTENTION_COLORS = {"softmax": "#c0392b", "softmax-fused": "#e67e22", "softmax-chunked": "#8e44ad", "linear": "#2471a3",
                    "linear-favor": "#17a589"}
BACKEND_STYLE = {"torch": ("-", "o"), "jax": ("--", "s"), "julia": (":", "^")}
WIDTH = 6.4  # inches: the text width of the A4 page with 2 cm margins, a little less
MiB = 2**20


def pyplot():
    """matplotlib's pyplot with the Agg backend and settings for reproducible, compact figures
    (imported here: matplotlib is needed only when a report is drawn)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({
        "svg.hashsalt": "transformers-are-rnns", "svg.fonttype": "path", "font.size": 8, "axes.titlesize": 8,
        "legend.fontsize": 7, "axes.grid": True, "grid.alpha": 0.3, "lines.linewidth": 1.2, "lines.markersize": 4,
    })
    return plt


def line(**kw):
    """A legend entry (matplotlib's Line2D)."""
    from matplotlib.lines import Line2D

    return Line2D([], [], **kw)


def save(plt, fig, out_dir, name, handles=None, ncol=4):
    """Lay out, put the legend (if any) under the axes, and write a deterministic SVG."""
    fig.tight_layout()
    if handles:
        fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=min(ncol, len(handles)),
                   frameon=False)
    fig.savefig(Path(out_dir) / name, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    return name


def shown(rows):
    """The measurements a figure shows: the ones verdicts may use (verdicts.usable)."""
    return [r for r in rows if verdicts.usable(r)]


def backends_in(rows):
    present = {r["backend"] for r in rows}
    return [b for b in BACKENDS if b in present]


def mode_and_backend_handles(modes, backends, extra=()):
    """Legend entries: colours name the modes, line styles and markers the backends."""
    handles = [line(color=MODE_COLORS[m], lw=2, label=m) for m in modes]
    handles += [line(color="0.3", ls=BACKEND_STYLE[b][0], marker=BACKEND_STYLE[b][1], label=BACKEND_NAMES[b])
                for b in backends]
    return handles + list(extra)


def modes_in(rows):
    return [m for m in MODES if any(r["mode"] == m for r in rows)]


def panels(plt, n, height):
    """n side-by-side panels; a single panel gets a narrower figure."""
    fig, axes = plt.subplots(1, n, figsize=(WIDTH if n > 1 else WIDTH * 0.62, height), squeeze=False)
    return fig, axes[0]


def compute(summary, out_dir):
    """Measured vs estimated wall-clock seconds of every experiment, log-log, with y = x."""
    rows = [r for r in summary["compute"] if r.get("actual_seconds") and r.get("estimate_seconds")]
    if not rows:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(WIDTH * 0.55, 2.6))
    claims = list(dict.fromkeys(r["claim"] for r in rows))  # in the order of the plan
    palette = ["#2471a3", "#c0392b", "#17a589", "#8e44ad", "#e67e22"]
    for i, claim in enumerate(claims):
        pts = [(r["estimate_seconds"], r["actual_seconds"]) for r in rows if r["claim"] == claim]
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=12, color=palette[i % len(palette)], label=claim, alpha=0.8)
    lo = min(min(r["estimate_seconds"], r["actual_seconds"]) for r in rows) / 2
    hi = max(max(r["estimate_seconds"], r["actual_seconds"]) for r in rows) * 2
    ax.plot([lo, hi], [lo, hi], color="0.4", lw=0.8, label="actual = estimate")
    ax.plot([lo, hi], [2 * lo, 2 * hi], color="0.6", lw=0.6, ls="--", label="factor 2")
    ax.plot([lo, hi], [lo / 2, hi / 2], color="0.6", lw=0.6, ls="--")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("estimated before the run (s)")
    ax.set_ylabel("measured wall-clock (s)")
    handles, _ = ax.get_legend_handles_labels()
    return save(plt, fig, out_dir, "compute.svg", handles, ncol=3)
