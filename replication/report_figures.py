"""The report's figures, drawn from summary.json with matplotlib as deterministic SVG files.

`make_figures(summary, out_dir) -> {name: file name or None}`: one SVG per figure that has data
(None where its results are missing, so that the template says so instead of showing an empty
plot). Every axis carries its unit, every line a legend entry. The files are byte-identical for the
same summary (fixed SVG hash salt, no date), so a rebuilt report differs only where results do.
"""

from __future__ import annotations

from pathlib import Path

MODES = ("softmax-uncached", "softmax-cached", "linear-recurrent")
MODE_COLORS = {"softmax-uncached": "#c0392b", "softmax-cached": "#e67e22", "linear-recurrent": "#2471a3"}
ATTENTION_COLORS = {"softmax": "#c0392b", "softmax-fused": "#e67e22", "softmax-chunked": "#8e44ad", "linear": "#2471a3"}
BACKENDS = ("torch", "jax", "julia")
BACKEND_STYLE = {"torch": ("-", "o"), "jax": ("--", "s"), "julia": (":", "^")}
BACKEND_NAMES = {"torch": "PyTorch", "jax": "JAX", "julia": "Julia (Flux)"}
WIDTH = 6.4  # inches: the text width of the A4 page with 2 cm margins, a little less
MiB = 2**20


def _pyplot():
    """matplotlib's pyplot with the Agg backend and settings for reproducible, compact figures."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({
        "svg.hashsalt": "transformers-are-rnns", "svg.fonttype": "path", "font.size": 8, "axes.titlesize": 8,
        "legend.fontsize": 7, "axes.grid": True, "grid.alpha": 0.3, "lines.linewidth": 1.2, "lines.markersize": 4,
    })
    return plt


def _save(plt, fig, out_dir, name, handles=None, ncol=4):
    """Lay out, put the legend (if any) under the axes, and write a deterministic SVG."""
    fig.tight_layout()
    if handles:
        fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=min(ncol, len(handles)),
                   frameon=False)
    fig.savefig(Path(out_dir) / name, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    return name


def _ok(rows):
    """The measurements a figure shows: successful, and not flagged by the hygiene checks."""
    return [r for r in rows if r.get("status") == "ok" and not r.get("flag")]


def _backends(rows):
    present = {r["backend"] for r in rows}
    return [b for b in BACKENDS if b in present]


def _mode_and_backend_handles(modes, backends, extra=()):
    """Legend entries: colours name the modes, line styles and markers the backends."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=MODE_COLORS[m], lw=2, label=m) for m in modes]
    handles += [Line2D([], [], color="0.3", ls=BACKEND_STYLE[b][0], marker=BACKEND_STYLE[b][1], label=BACKEND_NAMES[b])
                for b in backends]
    return handles + list(extra)


def _panels(plt, n, height):
    """n side-by-side panels; a single panel gets a narrower figure."""
    fig, axes = plt.subplots(1, n, figsize=(WIDTH if n > 1 else WIDTH * 0.62, height), squeeze=False)
    return fig, axes[0]


def throughput(summary, out_dir):
    """Images/s of each mode vs batch size, one panel per model, with the roofline ceiling."""
    rows = _ok(summary["throughput"])
    if not rows:
        return None
    plt = _pyplot()
    from matplotlib.lines import Line2D

    models = [m for m in ("mnist", "cifar") if any(r["model"] == m for r in rows)]
    fig, axes = _panels(plt, len(models), 2.6)
    for ax, model in zip(axes, models):
        for backend in _backends(rows):
            for mode in MODES:
                pts = sorted((r["batch"], r["images_per_second"], r["roofline_seconds_per_image"]) for r in rows
                             if r["model"] == model and r["mode"] == mode and r["backend"] == backend)
                if not pts:
                    continue
                ls, marker = BACKEND_STYLE[backend]
                ax.plot([p[0] for p in pts], [p[1] for p in pts], ls=ls, marker=marker, color=MODE_COLORS[mode])
                if backend == _backends(rows)[0]:
                    ax.plot([p[0] for p in pts], [1 / p[2] for p in pts], ls=(0, (1, 2)), lw=0.9, color=MODE_COLORS[mode],
                            alpha=0.7)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch size (images generated at once)")
        ax.set_ylabel("throughput (images / s)")
        ax.set_title(f"{model.upper()} ({'T = 784' if model == 'mnist' else 'T = 3072'})")
    roof = Line2D([], [], color="0.3", ls=(0, (1, 2)), lw=0.9, label=f"roofline ceiling ({BACKEND_NAMES[_backends(rows)[0]]})")
    handles = _mode_and_backend_handles([m for m in MODES if any(r["mode"] == m for r in rows)], _backends(rows), [roof])
    return _save(plt, fig, out_dir, "throughput.svg", handles, ncol=3)


def latency_rows(summary):
    """(backend, model, mode) -> seconds per image at batch 1: the latency runs, and the
    batch-1 throughput runs where latency has no row (softmax-uncached)."""
    out = {}
    for r in _ok(summary["throughput"]):
        if r["batch"] == 1:
            out[(r["backend"], r["model"], r["mode"])] = r["seconds_per_image"]
    for r in _ok(summary["latency"]):
        out[(r["backend"], r["model"], r["mode"])] = r["seconds_per_image"]
    return out


def latency(summary, paper, out_dir):
    """Seconds per image at batch 1: ours per backend beside the paper's CPU and GPU (Table 5)."""
    lat = latency_rows(summary)
    if not lat:
        return None
    plt = _pyplot()
    models = [m for m in ("mnist", "cifar") if any(k[1] == m for k in lat)]
    backends = [b for b in BACKENDS if any(k[0] == b for k in lat)]
    ours_colors = {"torch": "#2471a3", "jax": "#17a589", "julia": "#7d3c98"}
    series = [(BACKEND_NAMES[b] + " (ours, CPU)", {(m, mode): v for (bb, m, mode), v in lat.items() if bb == b},
               ours_colors[b], None) for b in backends]
    series += [("paper, CPU", {(m, mode): paper["seconds_per_image_cpu"][m][mode] for m in models for mode in MODES}, "0.75", "//"),
               ("paper, GPU", {(m, mode): paper["seconds_per_image_gpu"][m][mode] for m in models for mode in MODES}, "0.92", "..")]
    fig, axes = _panels(plt, len(models), 2.5)
    width = 0.8 / len(series)
    for ax, model in zip(axes, models):
        for i, (label, values, color, hatch) in enumerate(series):
            xs = [j + (i - (len(series) - 1) / 2) * width for j, mode in enumerate(MODES) if (model, mode) in values]
            ys = [values[(model, mode)] for mode in MODES if (model, mode) in values]
            ax.bar(xs, ys, width, label=label, color=color, hatch=hatch, edgecolor="0.3", linewidth=0.4)
        ax.set_yscale("log")
        ax.set_xticks(range(len(MODES)), MODES)
        ax.set_ylabel("seconds per image (batch 1)")
        ax.set_title(model.upper())
        ax.grid(axis="x", visible=False)
    handles, _ = axes[0].get_legend_handles_labels()
    return _save(plt, fig, out_dir, "latency.svg", handles, ncol=3)


def curves(summary, out_dir):
    """Validation (and training) bits/dim vs training step and vs wall-clock seconds."""
    runs = {a: r for a, r in summary["quality"]["runs"].items() if r.get("status") == "ok" and r.get("curve")}
    if not runs:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 2.6))
    for attention, run in sorted(runs.items()):
        color = ATTENTION_COLORS.get(attention, "0.3")
        steps = [p["step"] for p in run["curve"]]
        wall = [p["wall_seconds"] for p in run["curve"]]
        for ax, xs in zip(axes, (steps, wall)):
            ax.plot(xs, [p["valid_bits_per_dim"] for p in run["curve"]], "-o", color=color, label=f"{attention}, validation")
            ax.plot(xs, [p["train_bits_per_dim"] for p in run["curve"]], "--", color=color, alpha=0.6,
                    label=f"{attention}, training (mean since last point)")
    axes[0].set_xlabel("training step")
    axes[1].set_xlabel("training wall-clock time (s)")
    for ax in axes:
        ax.set_ylabel("bits / dim")
    handles, _ = axes[0].get_legend_handles_labels()
    return _save(plt, fig, out_dir, "curves.svg", handles, ncol=2)


def scaling(summary, out_dir):
    """Time and peak memory of one attention's forward+backward pass per sequence vs T, log-log,
    with guides proportional to T and T^2."""
    rows = _ok(summary["scaling"])
    if not rows:
        return None
    plt = _pyplot()
    from matplotlib.lines import Line2D

    fig, axes = plt.subplots(1, 2, figsize=(WIDTH, 2.6))
    attentions = [a for a in ATTENTION_COLORS if any(r["attention"] == a for r in rows)]
    keys = (("seconds_per_sequence", 1.0, "time per sequence (s)"), ("memory_per_sequence_bytes", MiB, "peak memory per sequence (MiB)"))
    for ax, (key, scale, label) in zip(axes, keys):
        for backend in _backends(rows):
            for attention in attentions:
                pts = sorted((r["T"], r[key] / scale) for r in rows
                             if r["backend"] == backend and r["attention"] == attention and r[key] and r[key] > 0)
                if pts:
                    ls, marker = BACKEND_STYLE[backend]
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], ls=ls, marker=marker, color=ATTENTION_COLORS[attention])
        _guides(ax, rows, key, scale)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("sequence length T")
        ax.set_ylabel(label)
    handles = [Line2D([], [], color=ATTENTION_COLORS[a], lw=2, label=f"{a} attention") for a in attentions]
    handles += [Line2D([], [], color="0.3", ls=BACKEND_STYLE[b][0], marker=BACKEND_STYLE[b][1], label=BACKEND_NAMES[b])
                for b in _backends(rows)]
    handles += [Line2D([], [], color="0.6", lw=0.8, ls=(0, (4, 2)), label="guides: slope 1 (∝ T) and 2 (∝ T²)")]
    return _save(plt, fig, out_dir, "scaling.svg", handles, ncol=3)


def _guides(ax, rows, key, scale):
    """Grey dashed lines through the first point of the series: slope 1 and slope 2."""
    pts = sorted((r["T"], r[key] / scale) for r in rows if r[key] and r[key] > 0)
    if len(pts) < 2:
        return
    t0, y0 = pts[0]
    t1 = max(p[0] for p in pts)
    for slope in (1, 2):
        ax.plot([t0, t1], [y0, y0 * (t1 / t0) ** slope], color="0.6", lw=0.8, ls=(0, (4, 2)))


def compute(summary, out_dir):
    """Measured vs estimated wall-clock seconds of every experiment, log-log, with y = x."""
    rows = [r for r in summary["compute"] if r.get("actual_seconds") and r.get("estimate_seconds")]
    if not rows:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(WIDTH * 0.55, 2.6))
    claims = sorted({r["claim"] for r in rows})
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
    return _save(plt, fig, out_dir, "compute.svg", handles, ncol=3)


def roofline(summary, out_dir):
    """Measured seconds per image as a multiple of the roofline floor, vs batch size."""
    rows = [r for r in _ok(summary["throughput"]) if r.get("roofline_seconds_per_image")]
    if not rows:
        return None
    plt = _pyplot()
    models = [m for m in ("mnist", "cifar") if any(r["model"] == m for r in rows)]
    fig, axes = _panels(plt, len(models), 2.5)
    for ax, model in zip(axes, models):
        for backend in _backends(rows):
            for mode in MODES:
                pts = sorted((r["batch"], r["seconds_per_image"] / r["roofline_seconds_per_image"]) for r in rows
                             if r["model"] == model and r["mode"] == mode and r["backend"] == backend)
                if pts:
                    ls, marker = BACKEND_STYLE[backend]
                    ax.plot([p[0] for p in pts], [p[1] for p in pts], ls=ls, marker=marker, color=MODE_COLORS[mode])
        ax.axhline(1, color="0.4", lw=0.8)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch size")
        ax.set_ylabel("measured / roofline time (×)")
        ax.set_title(model.upper())
    handles = _mode_and_backend_handles([m for m in MODES if any(r["mode"] == m for r in rows)], _backends(rows))
    return _save(plt, fig, out_dir, "roofline.svg", handles, ncol=3)


def make_figures(summary, paper_claims, out_dir) -> dict:
    """Every figure of the report into out_dir; {name: file name, or None where data are missing}."""
    return {
        "throughput": throughput(summary, out_dir),
        "latency": latency(summary, paper_claims["C2"], out_dir),
        "curves": curves(summary, out_dir),
        "scaling": scaling(summary, out_dir),
        "compute": compute(summary, out_dir),
        "roofline": roofline(summary, out_dir),
    }
