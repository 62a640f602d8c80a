"""report-data.json: everything the Typst template prints, derived from a run folder's summary.json.

`report_data(folder, summary, figures_dir) -> dict`: the run's own sections here (scope, rules,
models, hyperparameters, implementation, setup, compute), each claim's sections, figures and prose
from its module (replication/claims/). Numbers are formatted in Python (Typst prints floats in
full), tables arrive as lists of rows of strings, and every part whose results are missing carries
an explicit "not run" text with the recorded reason. The raw claims stay beside the formatted
ones, so that tests can compare what the PDF embeds with summary.json.
"""

from __future__ import annotations

import importlib.metadata
import math
from pathlib import Path

from linattn.config import ModelConfig
from linattn.weights import param_shapes

from . import report_figures, verdicts
from .claims import CLAIMS
from .formatting import DASH, SHORT_NAMES, fmt, memory, seconds, table, times, value
from .paper import load_paper, paper_numbers
from .presets import model_presets
from .provenance import ROOT, git_commit

IMPLEMENTATIONS = (  # (name, language and framework, backend key, path to count)
    ("Julia (Flux)", "Julia", "julia", "julia/src"),
    ("PyTorch", "Python", "torch", "python/linattn/torch_backend"),
    ("JAX", "Python", "jax", "python/linattn/jax_backend"),
    ("numpy reference (float64)", "Python", None, "python/linattn/reference.py"),
)
PROFILE_CAVEATS = {
    "smoke": "These results come from the smoke profile: toy sizes and a handful of steps that exercise the whole "
             "pipeline in about a minute. Their numbers say nothing about the paper's claims.",
    "cpu": "These results come from the cpu profile: the paper's model sizes for generation speed, measured on a CPU, "
           "and a reduced model and budget for training. The paper measured on GPUs.",
    "paper": "These results come from the paper profile: the paper's sizes and budgets.",
}


def rules_table(summary):
    """The verdict rules as applied in this run (replication/verdicts.py), for the report's scope."""
    return table(["claims", "rule", "reason"], [[r["claims"], r["rule"], r["reason"]] for r in summary.get("rules") or []])


def hygiene_section(summary):
    """Which timings the hygiene checks re-measured or flagged."""
    remeasured = [c for c in summary["compute"] if (c.get("attempts") or 1) > 1]
    flagged = summary.get("flagged") or []
    text = (f"{len(remeasured)} timing(s) were re-measured because other processes used the cores"
            + (f"; {len(flagged)} stayed contended or out of line and were left out of every verdict." if flagged
               else "; none had to be left out of a verdict."))
    return {"text": text, "flagged": [f"{f['id']}: {f['flag']}" for f in flagged]}


def claims_table(summary):
    rows = []
    for c in summary["claims"]:
        if c["status"] != "measured" or not c["rows"]:
            rows.append([c["id"], f"{c['title']} (not run: {c.get('note') or 'no measurement'})", DASH, DASH, DASH, "not run"])
            continue
        for r in c["rows"]:
            rows.append([c["id"], r["what"], r["paper_text"], r["ours_text"],
                         DASH if r["ratio"] is None else fmt(r["ratio"]), r["verdict"]])
    return table(["claim", "comparison", "paper", "ours", "ours / paper", "verdict"], rows)


def models_section(summary):
    presets = model_presets()
    rows = []

    def add(name, cfg, source):
        config = ModelConfig(**{k: v for k, v in cfg.items() if k in ModelConfig.__dataclass_fields__})
        n = sum(math.prod(s) for s in param_shapes(config).values())
        rows.append([name, config.n_layers, config.n_heads, config.d_model, config.d_model // config.n_heads,
                     4 * config.d_model, f"{config.head} ({config.n_mixtures})", "×".join(map(str, config.image_shape)),
                     config.seq_len, f"{n / 1e6:.2f} M", source])

    for name, cfg in presets.items():
        add(f"{name.upper()} (speed)", cfg, cfg.get("source", ""))
    runs = [r for rs in summary["quality"]["runs"].values() for r in rs]
    trained = next((r["config"] for r in runs if r.get("config")), None)
    if trained is None:
        q = {h["name"]: h["value"] for h in summary["hyperparameters"] if h["section"] == "quality"}
        trained = {k.removeprefix("model."): v for k, v in q.items() if k.removeprefix("model.") in ModelConfig.__dataclass_fields__}
    if trained:
        add("C3 trained (quality)", {"head": "mixture", **trained}, "the profile's [quality] section (3.3)")
    return table(["model", "L", "H", "d", "d/H", "FFN", "head (M)", "image", "T", "parameters", "source"], rows)


def hyperparameter_section(summary):
    rows = [[h["section"], h["name"], value(h["value"]), h["source"]] for h in summary["hyperparameters"]
            if h["name"] != "description"]
    sources = [h["source"] for h in summary["hyperparameters"]]
    counts = {k: sum(s.startswith(k) for s in sources) for k in ("paper", "authors'", "our choice")}
    return {"table": table(["section", "setting", "value", "source"], rows),
            "counts": {"paper": counts["paper"], "authors": counts["authors'"], "ours": counts["our choice"],
                       "total": len(sources)}}


def count_lines(path: Path):
    """(files, lines, code lines: non-blank and not a # comment) of a file or a folder's .py/.jl files."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.suffix in (".py", ".jl"))
    lines = code = 0
    for p in files:
        for line in p.read_text(errors="replace").splitlines():
            lines += 1
            code += bool(line.strip()) and not line.strip().startswith("#")
    return len(files), lines, code


def implementation_section(summary):
    backends = summary["backends"]
    rows, notices = [], []
    for name, language, key, rel in IMPLEMENTATIONS:
        path = ROOT / rel
        n_files, lines, code = count_lines(path) if path.exists() else (0, 0, 0)
        if key is None:
            version = f"numpy {_version('numpy')} (at report build)"
        elif backends.get(key, {}).get("status") == "ok":
            info = backends[key].get("info") or {}
            version = f"{key} {info.get('version', '?')}" + (f", Flux {info['flux']}" if info.get("flux") else "")
            version = version.replace("julia", "Julia")
        else:
            reason = backends.get(key, {}).get("reason") or "not in this run's backends"
            version = "not run"
            notices.append(f"{SHORT_NAMES[key]} backend not run: {reason}")
        rows.append([name, language, version, rel, n_files, f"{lines:,}", f"{code:,}"])
    prov = summary["run"].get("provenance") or {}
    now = git_commit()
    return {"table": table(["implementation", "language", "versions (this run)", "path", "files", "lines", "code lines"], rows),
            "python": prov.get("python", DASH), "run_dirty": bool((prov.get("git") or {}).get("dirty")),
            "build_commit": (now["commit"] or "unknown")[:12], "build_dirty": bool(now["dirty"]),
            "report_tools": f"typst {_version('typst')}, matplotlib {_version('matplotlib')}", "notices": notices}


def _version(dist):
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "?"


def setup_section(summary):
    run = summary["run"]
    prov, machine = run.get("provenance") or {}, run.get("machine") or {}
    rows = [
        ["processor", prov.get("cpu", DASH)], ["logical cores / threads used", f"{prov.get('cpu_count', DASH)} / {run.get('threads', DASH)}"],
        ["memory available at start", memory(run.get("memory_available_bytes"))],
        ["device for generation and training", run.get("device") or DASH],
        ["operating system", prov.get("platform", DASH)], ["Python", prov.get("python", DASH)],
        ["measured memory bandwidth (streaming read)", f"{machine['bandwidth_GBps']:.3g} GB/s" if machine else DASH],
        ["measured float32 GEMM throughput (2048³)", f"{machine['gemm_GFLOPs']:.3g} GFLOP/s" if machine else DASH],
        ["measured with", machine.get("measured_with", DASH)],
        ["run started / finished", f"{run.get('started') or DASH} / {run.get('finished') or 'not finished'}"],
    ]
    return {"table": table(["", "this run"], rows), "profile": run.get("profile") or DASH,
            "description": run.get("description") or ""}


def compute_section(summary):
    rows = summary["compute"]
    by_claim = {}
    for r in rows:
        by_claim.setdefault(r["claim"], []).append(r)
    agg = []
    for claim_id, rs in by_claim.items():  # in the order of the plan: C1 .. C4, then B (beyond the paper)
        done = [r for r in rs if r.get("actual_seconds") is not None]
        est, act = sum(r["estimate_seconds"] for r in done), sum(r["actual_seconds"] for r in done)
        status = {}
        for r in rs:
            status[r["status"]] = status.get(r["status"], 0) + 1
        agg.append([claim_id, len(rs), ", ".join(f"{n} {s}" for s, n in sorted(status.items(), key=lambda kv: str(kv[0]))),
                    seconds(est) if done else DASH, seconds(act) if done else DASH, times(act / est) if done and est else DASH,
                    memory(max((r["estimate_memory_bytes"] or 0 for r in rs), default=None)),
                    memory(max((r["actual_memory_bytes"] or 0 for r in done), default=None)) if done else DASH])
    timed = [r for r in rows if r.get("actual_seconds") and r.get("estimate_seconds")]
    ratios = sorted(r["actual_seconds"] / r["estimate_seconds"] for r in timed)
    within = sum(0.5 <= x <= 2 for x in ratios)
    full = [[r["id"], r["status"] or DASH, seconds(r["estimate_seconds"]), seconds(r["actual_seconds"]),
             times(r["actual_seconds"] / r["estimate_seconds"]) if r.get("actual_seconds") and r["estimate_seconds"] else DASH,
             memory(r["estimate_memory_bytes"]), memory(r["actual_memory_bytes"])] for r in rows]
    total_est = sum(r["estimate_seconds"] for r in rows)
    total_act = sum(r["actual_seconds"] or 0 for r in timed)
    text = (f"{len(rows)} experiments were planned with a total estimate of {seconds(total_est)}; "
            f"{len(timed)} ran and took {seconds(total_act)} of worker wall-clock time. "
            + (f"The median ratio of actual to estimated time is {times(ratios[len(ratios) // 2])}; "
               f"{within} of {len(ratios)} estimates were within a factor of 2." if ratios else "")) if rows else \
        "No experiment was recorded in this run."
    return {
        "by_claim": table(["claim", "experiments", "status", "estimated time", "actual time", "actual / est.",
                           "est. peak memory", "actual peak RSS"], agg),
        "full": table(["experiment", "status", "est. time", "actual time", "actual / est.", "est. memory", "peak RSS"], full),
        "text": text,
    }


def notices(summary, sections):
    """Every explicit 'not run' statement of the report, in one list (also embedded as metadata)."""
    out = (list(sections["implementation"]["notices"]) + list(sections["languages"]["notices"])
           + list(sections.get("beyond", {}).get("notices", [])))
    for c in summary["claims"]:
        if c["status"] != "measured":
            out.append(f"{c['id']} not run: {c.get('note') or 'no measurement'}")
    return list(dict.fromkeys(out))


def overview(summary, counts):
    parts = [PROFILE_CAVEATS.get(summary["run"].get("profile"), "")]
    n = sum(counts.values())
    if n:
        words = [f"{counts[k]} {k}" for k in ("replicated", "direction only", "not replicated", "inconclusive", "not run")
                 if counts.get(k)]
        parts.append(f"Of the {n} comparisons with a number of the paper that carry a verdict, "
                     + ", ".join(words) + " (Table 1; the rules that decide each verdict, and why, are in Table 2).")
    for c in summary["claims"]:
        if c["status"] != "measured":
            parts.append(f"{c['id']} not run: {c.get('note') or 'no measurement'}.")
    return " ".join(p for p in parts if p)


def report_data(folder: Path, summary: dict, figures_dir: Path) -> dict:
    """The whole of report-data.json; the figures are drawn into `figures_dir`."""
    paper = load_paper()
    prov = summary["run"].get("provenance") or {}
    sections = {
        "claims_table": claims_table(summary),
        "rules": rules_table(summary),
        "hygiene": hygiene_section(summary),
        "models": models_section(summary),
        "hyperparameters": hyperparameter_section(summary),
        "implementation": implementation_section(summary),
        "setup": setup_section(summary),
        "compute": compute_section(summary),
    }
    figures = {"compute": report_figures.compute(summary, figures_dir)}
    prose = {"overview": overview(summary, verdicts.counts(summary["claims"])),
             "caveat": PROFILE_CAVEATS.get(summary["run"].get("profile"), "")}
    for claim in CLAIMS:
        part = claim.report(summary, paper, folder, figures_dir)
        for name, section in part["sections"].items():  # a section two claims share ("beyond") is merged
            sections[name] = {**sections.get(name, {}), **section}
        figures.update(part["figures"])
        prose.update(part["prose"])
    return {
        "meta": {"title": "Transformers are RNNs: Fast Autoregressive Transformers with Linear Attention",
                 "authors": "the transformers-are-rnns replication project",
                 "date": (summary["run"].get("finished") or summary["run"].get("started") or "")[:10] or DASH,
                 "profile": summary["run"].get("profile") or DASH, "folder": summary.get("folder") or folder.name,
                 "commit": ((prov.get("git") or {}).get("commit") or "unknown")[:12]},
        "paper": paper_numbers(paper)["text"],
        "claims": summary["claims"],
        "scope": [{"id": c["id"], "title": c["title"], "source": c["source"], "status": c["status"],
                   "note": c.get("note") or ""} for c in summary["claims"]],
        **sections,
        "notices": notices(summary, sections),
        "figures": {k: (f"figures/{v}" if v else None) for k, v in figures.items()},
        "discussion": prose,
    }
