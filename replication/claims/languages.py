"""Languages: C5, the same measurements in Julia, PyTorch and JAX side by side. It plans nothing of
its own: it reads the generation and scaling rows, one row per measurement and one column per
backend, each with its ratio to PyTorch.
"""

from __future__ import annotations

from linattn.backends import BACKENDS
from linattn.config import MODES

from ..experiments import Context
from ..formatting import BACKEND_NAMES, DASH, SHORT_NAMES, fmt, short_reason, table
from ..paper import claim_header, row
from ..presets import MODELS
from ..verdicts import usable
from .generation import backends_used, best

TASKS = {}  # no task of its own


def plan(ctx: Context):
    return [], {}


def estimate(task, machine) -> dict:
    raise ValueError(f"the languages claim plans no experiment of its own, got a {task['kind']!r} task")


def summarise(summary, outcomes, folder):
    summary["languages"] = languages(summary["throughput"], summary["latency"], summary["scaling"])


def languages(throughput, latency, scaling):
    """One row per measurement, one column per backend, each with its ratio to PyTorch."""
    rows = []

    def add(what, values, unit, higher_is_better):
        if not values:
            return
        ref = values.get("torch")
        rows.append({"what": what, "unit": unit, "higher_is_better": higher_is_better, "values": values,
                     "relative_to_torch": {b: (v / ref if ref else None) for b, v in values.items()}})

    for model in MODELS:
        for mode in MODES:
            vals = {r["backend"]: r["seconds_per_image"] for r in latency
                    if usable(r) and r["model"] == model and r["mode"] == mode}
            add(f"latency {model} {mode}, batch 1", vals, "s/image", False)
            vals = {b: best(throughput, b, model, mode)["images_per_second"] for b in backends_used(throughput)
                    if best(throughput, b, model, mode)}
            add(f"throughput {model} {mode}, best batch", vals, "images/s", True)
    for attention in sorted({r["attention"] for r in scaling}):
        Ts = sorted({r["T"] for r in scaling if r["attention"] == attention and usable(r)})
        if Ts:
            T = Ts[-1]
            vals = {r["backend"]: r["seconds_per_sequence"] for r in scaling
                    if r["attention"] == attention and r["T"] == T and usable(r)}
            add(f"{attention} attention fwd+bwd, T={T}", vals, "s/sequence", False)
    return rows


def judge(paper, s) -> list[dict]:
    claim = claim_header(paper, "C5")
    measured = [b for b in BACKENDS if s["backends"].get(b, {}).get("status") == "ok"]
    missing = {b: s["backends"][b].get("reason") for b in s["backends"] if b not in measured}
    rows = []
    for r in s["languages"]:
        for b, rel in r["relative_to_torch"].items():
            if b != "torch" and rel is not None:
                speed = rel if r["higher_is_better"] else 1 / rel
                rows.append(row(f"{r['what']}: {b} speed relative to torch", None, speed, "measured", "x", paper_text="-"))
    return [{**claim, "rows": rows, "status": "measured" if len(measured) > 1 else "not run",
             "backends_measured": measured, "backends_missing": missing,
             **({"note": ("only one backend ran" if measured else "no backend ran") + ": "
                 + "; ".join(f"{b}: {why}" for b, why in missing.items())} if len(measured) <= 1 else {})}]


def report(summary, paper, folder, figures_dir) -> dict:
    return {"sections": {"languages": languages_section(summary)}, "figures": figures(summary, paper, figures_dir),
            "prose": {"languages": languages_prose(summary)}}


def figures(summary, paper, out_dir) -> dict:
    return {}  # the languages table says it; no figure of its own


def languages_section(summary):
    c5 = next((c for c in summary["claims"] if c["id"] == "C5"), {})
    rows = []
    present = [b for b in BACKENDS if any(b in r["values"] for r in summary["languages"])]
    for r in summary["languages"]:
        cells = []
        for b in present:
            v = r["values"].get(b)
            rel = r["relative_to_torch"].get(b)
            cells.append(DASH if v is None else fmt(v) + ("" if b == "torch" or rel is None else f" ({fmt(rel, '×')})"))
        rows.append([r["what"], r["unit"], *cells])
    notices = [f"{SHORT_NAMES.get(b, b)} backend not run: {short_reason(why)} (details in section 3.4)"
               for b, why in (c5.get("backends_missing") or {}).items()]
    return {"table": table(["measurement", "unit", *[BACKEND_NAMES[b] for b in present]], rows),
            "notices": notices, "measured": [BACKEND_NAMES[b] for b in c5.get("backends_measured", [])],
            "missing": c5.get("status") != "measured",
            "missing_text": "C5 not run: " + (c5.get("note") or "fewer than two backends ran") + "."}


def languages_prose(summary):
    rows = summary["languages"]
    out = []
    for backend in ("jax", "julia"):
        speeds = sorted((r["relative_to_torch"][backend] if r["higher_is_better"] else 1 / r["relative_to_torch"][backend])
                        for r in rows if r["relative_to_torch"].get(backend))
        if speeds:
            out.append(f"{BACKEND_NAMES[backend]} ran at a median of {fmt(speeds[len(speeds) // 2], '×')} PyTorch's speed over "
                       f"{len(speeds)} measurements (from {fmt(speeds[0], '×')} to {fmt(speeds[-1], '×')}; above 1 means faster).")
    return " ".join(out) or "No second backend ran, so there is nothing to compare with PyTorch."
